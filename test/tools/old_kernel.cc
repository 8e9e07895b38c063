// old_kernel VERSION PROGRAM [ARGUMENT...]: runs PROGRAM as if on Linux VERSION (e.g. 4.18, RHEL
// 8's kernel): a seccomp filter, inherited by everything PROGRAM starts and kept across exec,
// makes every system call that Linux added after VERSION fail with ENOSYS, as an older kernel
// answers. Features that are not system calls (new flags, options, /proc files) are not covered.
//   old_kernel 3.16 --probe getrandom    prints ENOSYS or "available" (the tool's own check)
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <seccomp.h>
#include <sys/ipc.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

struct Added {
    const char* name;
    int major, minor;
};

// Every system call added to x86_64 and arm64 after Linux 3.9, with the release that added it.
constexpr Added kAdded[] = {
    {"sched_setattr", 3, 14},
    {"sched_getattr", 3, 14},
    {"renameat2", 3, 15},
    {"seccomp", 3, 17},
    {"getrandom", 3, 17},
    {"memfd_create", 3, 17},
    {"kexec_file_load", 3, 17},
    {"bpf", 3, 18},
    {"execveat", 3, 19},
    {"userfaultfd", 4, 3},
    {"membarrier", 4, 3},
    {"mlock2", 4, 4},
    {"copy_file_range", 4, 5},
    {"preadv2", 4, 6},
    {"pwritev2", 4, 6},
    {"pkey_mprotect", 4, 9},
    {"pkey_alloc", 4, 9},
    {"pkey_free", 4, 9},
    {"statx", 4, 11},
    {"io_pgetevents", 4, 18},
    {"rseq", 4, 18},
    {"pidfd_send_signal", 5, 1},
    {"io_uring_setup", 5, 1},
    {"io_uring_enter", 5, 1},
    {"io_uring_register", 5, 1},
    {"open_tree", 5, 2},
    {"move_mount", 5, 2},
    {"fsopen", 5, 2},
    {"fsconfig", 5, 2},
    {"fsmount", 5, 2},
    {"fspick", 5, 2},
    {"pidfd_open", 5, 3},
    {"clone3", 5, 3},
    {"openat2", 5, 6},
    {"pidfd_getfd", 5, 6},
    {"faccessat2", 5, 8},
    {"close_range", 5, 9},
    {"process_madvise", 5, 10},
    {"epoll_pwait2", 5, 11},
    {"mount_setattr", 5, 12},
    {"landlock_create_ruleset", 5, 13},
    {"landlock_add_rule", 5, 13},
    {"landlock_restrict_self", 5, 13},
    {"memfd_secret", 5, 14},
    {"quotactl_fd", 5, 14},
    {"process_mrelease", 5, 15},
    {"futex_waitv", 5, 16},
    {"set_mempolicy_home_node", 5, 17},
    {"cachestat", 6, 5},
    {"fchmodat2", 6, 6},
    {"map_shadow_stack", 6, 6},
    {"futex_wake", 6, 7},
    {"futex_wait", 6, 7},
    {"futex_requeue", 6, 7},
    {"statmount", 6, 8},
    {"listmount", 6, 8},
    {"lsm_get_self_attr", 6, 8},
    {"lsm_set_self_attr", 6, 8},
    {"lsm_list_modules", 6, 8},
    {"mseal", 6, 10},
    {"setxattrat", 6, 13},
    {"getxattrat", 6, 13},
    {"listxattrat", 6, 13},
    {"removexattrat", 6, 13},
    {"open_tree_attr", 6, 15},
};

// What OpenSSL's first process does on a kernel before 4.8 (rand_unix.c, wait_random_seeded):
// wait until /dev/random can give a byte, then leave the "seeded" mark, key 114.
bool markRandomSeeded() {
    constexpr key_t kOpensslSeededKey = 114;  // OPENSSL_RAND_SEED_DEVRANDOM_SHM_ID
    if (::unshare(CLONE_NEWIPC) != 0) return false;
    int fd = ::open("/dev/random", O_RDONLY | O_CLOEXEC);
    char c = 0;
    if (fd < 0 || ::read(fd, &c, 1) != 1) return false;
    ::close(fd);
    return ::shmget(kOpensslSeededKey, 1, IPC_CREAT | S_IRUSR | S_IRGRP | S_IROTH) != -1;
}

int usage() {
    std::fputs("usage: old_kernel MAJOR.MINOR PROGRAM [ARGUMENT...] | old_kernel MAJOR.MINOR --probe SYSCALL\n",
               stderr);
    return 2;
}

}  // namespace

int main(int argc, char** argv) {
    int major = 0, minor = 0;
    if (argc < 3 || std::sscanf(argv[1], "%d.%d", &major, &minor) != 2) return usage();
    if ((major < 4 || (major == 4 && minor < 8)) && !markRandomSeeded()) {
        std::fprintf(stderr, "old_kernel: cannot record /dev/random as seeded: %s\n", std::strerror(errno));
        return 1;
    }
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (ctx == nullptr) return 1;
    // As root (the tests), no no_new_privs: the program runs as it would on that kernel.
    if (::geteuid() == 0) seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
    int blocked = 0;  // for a debugger: how many calls the filter answers
    for (const Added& a : kAdded) {
        if (a.major < major || (a.major == major && a.minor <= minor)) continue;
        int nr = seccomp_syscall_resolve_name(a.name);
        if (nr == __NR_SCMP_ERROR || nr < 0) continue;  // not a system call of this architecture
        if (seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0) != 0) {
            std::fprintf(stderr, "old_kernel: cannot add a rule for %s\n", a.name);
            return 1;
        }
        ++blocked;
    }
    if (int rc = seccomp_load(ctx); rc != 0) {
        std::fprintf(stderr, "old_kernel: cannot load the filter: %s\n", std::strerror(-rc));
        return 1;
    }
    seccomp_release(ctx);
    if (std::strcmp(argv[2], "--probe") == 0) {
        if (argc != 4) return usage();
        int nr = seccomp_syscall_resolve_name(argv[3]);
        if (nr < 0) return usage();
        // Arguments that make every probed call fail harmlessly when it exists (EBADF, EFAULT).
        long rc = ::syscall(nr, -1, 0, 0, 0, 0);
        std::printf("%s\n", rc == -1 && errno == ENOSYS ? "ENOSYS" : "available");
        return 0;
    }
    (void)blocked;
    ::execvp(argv[2], argv + 2);
    std::fprintf(stderr, "old_kernel: cannot run %s: %s\n", argv[2], std::strerror(errno));
    return 127;
}
