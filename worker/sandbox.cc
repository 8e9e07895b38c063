#include "worker/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>

namespace relaypro {
namespace {

constexpr uid_t kNobody = 65534;
// Landlock ABI 3 (Linux 6.2); Debian 12's headers stop at ABI 2.
constexpr __u64 kAccessFsTruncate = 1ULL << 14;

bool switchToNobody(SandboxReport& r) {
    uid_t uid = kNobody;
    gid_t gid = kNobody;
    if (struct passwd* pw = ::getpwnam("nobody")) {
        uid = pw->pw_uid;
        gid = pw->pw_gid;
    }
    if (::setgroups(0, nullptr) != 0 || ::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0) {
        r.error = std::string("cannot switch to nobody: ") + std::strerror(errno);
        return false;
    }
    if (::setuid(0) == 0) {
        r.error = "the switch to nobody can be undone";
        return false;
    }
    return true;
}

bool dropCapabilities(SandboxReport& r) {
    ::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (::syscall(SYS_capset, &header, data) != 0) {
        r.error = std::string("cannot drop capabilities: ") + std::strerror(errno);
        return false;
    }
    return true;
}

void applyLandlock(SandboxReport& r) {
    long abi = ::syscall(__NR_landlock_create_ruleset, nullptr, 0, LANDLOCK_CREATE_RULESET_VERSION);
    if (abi < 1) {
        r.warnings.push_back("Landlock is not available on this kernel; file access is denied by seccomp alone");
        return;
    }
    landlock_ruleset_attr attr{};
    attr.handled_access_fs = LANDLOCK_ACCESS_FS_EXECUTE | LANDLOCK_ACCESS_FS_WRITE_FILE | LANDLOCK_ACCESS_FS_READ_FILE |
                             LANDLOCK_ACCESS_FS_READ_DIR | LANDLOCK_ACCESS_FS_REMOVE_DIR |
                             LANDLOCK_ACCESS_FS_REMOVE_FILE | LANDLOCK_ACCESS_FS_MAKE_CHAR |
                             LANDLOCK_ACCESS_FS_MAKE_DIR | LANDLOCK_ACCESS_FS_MAKE_REG | LANDLOCK_ACCESS_FS_MAKE_SOCK |
                             LANDLOCK_ACCESS_FS_MAKE_FIFO | LANDLOCK_ACCESS_FS_MAKE_BLOCK | LANDLOCK_ACCESS_FS_MAKE_SYM;
    if (abi >= 2) attr.handled_access_fs |= LANDLOCK_ACCESS_FS_REFER;
    if (abi >= 3) attr.handled_access_fs |= kAccessFsTruncate;
    int fd = static_cast<int>(::syscall(__NR_landlock_create_ruleset, &attr, sizeof attr, 0));
    if (fd < 0) {
        r.warnings.push_back(std::string("Landlock ruleset refused: ") + std::strerror(errno));
        return;
    }
    // No rule is added: every handled access to every path is denied.
    if (::syscall(__NR_landlock_restrict_self, fd, 0) != 0) {
        r.warnings.push_back(std::string("Landlock restriction refused: ") + std::strerror(errno));
    } else {
        r.landlock = true;
    }
    ::close(fd);
}

// What a serving worker may call without condition: I/O on descriptors it holds, memory,
// signal handling, the event loop, time, its own ids, threads.
constexpr int kAllowed[] = {
    SCMP_SYS(read),
    SCMP_SYS(write),
    SCMP_SYS(readv),
    SCMP_SYS(writev),
    SCMP_SYS(pread64),
    SCMP_SYS(close),
    SCMP_SYS(fstat),
    SCMP_SYS(newfstatat),
    SCMP_SYS(lseek),
    SCMP_SYS(mmap),
    SCMP_SYS(munmap),
    SCMP_SYS(mprotect),
    SCMP_SYS(mremap),
    SCMP_SYS(madvise),
    SCMP_SYS(brk),
    SCMP_SYS(rt_sigaction),
    SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(rt_sigreturn),
    SCMP_SYS(sigaltstack),
    SCMP_SYS(ioctl),
    SCMP_SYS(pipe2),
    SCMP_SYS(dup),
    SCMP_SYS(dup3),
    SCMP_SYS(fcntl),
    SCMP_SYS(connect),
    SCMP_SYS(accept),
    SCMP_SYS(accept4),
    SCMP_SYS(sendto),
    SCMP_SYS(recvfrom),
    SCMP_SYS(sendmsg),
    SCMP_SYS(recvmsg),
    SCMP_SYS(sendmmsg),
    SCMP_SYS(recvmmsg),
    SCMP_SYS(shutdown),
    SCMP_SYS(bind),
    SCMP_SYS(getsockname),
    SCMP_SYS(getpeername),
    SCMP_SYS(setsockopt),
    SCMP_SYS(getsockopt),
    SCMP_SYS(epoll_create1),
    SCMP_SYS(epoll_ctl),
    SCMP_SYS(epoll_wait),
    SCMP_SYS(epoll_pwait),
    SCMP_SYS(epoll_pwait2),
    SCMP_SYS(eventfd2),
    SCMP_SYS(poll),
    SCMP_SYS(ppoll),
    SCMP_SYS(futex),
    SCMP_SYS(clock_gettime),
    SCMP_SYS(clock_nanosleep),
    SCMP_SYS(nanosleep),
    SCMP_SYS(gettimeofday),
    SCMP_SYS(getpid),
    SCMP_SYS(gettid),
    SCMP_SYS(getppid),
    SCMP_SYS(getuid),
    SCMP_SYS(geteuid),
    SCMP_SYS(getgid),
    SCMP_SYS(getegid),
    SCMP_SYS(getrandom),
    SCMP_SYS(exit),
    SCMP_SYS(exit_group),
    SCMP_SYS(sched_yield),
    SCMP_SYS(sched_getaffinity),
    SCMP_SYS(set_robust_list),
    SCMP_SYS(rseq),
    SCMP_SYS(restart_syscall),
    SCMP_SYS(uname),
    SCMP_SYS(getrlimit),
    SCMP_SYS(timerfd_create),
    SCMP_SYS(timerfd_settime),
    SCMP_SYS(timerfd_gettime),
    SCMP_SYS(membarrier),
    SCMP_SYS(statx),
};

// Calls allowed only narrowly, or refused with a clearer errno than the default EPERM.
bool addNarrowRules(scmp_filter_ctx ctx) {
    // A rule allowed only when the first argument equals `value`.
    auto allowIfFirstIs = [&](int syscallNumber, scmp_datum_t value) {
        scmp_arg_cmp cmp{0, SCMP_CMP_EQ, value, 0};
        return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, syscallNumber, 1, &cmp) == 0;
    };
    // Sockets: the Internet only (no AF_UNIX: the control socket stays out of reach).
    bool ok = allowIfFirstIs(SCMP_SYS(socket), AF_INET) && allowIfFirstIs(SCMP_SYS(socket), AF_INET6);
    // Signals: only to itself (abort(), raise()).
    auto self = static_cast<scmp_datum_t>(::getpid());
    ok = ok && allowIfFirstIs(SCMP_SYS(kill), self) && allowIfFirstIs(SCMP_SYS(tgkill), self);
    // Resource limits: its own only. On another process of the same uid (the supervisor, under
    // systemd) a worker could set RLIMIT_CPU to one second and end the whole service.
    ok = ok && allowIfFirstIs(SCMP_SYS(prlimit64), 0);
    // New threads only (the password-check thread starts inside the sandbox): no new process,
    // which could outlive its worker, free of the parent-death signal, with the listening
    // sockets and the key material. clone3's flags sit in a structure a filter cannot read:
    // ENOSYS, so that glibc's pthread_create falls back to clone.
    scmp_arg_cmp thread{0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD};
    ok = ok && seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1, &thread) == 0;
    ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0) == 0;
    // Files: a clear "permission denied" (the default EPERM reads like a bug).
    for (int sc : {SCMP_SYS(open), SCMP_SYS(openat), SCMP_SYS(openat2), SCMP_SYS(creat)}) {
        ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EACCES), sc, 0) == 0;
    }
    return ok;
}

