// A worker that missed two pings: hung (replace it) or starved of CPU (keep it), lifecycle.md's
// ping rule refined in supervisor/liveness.h.
#include "supervisor/liveness.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "test/support/test_files.h"

namespace relaypro {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

TEST(Liveness, OnlyTwoUnansweredPingsAreJudged) {
    auto t0 = Clock::now();
    PingWindow w{t0, 0};
    EXPECT_EQ(judgeMissedPings(0, w, 0, t0, t0 + 5s), PingVerdict::Waiting);
    EXPECT_EQ(judgeMissedPings(1, w, 0, t0, t0 + 5s), PingVerdict::Waiting);
}

TEST(Liveness, AWorkerThatHadTheCpuAndDidNotAnswerIsHung) {
    auto t0 = Clock::now();
    PingWindow w{t0, 1'000'000};
    // 2 s without an answer, 0.3 s of it waiting for a CPU: it could have answered.
    EXPECT_EQ(judgeMissedPings(2, w, 1'000'000 + 300'000'000, t0, t0 + 2s), PingVerdict::Hung);
    // Stopped or blocked: no run-queue wait at all.
    EXPECT_EQ(judgeMissedPings(2, w, 1'000'000, t0, t0 + 2s), PingVerdict::Hung);
}

TEST(Liveness, AWorkerWaitingForACpuMostOfTheWindowIsStarved) {
    auto t0 = Clock::now();
    PingWindow w{t0, 5'000'000};
    EXPECT_EQ(judgeMissedPings(2, w, 5'000'000 + 1'500'000'000, t0, t0 + 2s), PingVerdict::Starved);
    EXPECT_EQ(judgeMissedPings(2, w, 5'000'000 + 1'000'000'000, t0, t0 + 2s), PingVerdict::Starved);  // half
}

TEST(Liveness, StarvationIsForgivenForThirtySecondsAtMost) {
    auto first = Clock::now();
    auto now = first + kMaxStarvedWindow;
    PingWindow w{now - 2s, 0};
    EXPECT_EQ(judgeMissedPings(2, w, 2'000'000'000, first, now), PingVerdict::Hung);
    EXPECT_EQ(judgeMissedPings(2, w, 2'000'000'000, first + 1s, now), PingVerdict::Starved);
}

TEST(Liveness, WithoutSchedulerFiguresTheOldRuleHolds) {
    auto t0 = Clock::now();
    EXPECT_EQ(judgeMissedPings(2, PingWindow{t0, std::nullopt}, 2'000'000'000, t0, t0 + 2s), PingVerdict::Hung);
    EXPECT_EQ(judgeMissedPings(2, PingWindow{t0, 0}, std::nullopt, t0, t0 + 2s), PingVerdict::Hung);
    EXPECT_EQ(judgeMissedPings(2, PingWindow{t0, 10}, 5, t0, t0 + 2s), PingVerdict::Hung);  // went backwards
}

// The figures come from the kernel: a stopped child accumulates no run-queue wait.
TEST(Liveness, ReadsTheRunQueueWaitOfARealProcess) {
    RELAYPRO_SKIP_UNDER_QEMU();  // a fork under qemu-user
    EXPECT_TRUE(runQueueWaitNs(::getpid()).has_value());
    pid_t child = ::fork();
    if (child == 0) {
        ::pause();
        ::_exit(0);
    }
    ASSERT_GT(child, 0);
    ::kill(child, SIGSTOP);
    ::usleep(50'000);
    auto a = runQueueWaitNs(child);
    ::usleep(200'000);
    auto b = runQueueWaitNs(child);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(*a, *b);
    EXPECT_FALSE(runQueueWaitNs(child).has_value());  // reaped: no /proc entry
}

}  // namespace
}  // namespace relaypro
