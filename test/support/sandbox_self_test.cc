// The sandbox's self-test (docs/lifecycle.md, "Test hooks"): what a worker's sandbox must forbid,
// tried for real from inside it. Test builds only: the shipped worker has none of it.
#include "test/support/sandbox_self_test.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace relaypro {
namespace {

std::string outcome(int rc) {
    if (rc >= 0) return "allowed";
    if (errno == ENOSYS) return "ENOSYS";
    return errno == EACCES ? "EACCES" : errno == EPERM ? "EPERM" : std::string(std::strerror(errno));
}

}  // namespace

std::string sandboxSelfTest(const std::vector<std::string>& paths, const std::string& controlSocket,
                            int supervisorPid) {
    std::string out;
    for (const auto& p : paths) {
        int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
        out += "open:" + p + "=" + outcome(fd) + "\n";
        if (fd >= 0) ::close(fd);
    }
    int us = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (us >= 0) {
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, controlSocket.c_str(), sizeof a.sun_path - 1);
        int rc = ::connect(us, reinterpret_cast<sockaddr*>(&a), sizeof a);
        out += "connect:control=" + outcome(rc) + "\n";
        ::close(us);
    } else {
        out += "socket:unix=" + outcome(us) + "\n";
    }
    out += "ptrace:supervisor=" + outcome(static_cast<int>(::ptrace(PTRACE_ATTACH, supervisorPid, nullptr, nullptr))) +
           "\n";
    char buf[16];
    iovec local{buf, sizeof buf};
    iovec remote{reinterpret_cast<void*>(0x400000), sizeof buf};
    out += "process_vm_readv:supervisor=" +
           outcome(static_cast<int>(::process_vm_readv(supervisorPid, &local, 1, &remote, 1, 0))) + "\n";
    out += "kill:supervisor=" + outcome(::kill(supervisorPid, 0)) + "\n";
    rlimit cpu{};
    out += "prlimit:supervisor=" + outcome(::prlimit(supervisorPid, RLIMIT_CPU, nullptr, &cpu)) + "\n";
    out += "prlimit:self=" + outcome(::prlimit(0, RLIMIT_NOFILE, nullptr, &cpu)) + "\n";
    // A new process by each route glibc and the kernel offer. Were one allowed, the child leaves
    // at once; the probe reports that it was.
    auto forked = [](long rc) {
        if (rc == 0) ::_exit(0);
        if (rc > 0) ::waitpid(static_cast<pid_t>(rc), nullptr, 0);
        return outcome(rc > 0 ? 0 : -1);
    };
    out += "fork=" + forked(::fork()) + "\n";
    out += "clone:process=" + forked(::syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, nullptr)) + "\n";
    struct {
        uint64_t flags, pidfd, childTid, parentTid, exitSignal, stack, stackSize, tls;
    } args{0, 0, 0, 0, SIGCHLD, 0, 0, 0};  // struct clone_args, its first version
    out += "clone3=" + forked(::syscall(__NR_clone3, &args, sizeof args)) + "\n";
    char* argv[] = {const_cast<char*>("/bin/true"), nullptr};
    out += "execve=" + outcome(::execve("/bin/true", argv, nullptr)) + "\n";
    int inet = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    out += "socket:inet=" + outcome(inet) + "\n";
    if (inet >= 0) ::close(inet);
    return out;
}

}  // namespace relaypro
