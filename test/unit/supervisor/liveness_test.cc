// A worker that missed two pings: hung (replace it) or starved of CPU (keep it), lifecycle.md's
// ping rule refined in supervisor/liveness.h.
#include "supervisor/liveness.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
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
    // 2 s without an answer, 0.3 s of it runnable (running or waiting for a CPU): it could have answered.
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

// Issue 19: a worker busy in one long turn of its loop is runnable as much as one waiting for a
// CPU: the figure is the time on a CPU plus the run-queue wait.
TEST(Liveness, TimeOnTheCpuCountsAsRunnable) {
    auto before = runnableNs(::getpid());
    if (!before) GTEST_SKIP() << "no /proc/PID/schedstat here";
    timespec t0{};
    ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
    for (;;) {  // 100 ms of this thread's CPU
        timespec t{};
        ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000000000LL + (t.tv_nsec - t0.tv_nsec) >= 100000000LL) break;
    }
    auto after = runnableNs(::getpid());
    ASSERT_TRUE(after);
    EXPECT_GE(*after - *before, 100'000'000U);
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
    EXPECT_TRUE(runnableNs(::getpid()).has_value());
    pid_t child = ::fork();
    if (child == 0) {
        ::pause();
        ::_exit(0);
    }
    ASSERT_GT(child, 0);
    ::kill(child, SIGSTOP);
    ::usleep(50'000);
    auto a = runnableNs(child);
    ::usleep(200'000);
    auto b = runnableNs(child);
    ::kill(child, SIGKILL);
    ::waitpid(child, nullptr, 0);
    ASSERT_TRUE(a && b);
    EXPECT_EQ(*a, *b);
    EXPECT_FALSE(runnableNs(child).has_value());  // reaped: no /proc entry
}

}  // namespace
}  // namespace relaypro
