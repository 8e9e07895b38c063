// Admission (worker/admission.h): which new TLS connections a worker takes while its ClientHellos
// stand in a queue (issue 19, overload). Nothing is refused for a burst, a quiet spell or a lone
// late ClientHello; a standing queue admits 90 % of the rate served, then a tenth more each window
// that does not stand, and everything again once a window refuses no one.
#include "worker/admission.h"

#include <gtest/gtest.h>

namespace relaypro {
namespace {

using namespace std::chrono_literals;
using Clock = Admission::Clock;

class AdmissionTest : public ::testing::Test {
protected:
    // `n` ClientHellos reached evenly over [from, from + 100 ms), each after `wait`.
    void window(Clock::duration from, int n, Clock::duration wait) {
        for (int i = 0; i < n; ++i) a.reached(t0 + from + i * (std::chrono::microseconds(100ms) / n), wait, wait <= 1s);
    }
    // How many of `n` connections arriving evenly over [from, from + 100 ms) are admitted.
    int arrivals(Clock::duration from, int n) {
        int taken = 0;
        for (int i = 0; i < n; ++i) taken += take(t0 + from + i * (std::chrono::microseconds(100ms) / n)) ? 1 : 0;
        return taken;
    }
    bool take(Clock::time_point t) { return a.admit(t) != Admission::Verdict::Refused; }
    // A first window of 40 served after 300 ms each (400 a second), judged at 100 ms: limiting at
    // 90 % of it.
    void standFirstWindow() {
        window(0ms, 40, 300ms);
        a.reached(t0 + 100ms, 300ms, true);
    }
    Admission a{100ms, 100ms, 4};
    Clock::time_point t0 = Clock::now();
};

TEST_F(AdmissionTest, AStandingQueueAdmitsLessThanTheRateServed) {
    EXPECT_EQ(arrivals(0ms, 40), 40);
    window(0ms, 40, 300ms);  // 40 served in the window, none within 100 ms: 400 a second
    EXPECT_FALSE(a.limiting()) << "not judged before the window ends";
    a.reached(t0 + 100ms, 300ms, true);  // the next window's first: judges the first
    EXPECT_TRUE(a.limiting());
    EXPECT_DOUBLE_EQ(a.rate(), 360);
    // 160 arrive in the next 100 ms (1,600 a second): about 36 are taken (the bucket starts empty).
    const int taken = arrivals(100ms, 160);
    EXPECT_GE(taken, 34);
    EXPECT_LE(taken, 36);
}

TEST_F(AdmissionTest, OneShortWaitInTheWindowIsABurstNotAStandingQueue) {
    for (int i = 0; i < 8; ++i) a.reached(t0 + i * 12ms, i == 5 ? 50ms : 900ms, true);
    a.reached(t0 + 100ms, 900ms, true);
    EXPECT_FALSE(a.limiting());
    EXPECT_EQ(arrivals(100ms, 100), 100);
}

TEST_F(AdmissionTest, TheRateGrowsOnceTheQueueDrainsAndTheLimitEndsWhenNoOneIsRefused) {
    standFirstWindow();
    ASSERT_TRUE(a.limiting());
    ASSERT_DOUBLE_EQ(a.rate(), 360);
    // The queue drains: short waits, arrivals still above the rate.
    EXPECT_LT(arrivals(100ms, 100), 100);
    for (int i = 0; i < 10; ++i) a.reached(t0 + 150ms + i * 5ms, 20ms, true);
    a.reached(t0 + 200ms, 20ms, true);  // judges [100, 200): refused some, no standing queue
    EXPECT_TRUE(a.limiting());
    EXPECT_DOUBLE_EQ(a.rate(), 396) << "a tenth more than the rate (above the 100 a second served)";
    // Arrivals fall below the rate: a window without a refusal ends the limit.
    EXPECT_EQ(arrivals(210ms, 5), 5);
    a.reached(t0 + 300ms, 20ms, true);
    EXPECT_FALSE(a.limiting());
    EXPECT_EQ(arrivals(300ms, 100), 100);
}

TEST_F(AdmissionTest, ALoneLongWaitAfterAQuietSpellRefusesNothing) {
    a.reached(t0, 10ms, true);
    // Nothing for a minute, then one connection that waited (the worker was stopped, say).
    a.reached(t0 + 60s, 900ms, true);
    EXPECT_FALSE(a.limiting());
    EXPECT_TRUE(take(t0 + 60s));
    // A window is judged on what was reached in it (a new window began with that one), and one
    // long wait is not a queue: the next window sees nothing standing.
    a.reached(t0 + 60s + 101ms, 900ms, true);
    EXPECT_FALSE(a.limiting()) << "a queue of one";
    for (int i = 0; i < 3; ++i) a.reached(t0 + 60s + 110ms + i * 10ms, 900ms, true);
    a.reached(t0 + 60s + 202ms, 900ms, true);
    EXPECT_TRUE(a.limiting()) << "four in the window, all late";
}

TEST_F(AdmissionTest, AQuietWindowEndsTheLimit) {
    standFirstWindow();
    ASSERT_TRUE(a.limiting());
    // [100, 200): the one reached at 100 ms, and a refusal: limiting still (at a tenth more).
    EXPECT_FALSE(take(t0 + 100ms));
    EXPECT_TRUE(take(t0 + 250ms)) << "the bucket filled meanwhile";
    ASSERT_TRUE(a.limiting());
    // [250, 350): nothing reached, no one refused.
    EXPECT_TRUE(take(t0 + 360ms));
    EXPECT_FALSE(a.limiting());
}

TEST_F(AdmissionTest, AWindowThatEndedLongAgoSaysNothing) {
    standFirstWindow();
    ASSERT_TRUE(a.limiting());
    EXPECT_TRUE(take(t0 + 10s));
    EXPECT_FALSE(a.limiting());
}

TEST_F(AdmissionTest, NothingServedInAStandingWindowStillAdmitsSome) {
    // Every ClientHello reached had waited past the shed limit: none served.
    window(0ms, 10, 1500ms);
    a.reached(t0 + 100ms, 1500ms, false);
    ASSERT_TRUE(a.limiting());
    EXPECT_DOUBLE_EQ(a.rate(), 10);
    EXPECT_LE(arrivals(100ms, 100), 1);
}

TEST_F(AdmissionTest, AWindowSpentSheddingHalvesTheRateAtMost) {
    standFirstWindow();
    ASSERT_DOUBLE_EQ(a.rate(), 360);
    // [100, 200): two served, the rest shed after waiting too long.
    for (int i = 0; i < 20; ++i) a.reached(t0 + 105ms + i * 4ms, 1500ms, i < 2);
    a.reached(t0 + 200ms, 1500ms, false);
    EXPECT_TRUE(a.limiting());
    EXPECT_DOUBLE_EQ(a.rate(), 180) << "half the rate before, not 90 % of the 20 a second served";
}

TEST_F(AdmissionTest, AQueueThatRanEmptyDoublesTheRate) {
    standFirstWindow();
    ASSERT_DOUBLE_EQ(a.rate(), 360);
    EXPECT_LT(arrivals(100ms, 100), 100) << "some refused";
    a.reached(t0 + 150ms, 20ms, true);
    a.drained(t0 + 151ms);  // and the worker had nothing left to do
    a.reached(t0 + 200ms, 20ms, true);
    EXPECT_TRUE(a.limiting());
    EXPECT_DOUBLE_EQ(a.rate(), 720);
}

TEST_F(AdmissionTest, AnEmptyQueueRefusesNothing) {
    for (int i = 0; i < 100; ++i) {
        a.reached(t0 + i * 10ms, 0ms, true);
        a.drained(t0 + i * 10ms);
        EXPECT_EQ(a.admit(t0 + i * 10ms + 5ms), Admission::Verdict::Free);
    }
}

// A connection admitted and then found gone (its client's FIN was in the accept queue with it)
// gives its token back: the next arrival takes it. Not beyond the bucket, and nothing while not
// limiting.
TEST_F(AdmissionTest, ATokenOfAConnectionFoundGoneGoesToTheNext) {
    standFirstWindow();
    Clock::time_point t = t0 + 150ms;  // 50 ms of tokens at 360 a second: 18
    int taken = 0;
    while (take(t)) ++taken;
    ASSERT_GT(taken, 0);
    EXPECT_FALSE(take(t));
    a.giveBack();
    EXPECT_TRUE(take(t));
    EXPECT_FALSE(take(t));
    for (int i = 0; i < 1000; ++i) a.giveBack();
    int refilled = 0;
    while (take(t)) ++refilled;
    EXPECT_LE(refilled, 36);  // one window's worth at most

    Admission idle{100ms, 100ms, 4};
    idle.giveBack();
    EXPECT_EQ(idle.admit(t0), Admission::Verdict::Free);
}

// The rate served is measured over the window as it lasted: a window judged late (its next
// ClientHello came 50 ms after its 100 ms) served its count over 150 ms, not 100.
TEST_F(AdmissionTest, TheRateServedIsOverTheWindowAsItLasted) {
    window(0ms, 40, 300ms);              // 40 served from 0 ...
    a.reached(t0 + 150ms, 300ms, true);  // ... judged at 150 ms: 267 a second, not 400
    ASSERT_TRUE(a.limiting());
    EXPECT_NEAR(a.rate(), 0.9 * 40 / 0.150, 1);
    // What the next 100 ms admit of 100 arrivals: the bucket starts empty, 24 come in (not 36).
    int taken = 0;
    for (int i = 0; i < 100; ++i) taken += take(t0 + 150ms + i * 1ms) ? 1 : 0;
    EXPECT_GE(taken, 22);
    EXPECT_LE(taken, 25);
}

}  // namespace
}  // namespace relaypro
