#include "supervisor/authentication_counter.h"

#include <gtest/gtest.h>

namespace relaypro {
namespace {

using Admission = AuthenticationCounter::Admission;
using Clock = AuthenticationCounter::Clock;
const Clock::time_point t0 = Clock::time_point{} + std::chrono::hours(1);

TEST(AuthenticationCounter, ASourceIsBlockedOnceItsFailuresUseItsBucket) {
    AuthenticationCounter counter;
    AuthenticationCounter::WorkerShare share;
    // A burst equal to the per-minute limit, then Retry-After until the next token (60 s / 3).
    EXPECT_FALSE(counter.failureReported(share, "192.0.2.1", 3, t0).blockedSeconds);
    EXPECT_FALSE(counter.failureReported(share, "192.0.2.1", 3, t0).blockedSeconds);
    auto third = counter.failureReported(share, "192.0.2.1", 3, t0);
    ASSERT_TRUE(third.blockedSeconds);
    EXPECT_EQ(*third.blockedSeconds, 20U);
    EXPECT_TRUE(third.newlyBlocked) << "every worker is told";
    // Another source has a bucket of its own; a blocked one stays blocked, and costs the worker's
    // cap nothing.
    EXPECT_FALSE(counter.failureReported(share, "192.0.2.2", 3, t0).blockedSeconds);
    auto again = counter.failureReported(share, "192.0.2.1", 3, t0);
    EXPECT_TRUE(again.blockedSeconds);
    EXPECT_FALSE(again.newlyBlocked) << "only the reporting worker is answered";
    EXPECT_EQ(share.failuresThisSecond, 4U);
}

TEST(AuthenticationCounter, AWorkersReportsCountUpToItsCapPerSecond) {
    AuthenticationCounter counter;
    AuthenticationCounter::WorkerShare share;
    const uint32_t many = 1000000;  // no source runs out
    for (uint32_t i = 0; i < AuthenticationCounter::kMaxFailuresPerSecond; ++i) {
        ASSERT_FALSE(counter.failureReported(share, "s" + std::to_string(i), many, t0).capPassed);
    }
    // The first report over the cap says so (the pool logs it), the next ones do not; none counts.
    EXPECT_TRUE(counter.failureReported(share, "x", 1, t0).capPassed);
    auto later = counter.failureReported(share, "x", 1, t0 + std::chrono::milliseconds(999));
    EXPECT_FALSE(later.capPassed);
    EXPECT_FALSE(later.blockedSeconds) << "over the cap: not counted, so not blocked";
    // The next second starts again: "x" counts now, and with a limit of one it is blocked.
    auto next = counter.failureReported(share, "x", 1, t0 + std::chrono::seconds(1));
    EXPECT_FALSE(next.capPassed);
    EXPECT_TRUE(next.blockedSeconds);
    EXPECT_EQ(share.failuresThisSecond, 1U);
}

TEST(AuthenticationCounter, ARepeatedTicketInFlightIsIgnored) {
    AuthenticationCounter counter;
    AuthenticationCounter::WorkerShare share;
    EXPECT_EQ(counter.admitVerification(share, 10, 1, "a", 5, 60, t0).admission, Admission::Admitted);
    EXPECT_EQ(counter.admitVerification(share, 10, 1, "a", 5, 60, t0).admission, Admission::Repeat);
    // Another worker may use the same ticket number.
    EXPECT_EQ(counter.admitVerification(share, 11, 1, "a", 5, 60, t0).admission, Admission::Admitted);
    EXPECT_EQ(counter.inFlight(), 2U);
    counter.verificationEnded(10, 1, &share);
    EXPECT_EQ(counter.inFlight(), 1U);
    EXPECT_EQ(share.verifying, 1U);
    EXPECT_EQ(counter.admitVerification(share, 10, 1, "a", 5, 60, t0).admission, Admission::Admitted);
}

TEST(AuthenticationCounter, VerificationsBeyondAWorkersShareAreRefusedAndLoggedOnce) {
    AuthenticationCounter counter;
    AuthenticationCounter::WorkerShare share;
    EXPECT_EQ(AuthenticationCounter::verifyCap(0), AuthenticationCounter::kMaxVerifyingUnlimited);
    EXPECT_EQ(AuthenticationCounter::verifyCap(7), 7U);
    ASSERT_EQ(counter.admitVerification(share, 10, 1, "a", 2, 60, t0).admission, Admission::Admitted);
    ASSERT_EQ(counter.admitVerification(share, 10, 2, "b", 2, 60, t0).admission, Admission::Admitted);
    auto over = counter.admitVerification(share, 10, 3, "c", 2, 60, t0);
    EXPECT_EQ(over.admission, Admission::OverCap);
    EXPECT_TRUE(over.logCap);
    EXPECT_EQ(counter.inFlight(), 2U) << "a refused one is not in flight";
    EXPECT_FALSE(counter.admitVerification(share, 10, 4, "c", 2, 60, t0).logCap);
    // Below the cap again, the next time over it is logged again.
    counter.verificationEnded(10, 1, &share);
    EXPECT_EQ(counter.admitVerification(share, 10, 5, "d", 2, 60, t0).admission, Admission::Admitted);
    EXPECT_TRUE(counter.admitVerification(share, 10, 6, "e", 2, 60, t0).logCap);
}

TEST(AuthenticationCounter, TokenRequestsAreRateLimitedPerSource) {
    AuthenticationCounter counter;
    AuthenticationCounter::WorkerShare share;
    EXPECT_EQ(counter.admitVerification(share, 10, 1, "a", 100, 2, t0).admission, Admission::Admitted);
    EXPECT_EQ(counter.admitVerification(share, 10, 2, "a", 100, 2, t0).admission, Admission::Admitted);
    auto limited = counter.admitVerification(share, 10, 3, "a", 100, 2, t0);
    EXPECT_EQ(limited.admission, Admission::RateLimited);
    EXPECT_EQ(limited.retryAfterSeconds, 30U);
    // A rate-limited one is answered at once and ended like any other.
    EXPECT_EQ(share.verifying, 3U);
    counter.verificationEnded(10, 3, &share);
    EXPECT_EQ(share.verifying, 2U);
    EXPECT_EQ(counter.admitVerification(share, 10, 4, "b", 100, 2, t0).admission, Admission::Admitted);
}

TEST(AuthenticationCounter, AnAnswerForAWorkerThatIsGoneOnlyEndsTheVerification) {
    AuthenticationCounter counter;
    AuthenticationCounter::WorkerShare share;
    ASSERT_EQ(counter.admitVerification(share, 10, 1, "a", 5, 60, t0).admission, Admission::Admitted);
    counter.verificationEnded(10, 1, nullptr);
    EXPECT_EQ(counter.inFlight(), 0U);
    counter.verificationEnded(10, 1, &share);
    counter.verificationEnded(10, 1, &share);
    EXPECT_EQ(share.verifying, 0U) << "never below zero";
}

}  // namespace
}  // namespace relaypro
