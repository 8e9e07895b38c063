#include "supervisor/exec_fd.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace relaypro {

void procSelfFdPath(int fd, char* out) {
    static constexpr char kPrefix[] = "/proc/self/fd/";
    std::memcpy(out, kPrefix, sizeof kPrefix - 1);
    char digits[12];
    int n = 0;
    auto v = static_cast<unsigned>(fd < 0 ? 0 : fd);
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    char* p = out + sizeof kPrefix - 1;
    while (n > 0) *p++ = digits[--n];
    *p = '\0';
}

bool closeOnExecListed(int lowest) {
    int dir = ::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return false;
    alignas(8) char buf[4096];
    bool complete = false;
    while (true) {
        long n = ::syscall(__NR_getdents64, dir, buf, sizeof buf);
        if (n <= 0) {
            complete = n == 0;  // an error part-way: the caller falls back to every number
            break;
        }
        for (long off = 0; off < n;) {
            // struct linux_dirent64: ino (8), off (8), reclen (2), type (1), name.
            unsigned short reclen = 0;
            std::memcpy(&reclen, buf + off + 16, sizeof reclen);
            const char* name = buf + off + 19;
            int fd = 0;
            bool number = *name != '\0';
            for (const char* c = name; *c != '\0'; ++c) {
                if (*c < '0' || *c > '9') number = false;
                fd = fd * 10 + (*c - '0');
            }
            if (number && fd >= lowest && fd != dir) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
            off += reclen;
        }
    }
    ::close(dir);
    return complete;
}

bool closeOnExecBelowLimit(int lowest) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return false;
    rlim_t end = limit.rlim_cur == RLIM_INFINITY ? (1U << 20) : limit.rlim_cur;
    for (rlim_t fd = static_cast<rlim_t>(lowest); fd < end; ++fd) ::fcntl(static_cast<int>(fd), F_SETFD, FD_CLOEXEC);
    return true;
}

void closeOnExecFrom(int lowest) {
    constexpr unsigned kCloseRangeCloexec = 1U << 2;  // CLOSE_RANGE_CLOEXEC, linux/close_range.h
    if (::syscall(__NR_close_range, static_cast<unsigned>(lowest), ~0U, kCloseRangeCloexec) == 0) return;
    if (!closeOnExecListed(lowest)) closeOnExecBelowLimit(lowest);
}

void execDescriptor(int fd, char* const argv[], char* const envp[]) {
    ::syscall(__NR_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
    if (errno != ENOSYS) return;
    char path[32];
    procSelfFdPath(fd, path);
    ::execve(path, argv, envp);
}

}  // namespace relaypro
