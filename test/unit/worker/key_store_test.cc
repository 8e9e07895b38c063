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

TEST(KeyStore, DerivedKeysEnterTheCacheOnlyWhenRemembered) {
    KeyStore store(4);
    store.update({}, {DayMaster{100, master(1)}});
    ASSERT_TRUE(store.responderKeyFor(100, "real"));
    // A flood of made-up Responders: derived for the check, never cached.
    for (int i = 0; i < 100; ++i) ASSERT_TRUE(store.derivedKey(100, "made-up-" + std::to_string(i)));
    EXPECT_EQ(store.stats().entries, 1u);
    EXPECT_TRUE(store.cachedKey(100, "real"));
    auto k = store.derivedKey(100, "verified");
    ASSERT_TRUE(k);
    store.remember(100, "verified", *k);
    EXPECT_EQ(*store.cachedKey(100, "verified"), responderKey(master(1), "verified"));
    store.remember(99, "stale", *k);  // a day not held is not cached
    EXPECT_EQ(store.stats().entries, 2u);
}

}  // namespace
}  // namespace relaypro
