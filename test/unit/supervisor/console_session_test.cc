// Registration's backoff (console-api.md): exponential from 1 s to 5 min, jittered within
// [d/2, d] so that relays restarted together do not retry together.
#include "supervisor/console_session.h"

#include <gtest/gtest.h>
#include <sodium.h>

#include <set>

namespace relaypro {
namespace {

TEST(ConsoleSession, BackoffGrowsFromOneSecondToFiveMinutesWithJitter) {
    ASSERT_GE(sodium_init(), 0);
    for (unsigned attempt = 0; attempt < 40; ++attempt) {
        const int64_t d = std::min<int64_t>(300000, attempt >= 20 ? 300000 : int64_t{1000} << attempt);
        std::set<int64_t> seen;
        for (int i = 0; i < 200; ++i) {
            int64_t ms = ConsoleSession::backoff(attempt).count();
            EXPECT_GE(ms, d / 2) << attempt;
            EXPECT_LE(ms, d) << attempt;
            seen.insert(ms);
        }
        EXPECT_GT(seen.size(), 20u) << "jittered, attempt " << attempt;
    }
    EXPECT_LE(ConsoleSession::backoff(0).count(), 1000);
    EXPECT_GE(ConsoleSession::backoff(100).count(), 150000);
}

}  // namespace
}  // namespace relaypro
