// The worker's key store: per-Responder keys derived from the held masters only, cached with a
// bound (least recently used goes first), and dropped when their day's master goes.
#include "worker/key_store.h"

#include <gtest/gtest.h>

#include "common/jose.h"

namespace relaypro {
namespace {

TokenKey master(unsigned char fill) {
    TokenKey k{};
    k.fill(fill);
    return k;
}

TEST(KeyStore, DerivesFromHeldMastersOnly) {
    KeyStore store(8);
    store.update({}, {DayMaster{100, master(1)}, DayMaster{99, master(2)}});
    auto k = store.responderKeyFor(100, "resp-A");
    ASSERT_TRUE(k);
    EXPECT_EQ(*k, responderKey(master(1), "resp-A"));
    EXPECT_EQ(*store.responderKeyFor(99, "resp-A"), responderKey(master(2), "resp-A"));
    EXPECT_NE(*store.responderKeyFor(100, "resp-B"), *k);
    EXPECT_FALSE(store.responderKeyFor(98, "resp-A"));
    EXPECT_FALSE(store.responderKeyFor(101, "resp-A"));
    EXPECT_EQ(*store.masterFor(100), master(1));
    EXPECT_FALSE(store.masterFor(101));
}

TEST(KeyStore, CachesWithABoundAndEvictsTheLeastRecentlyUsed) {
    KeyStore store(3);
    store.update({}, {DayMaster{100, master(1)}});
    for (const char* id : {"a", "b", "c"}) ASSERT_TRUE(store.responderKeyFor(100, id));
    EXPECT_EQ(store.stats().misses, 3u);
    ASSERT_TRUE(store.responderKeyFor(100, "a"));  // a is now the most recent
    EXPECT_EQ(store.stats().hits, 1u);
    ASSERT_TRUE(store.responderKeyFor(100, "d"));  // evicts b
    EXPECT_EQ(store.stats().entries, 3u);
    ASSERT_TRUE(store.responderKeyFor(100, "a"));
    ASSERT_TRUE(store.responderKeyFor(100, "c"));
    EXPECT_EQ(store.stats().hits, 3u);
    ASSERT_TRUE(store.responderKeyFor(100, "b"));  // derived again
    EXPECT_EQ(store.stats().misses, 5u);
    EXPECT_EQ(store.stats().entries, 3u);
}

TEST(KeyStore, ANewDayDropsTheKeysOfTheDayNoLongerHeld) {
    KeyStore store(16);
    store.update({}, {DayMaster{100, master(1)}, DayMaster{99, master(2)}});
    ASSERT_TRUE(store.responderKeyFor(99, "a"));
    ASSERT_TRUE(store.responderKeyFor(100, "a"));
    EXPECT_EQ(store.stats().entries, 2u);
    store.update({}, {DayMaster{101, master(3)}, DayMaster{100, master(1)}});
    EXPECT_EQ(store.stats().entries, 1u);
    EXPECT_FALSE(store.responderKeyFor(99, "a"));
    EXPECT_TRUE(store.responderKeyFor(100, "a"));
    EXPECT_EQ(store.stats().hits, 1u);
}

}  // namespace
}  // namespace relaypro
