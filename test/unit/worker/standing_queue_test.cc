// CoDel's standing-queue test as the worker uses it for new TLS connections (issue 19, overload):
// refuse only after a whole window in which nothing left the queue within the target.
#include "worker/standing_queue.h"

#include <gtest/gtest.h>

namespace relaypro {
namespace {

using namespace std::chrono_literals;
using Clock = StandingQueue::Clock;

class StandingQueueTest : public ::testing::Test {
protected:
    StandingQueue q{200ms, 200ms};
    Clock::time_point t0 = Clock::now();
};

TEST_F(StandingQueueTest, AQueueThatStaysLongForAWindowRefusesForTheNext) {
    EXPECT_FALSE(q.refusing(t0));
    for (int i = 0; i < 8; ++i) q.left(t0 + i * 25ms, 300ms);  // 0 … 175 ms: the first window
    EXPECT_FALSE(q.refusing(t0 + 199ms)) << "not judged before the window ends";
    q.left(t0 + 200ms, 300ms);  // the first item after it: judged
    EXPECT_TRUE(q.refusing(t0 + 200ms));
    EXPECT_TRUE(q.refusing(t0 + 399ms));
    EXPECT_FALSE(q.refusing(t0 + 400ms)) << "one window after the decision";
}

TEST_F(StandingQueueTest, OneShortWaitInTheWindowIsABurstNotAStandingQueue) {
    for (int i = 0; i < 8; ++i) q.left(t0 + i * 25ms, i == 5 ? 150ms : 900ms);
    q.left(t0 + 200ms, 900ms);
    EXPECT_FALSE(q.refusing(t0 + 201ms));
}

TEST_F(StandingQueueTest, ItStopsRefusingWhenAWindowSeesAShortWait) {
    for (int i = 0; i <= 8; ++i) q.left(t0 + i * 25ms, 500ms);
    ASSERT_TRUE(q.refusing(t0 + 201ms));
    // The next window: what was taken before the refusal drains, faster and faster.
    q.left(t0 + 250ms, 400ms);
    q.left(t0 + 300ms, 100ms);
    q.left(t0 + 401ms, 50ms);  // ends it: not refused again after the first refusal's window
    EXPECT_FALSE(q.refusing(t0 + 402ms + 200ms));
    EXPECT_FALSE(q.refusing(t0 + 402ms)) << "the refusal ran one window from 200 ms";
}

TEST_F(StandingQueueTest, ALoneLongWaitAfterAQuietSpellRefusesNothing) {
    q.left(t0, 10ms);
    // Nothing for a minute, then one connection that waited (the worker was stopped, say).
    q.left(t0 + 60s, 900ms);
    EXPECT_FALSE(q.refusing(t0 + 60s));
    // A window is judged only on what left in it: a new window began with that one.
    q.left(t0 + 60s + 201ms, 900ms);
    EXPECT_TRUE(q.refusing(t0 + 60s + 202ms));
}

TEST_F(StandingQueueTest, AnEmptyQueueRefusesNothing) {
    for (int i = 0; i < 100; ++i) q.left(t0 + i * 10ms, 0ms);
    for (int i = 0; i < 100; ++i) EXPECT_FALSE(q.refusing(t0 + i * 10ms));
}

}  // namespace
}  // namespace relaypro
