// The console's recent verify answers (console-api.md, verify): a Responder that asks for a
// token again within a minute costs no console call. Entries are keyed by the Responder and a
// keyed hash of its credential; the credential itself is never kept.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace relaypro {

class VerifyCache {
public:
    using Clock = std::chrono::steady_clock;
    static constexpr size_t kMaxEntries = 100000;
    static constexpr std::chrono::seconds kValidFor{60};   // a "valid" answer
    static constexpr std::chrono::seconds kInvalidFor{5};  // an "invalid" one: the Responder may be fixed soon

    VerifyCache();  // a random hash key of its own

    // The entry's name for this Responder and credential.
    [[nodiscard]] std::string key(std::string_view responderId, std::string_view credential) const;
    // The answer stored for `key` if it has not expired by `now`; an expired one is forgotten.
    [[nodiscard]] std::optional<bool> find(const std::string& key, Clock::time_point now);
    // Which clear() the cache is at: a question asked before a clear() must not store its answer
    // after it (it was judged against what the clear() made stale, e.g. another organizationId).
    [[nodiscard]] uint64_t epoch() const { return epoch_; }
    // Stores the answer to a question asked at `askedAt` (epoch()), unless the cache was cleared
    // since. A full cache first forgets what has expired, and everything if that frees nothing.
    void store(const std::string& key, bool valid, Clock::time_point now, uint64_t askedAt);
    // A new registration, revocation or configuration makes every answer stale.
    void clear() {
        entries_.clear();
        ++epoch_;
    }
    [[nodiscard]] size_t size() const { return entries_.size(); }

private:
    struct Entry {
        bool valid;
        Clock::time_point expires;
    };
    std::unordered_map<std::string, Entry> entries_;
    std::array<unsigned char, 32> hashKey_{};
    uint64_t epoch_ = 0;
};

}  // namespace relaypro
