#include "worker/drain_schedule.h"

#include <gtest/gtest.h>

#include <vector>

namespace relaypro {
namespace {

using namespace std::chrono_literals;
using Clock = DrainSchedule::Clock;

// Walks the schedule the way the worker's timer does: at each next(), close what due() says.
// Returns the moments of the closes, one per connection.
std::vector<Clock::time_point> run(DrainSchedule& s, Clock::time_point from, size_t open) {
    std::vector<Clock::time_point> closes;
    Clock::time_point now = from;
    for (int turns = 0; open > 0 && turns < 100000; ++turns) {
        size_t n = s.due(now, open);
        for (size_t i = 0; i < n; ++i) closes.push_back(now);
        open -= n;
        if (open == 0) break;
        Clock::time_point next = s.next(now);
        EXPECT_GT(next, now);
        now = next;
    }
    return closes;
}

TEST(DrainSchedule, NothingClosesBeforeTheDeadline) {
    DrainSchedule s;
    Clock::time_point t0{};
    ASSERT_TRUE(s.plan(t0 + 2s, 4s));
    EXPECT_EQ(s.due(t0, 100), 0u);
    EXPECT_EQ(s.due(t0 + 1999ms, 100), 0u);
    EXPECT_EQ(s.next(t0 + 1s), t0 + 2s);
}

TEST(DrainSchedule, ClosesEvenlyOverTheSpread) {
    DrainSchedule s;
    Clock::time_point t0{};
    ASSERT_TRUE(s.plan(t0 + 2s, 4s));
    auto closes = run(s, t0 + 2s, 2000);
    ASSERT_EQ(closes.size(), 2000u);
    EXPECT_GE(closes.front(), t0 + 2s);
    EXPECT_LE(closes.back(), t0 + 6s);
    // Every second of the spread closes a quarter, give or take one timer tick's batch.
    for (int second = 0; second < 4; ++second) {
        auto from = t0 + 2s + std::chrono::seconds(second), to = from + 1s;
        size_t n = 0;
        for (auto c : closes) n += (c >= from && c < to) ? 1u : 0u;
        EXPECT_NEAR(static_cast<double>(n), 500.0, 5.0) << "second " << second;
    }
}

TEST(DrainSchedule, BatchesAreNoCloserThanTheMinimumTick) {
    DrainSchedule s;
    Clock::time_point t0{};
    ASSERT_TRUE(s.plan(t0, 1s));
    auto closes = run(s, t0, 100000);  // 100 per millisecond: batches of ~500 every 5 ms
    ASSERT_EQ(closes.size(), 100000u);
    size_t batches = 1;
    for (size_t i = 1; i < closes.size(); ++i) {
        if (closes[i] != closes[i - 1]) {
            EXPECT_GE(closes[i] - closes[i - 1], DrainSchedule::kMinTick);
            ++batches;
        }
    }
    EXPECT_LE(batches, 201u);
}

TEST(DrainSchedule, AZeroSpreadClosesEverythingAtTheDeadline) {
    DrainSchedule s;
    Clock::time_point t0{};
    ASSERT_TRUE(s.plan(t0 + 3s, 0s));
    EXPECT_EQ(s.next(t0), t0 + 3s);
    EXPECT_EQ(s.due(t0 + 3s, 7), 7u);
}

TEST(DrainSchedule, ALaterDrainOnlyBringsTheEndForward) {
    DrainSchedule s;
    Clock::time_point t0{};
    ASSERT_TRUE(s.plan(t0 + 10min, 1min));
    EXPECT_FALSE(s.plan(t0 + 20min, 0s));  // a stop whose grace ends later changes nothing
    EXPECT_EQ(s.next(t0), t0 + 10min);
    ASSERT_TRUE(s.plan(t0 + 15s, 0s));  // a stop: everything at its grace's end
    EXPECT_EQ(s.due(t0 + 14s, 50), 0u);
    EXPECT_EQ(s.due(t0 + 15s, 50), 50u);
}

TEST(DrainSchedule, AStopDuringTheSpreadClosesTheRestAtItsEnd) {
    DrainSchedule s;
    Clock::time_point t0{};
    ASSERT_TRUE(s.plan(t0, 10s));
    EXPECT_EQ(s.due(t0 + 1s, 1000), 100u);
    ASSERT_TRUE(s.plan(t0 + 2s, 0s));
    EXPECT_LE(s.next(t0 + 1s), t0 + 2s);
    EXPECT_EQ(s.due(t0 + 2s, 900), 900u);
}

}  // namespace
}  // namespace relaypro
