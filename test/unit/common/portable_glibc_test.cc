// The glibc shims of the portable build (common/portable_glibc.cc); built only there.
#include <errno.h>
#include <gtest/gtest.h>
#include <seccomp.h>
#include <sys/random.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <memory>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "test/support/test_files.h"

extern "C" {
extern char __libc_single_threaded;  // NOLINT(bugprone-reserved-identifier): glibc's name
uint32_t arc4random(void);
}

namespace relaypro {
namespace {

TEST(PortableGlibc, Arc4randomGivesRandomWords) {
    std::set<uint32_t> seen;
    for (int i = 0; i < 64; ++i) seen.insert(arc4random());
    EXPECT_GE(seen.size(), 60U);
    std::random_device device;  // libstdc++'s default token reaches arc4random
    EXPECT_NE(device() ^ device() ^ device(), device() ^ device() ^ device());
}

TEST(PortableGlibc, Arc4randomFallsBackToDevUrandomWithoutGetrandom) {
    RELAYPRO_SKIP_UNDER_QEMU();  // forks; qemu-user does not apply seccomp filters either
    pid_t child = ::fork();
    if (child == 0) {
        // A kernel before 3.17: getrandom answers ENOSYS.
        scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
        if (ctx == nullptr || seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(getrandom), 0) != 0 ||
            seccomp_load(ctx) != 0) {
            _exit(90);
        }
        char byte = 0;
        if (::getrandom(&byte, 1, 0) != -1 || errno != ENOSYS) _exit(91);
        std::set<uint32_t> seen;
        for (int i = 0; i < 16; ++i) seen.insert(arc4random());
        _exit(seen.size() >= 15 ? 0 : 92);
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    ASSERT_TRUE(WIFEXITED(status)) << "the child died: signal " << WTERMSIG(status);
    EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(PortableGlibc, SharedOwnershipAcrossThreadsStaysExact) {
    RELAYPRO_SKIP_UNDER_QEMU();
    // __libc_single_threaded is 0: libstdc++ always counts references atomically.
    EXPECT_EQ(__libc_single_threaded, 0);
    auto shared = std::make_shared<int>(7);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([shared] {
            for (int i = 0; i < 100000; ++i) {
                std::shared_ptr<int> copy = shared;
                (void)copy;
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(shared.use_count(), 1);
}

}  // namespace
}  // namespace relaypro
