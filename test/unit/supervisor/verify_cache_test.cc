#include "supervisor/verify_cache.h"

#include <gtest/gtest.h>

namespace relaypro {
namespace {

using namespace std::chrono_literals;
const VerifyCache::Clock::time_point t0{};

TEST(VerifyCache, RemembersAValidAnswerForAMinute) {
    VerifyCache cache;
    auto k = cache.key("responder-1", "credential");
    EXPECT_FALSE(cache.find(k, t0).has_value());
    cache.store(k, true, t0, cache.epoch());
    EXPECT_EQ(cache.find(k, t0 + 59s), std::optional<bool>(true));
    EXPECT_FALSE(cache.find(k, t0 + 60s).has_value());
    EXPECT_EQ(cache.size(), 0U) << "an expired entry is forgotten when found";
}

TEST(VerifyCache, RemembersAnInvalidAnswerForFiveSeconds) {
    VerifyCache cache;
    auto k = cache.key("responder-1", "wrong");
    cache.store(k, false, t0, cache.epoch());
    EXPECT_EQ(cache.find(k, t0 + 4s), std::optional<bool>(false));
    EXPECT_FALSE(cache.find(k, t0 + 5s).has_value());
}

TEST(VerifyCache, KeysDependOnTheResponderAndTheCredential) {
    VerifyCache cache;
    auto k = cache.key("responder-1", "secret-credential");
    EXPECT_NE(k, cache.key("responder-1", "secret-credential2"));
    EXPECT_NE(k, cache.key("responder-2", "secret-credential"));
    EXPECT_EQ(k, cache.key("responder-1", "secret-credential"));
    EXPECT_EQ(k.find("secret-credential"), std::string::npos) << "the credential is never kept";
    // Two caches hash with keys of their own: a key says nothing outside its process.
    VerifyCache other;
    EXPECT_NE(k, other.key("responder-1", "secret-credential"));
    // The separator keeps ("a", "bc") and ("ab", "c")-like pairs apart.
    EXPECT_NE(cache.key("ab", "c").substr(0, 3), cache.key("a", "bc").substr(0, 3));
}

TEST(VerifyCache, AFullCacheForgetsWhatExpiredFirst) {
    VerifyCache cache;
    for (size_t i = 0; i < VerifyCache::kMaxEntries; ++i) {
        cache.store(cache.key("r" + std::to_string(i), "c"), i % 2 == 0, t0, cache.epoch());
    }
    ASSERT_EQ(cache.size(), VerifyCache::kMaxEntries);
    // At t0 + 10 s the invalid half has expired: storing one more drops only that half.
    auto fresh = cache.key("new", "c");
    cache.store(fresh, true, t0 + 10s, cache.epoch());
    EXPECT_EQ(cache.size(), VerifyCache::kMaxEntries / 2 + 1);
    EXPECT_EQ(cache.find(cache.key("r0", "c"), t0 + 10s), std::optional<bool>(true));
    EXPECT_EQ(cache.find(fresh, t0 + 10s), std::optional<bool>(true));
}

TEST(VerifyCache, AFullCacheOfLiveEntriesStartsAgain) {
    VerifyCache cache;
    for (size_t i = 0; i < VerifyCache::kMaxEntries; ++i)
        cache.store(cache.key("r" + std::to_string(i), "c"), true, t0, cache.epoch());
    auto k = cache.key("new", "c");
    cache.store(k, true, t0 + 1s, cache.epoch());
    EXPECT_EQ(cache.size(), 1U) << "memory stays bounded when nothing has expired";
    EXPECT_EQ(cache.find(k, t0 + 1s), std::optional<bool>(true));
    // Storing an answer again for a key already held never empties the cache.
    cache.store(k, false, t0 + 2s, cache.epoch());
    EXPECT_EQ(cache.find(k, t0 + 2s), std::optional<bool>(false));
}

// An answer asked for before a clear (a reload that changed organizationId, a registration)
// arrives after it: it was judged against what the clear made stale, and is not stored.
TEST(VerifyCache, AnAnswerToAQuestionFromBeforeAClearIsNotStored) {
    VerifyCache cache;
    auto k = cache.key("responder-1", "credential");
    const uint64_t asked = cache.epoch();
    cache.clear();
    cache.store(k, true, t0, asked);
    EXPECT_FALSE(cache.find(k, t0).has_value());
    cache.store(k, true, t0, cache.epoch());
    EXPECT_EQ(cache.find(k, t0), std::optional<bool>(true));
}

TEST(VerifyCache, ClearForgetsEverything) {
    VerifyCache cache;
    auto k = cache.key("responder-1", "credential");
    cache.store(k, true, t0, cache.epoch());
    cache.clear();
    EXPECT_FALSE(cache.find(k, t0).has_value());
}

}  // namespace
}  // namespace relaypro
