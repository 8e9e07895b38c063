#include "worker/quiet_limit.h"

#include <gtest/gtest.h>

namespace relaypro {
namespace {

using namespace std::chrono_literals;

// Issue 15, item 2 and its review: idleTimeout is the limit everywhere when set; with 0 a tunnel
// is never cut (spec/config.md: "0 = never"), while an answer or a forward still ends at 60 s.
TEST(QuietLimit, IdleTimeoutWhenSetTheContractsNeverForTunnelsOtherwise) {
    for (QuietPhase phase : {QuietPhase::Answer, QuietPhase::Forward, QuietPhase::Tunnel}) {
        EXPECT_EQ(quietLimit(phase, 3s), std::chrono::nanoseconds(3s));
        EXPECT_EQ(quietLimit(phase, 10min), std::chrono::nanoseconds(10min));
    }
    EXPECT_EQ(quietLimit(QuietPhase::Tunnel, 0s), std::nullopt);
    EXPECT_EQ(quietLimit(QuietPhase::Answer, 0s), std::chrono::nanoseconds(60s));
    EXPECT_EQ(quietLimit(QuietPhase::Forward, 0s), std::chrono::nanoseconds(60s));
}

}  // namespace
}  // namespace relaypro