bool applySeccomp(SandboxReport& r) {
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(EPERM));
    if (ctx == nullptr) {
        r.error = "cannot create the seccomp filter";
        return false;
    }
    bool ok = true;
    for (int sc : kAllowed) ok = ok && seccomp_rule_add(ctx, SCMP_ACT_ALLOW, sc, 0) == 0;
    ok = ok && addNarrowRules(ctx);
    if (!ok || seccomp_load(ctx) != 0) {
        seccomp_release(ctx);
        r.error = "cannot load the seccomp filter";
        return false;
    }
    seccomp_release(ctx);
    r.seccomp = true;
    return true;
}

}  // namespace

SandboxReport enterSandbox() {
    SandboxReport r;
    pid_t parent = ::getppid();
    if (::geteuid() == 0 && !switchToNobody(r)) return r.ok = false, r;
    if (!dropCapabilities(r)) return r.ok = false, r;
    // Credential changes clear the parent-death signal: set it (again) now, then make sure the
    // parent did not die in between.
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0 || ::getppid() != parent) {
        r.error = "the supervisor is gone";
        return r.ok = false, r;
    }
    if (::prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
        r.error = std::string("prctl: ") + std::strerror(errno);
        return r.ok = false, r;
    }
    applyLandlock(r);
    if (!applySeccomp(r)) return r.ok = false, r;
    return r;
}

}  // namespace relaypro
