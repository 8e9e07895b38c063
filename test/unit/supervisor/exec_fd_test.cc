#include "supervisor/exec_fd.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test/support/test_files.h"

namespace relaypro {
namespace {

TEST(ExecFd, ProcSelfFdPathSpellsTheNumber) {
    char path[32];
    procSelfFdPath(0, path);
    EXPECT_STREQ(path, "/proc/self/fd/0");
    procSelfFdPath(7, path);
    EXPECT_STREQ(path, "/proc/self/fd/7");
    procSelfFdPath(1048575, path);
    EXPECT_STREQ(path, "/proc/self/fd/1048575");
    procSelfFdPath(2147483647, path);
    EXPECT_STREQ(path, "/proc/self/fd/2147483647");
}

// Runs `mark` in a child that has descriptors 3 (kept) and several above it open without
// close-on-exec; the child's exit code says which descriptors are close-on-exec afterwards
// (0: exactly those from 4 up).
int markedInChild(bool (*mark)(int)) {
    pid_t child = ::fork();
    if (child == 0) {
        int fds[6];
        for (int& fd : fds) fd = ::open("/dev/null", O_RDONLY);  // no O_CLOEXEC
        int high = ::fcntl(fds[0], F_DUPFD, 900);                // a sparse one
        if (::dup2(fds[0], 3) != 3) _exit(90);
        if (!mark(4)) _exit(91);
        if ((::fcntl(3, F_GETFD) & FD_CLOEXEC) != 0) _exit(92);
        for (int fd : fds) {
            if (fd >= 4 && (::fcntl(fd, F_GETFD) & FD_CLOEXEC) == 0) _exit(93);
        }
        if ((::fcntl(high, F_GETFD) & FD_CLOEXEC) == 0) _exit(94);
        _exit(0);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

TEST(ExecFd, EachWayOfMarkingDescriptorsCloseOnExecCoversThemAll) {
    RELAYPRO_SKIP_UNDER_QEMU();  // forks
    EXPECT_EQ(markedInChild([](int lowest) {
                  closeOnExecFrom(lowest);
                  return true;
              }),
              0);
    EXPECT_EQ(markedInChild(closeOnExecListed), 0) << "the /proc/self/fd listing (Linux before 5.11)";
    EXPECT_EQ(markedInChild(closeOnExecBelowLimit), 0) << "every number below RLIMIT_NOFILE";
}

// Runs /bin/sh -c "exit 5", open as a close-on-exec descriptor (as the supervisor keeps its own
// binary), either way: execDescriptor, or the /proc/self/fd path its fallback uses.
int exitCodeOfShellBy(bool procPath) {
    int fd = ::open("/bin/sh", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    pid_t child = ::fork();
    if (child == 0) {
        char arg0[] = "sh";
        char arg1[] = "-c";
        char arg2[] = "exit 5";
        char* argv[] = {arg0, arg1, arg2, nullptr};
        char* envp[] = {nullptr};
        if (procPath) {
            char path[32];
            procSelfFdPath(fd, path);
            ::execve(path, argv, envp);
        } else {
            execDescriptor(fd, argv, envp);
        }
        _exit(99);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    ::close(fd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
}

TEST(ExecFd, ExecutesTheOpenFileDirectlyOrThroughProcSelfFd) {
    RELAYPRO_SKIP_UNDER_QEMU();  // forks and execs a program of the build machine
    EXPECT_EQ(exitCodeOfShellBy(false), 5);
    EXPECT_EQ(exitCodeOfShellBy(true), 5) << "the fallback for kernels without execveat (before 3.19)";
}

}  // namespace
}  // namespace relaypro
