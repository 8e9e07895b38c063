#include "supervisor/verify_cache.h"

#include <sodium.h>

namespace relaypro {

VerifyCache::VerifyCache() {
    randombytes_buf(hashKey_.data(), hashKey_.size());
}

std::string VerifyCache::key(std::string_view responderId, std::string_view credential) const {
    unsigned char digest[32];
    crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(credential.data()),
                       credential.size(), hashKey_.data(), hashKey_.size());
    std::string out(responderId);
    out.push_back('\0');  // a Responder id holds no NUL: the two parts cannot run into each other
    out.append(reinterpret_cast<const char*>(digest), sizeof digest);
    return out;
}

std::optional<bool> VerifyCache::find(const std::string& key, Clock::time_point now) {
    auto it = entries_.find(key);
    if (it == entries_.end()) return std::nullopt;
    if (it->second.expires > now) return it->second.valid;
    entries_.erase(it);
    return std::nullopt;
}

void VerifyCache::store(const std::string& key, bool valid, Clock::time_point now, uint64_t askedAt) {
    if (askedAt != epoch_) return;
    if (entries_.size() >= kMaxEntries && !entries_.contains(key)) {
        std::erase_if(entries_, [now](const auto& e) { return e.second.expires <= now; });
        if (entries_.size() >= kMaxEntries) entries_.clear();
    }
    entries_[key] = Entry{valid, now + (valid ? kValidFor : kInvalidFor)};
}

}  // namespace relaypro
