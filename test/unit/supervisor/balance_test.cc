#include "supervisor/balance.h"

#include <gtest/gtest.h>

namespace relaypro {
namespace {

TEST(Balance, EvenWorkersAndSingleWorkersNeverHold) {
    EXPECT_EQ(acceptHolds({}), std::vector<bool>{});
    EXPECT_EQ(acceptHolds({50000}), std::vector<bool>{false});
    EXPECT_EQ(acceptHolds({5000, 5000, 5000}), (std::vector<bool>{false, false, false}));
    EXPECT_EQ(acceptHolds({0, 0}), (std::vector<bool>{false, false}));
}

TEST(Balance, OnlyWorkersWellAboveTheAverageHold) {
    // The 100,000-tunnel run: 8,217 at the fullest, 3,717 at the emptiest.
    EXPECT_EQ(acceptHolds({8217, 3717, 5000, 5066}), (std::vector<bool>{true, false, false, false}));
    // Average 100: at most 64 above it accepts on.
    EXPECT_EQ(acceptHolds({164, 36}), (std::vector<bool>{false, false}));
    EXPECT_EQ(acceptHolds({165, 35}), (std::vector<bool>{true, false}));
    // Average 9,000: 1/32 of it (281) is the margin.
    EXPECT_EQ(acceptHolds({9281, 8719}), (std::vector<bool>{false, false}));
    EXPECT_EQ(acceptHolds({9282, 8718}), (std::vector<bool>{true, false}));
}

// A compromised worker reports a count near 2^64: the sum wrapped, the average came out at 16
// and every honest worker was told to hold its accepts, renewed each second (review, issue 17).
TEST(Balance, AHugeReportedCountHoldsOnlyThatWorker) {
    const std::vector<uint64_t> counts{100, 100, UINT64_MAX - 150};
    EXPECT_EQ(averageOf(counts), (UINT64_MAX - 150) / 3 + 66);
    EXPECT_EQ(acceptHolds(counts), (std::vector<bool>{false, false, true}));
    const std::vector<uint64_t> all{UINT64_MAX, UINT64_MAX};
    EXPECT_EQ(averageOf(all), UINT64_MAX);
    EXPECT_EQ(acceptHolds(all), (std::vector<bool>{false, false})) << "no limit wraps either";
}

TEST(Balance, TheWorkerWithTheFewestConnectionsAlwaysAccepts) {
    for (std::vector<uint64_t> counts :
         {std::vector<uint64_t>{1000000, 0, 0}, {7, 900, 900, 900, 900}, {0, 100000}, {3, 3, 3, 100000, 100000}}) {
        auto hold = acceptHolds(counts);
        auto fewest = static_cast<size_t>(std::min_element(counts.begin(), counts.end()) - counts.begin());
        EXPECT_FALSE(hold[fewest]);
        EXPECT_LT(std::count(hold.begin(), hold.end(), true), static_cast<long>(counts.size()));
    }
}

}  // namespace
}  // namespace relaypro
