#include "common/rate_limiter.h"

#include <netinet/in.h>

#include <algorithm>
#include <cmath>
#include <cstring>

namespace relaypro {

std::string RateLimiter::sourceKey(const sockaddr_storage& addr) {
    if (addr.ss_family == AF_INET) {
        const auto* s = reinterpret_cast<const sockaddr_in*>(&addr);
        return std::string("4") + std::string(reinterpret_cast<const char*>(&s->sin_addr), 4);
    }
    if (addr.ss_family == AF_INET6) {
        const auto* s = reinterpret_cast<const sockaddr_in6*>(&addr);
        // An IPv4-mapped address is its IPv4 address.
        static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (std::memcmp(&s->sin6_addr, kMapped, 12) == 0) {
            return std::string("4") + std::string(reinterpret_cast<const char*>(&s->sin6_addr) + 12, 4);
        }
        return std::string("6") + std::string(reinterpret_cast<const char*>(&s->sin6_addr), 8);
    }
    return "?";
}

RateLimiter::Bucket& RateLimiter::refill(const std::string& key, uint32_t perMinute, Clock::time_point now) {
    auto it = buckets_.find(key);
    if (it == buckets_.end()) {
        if (buckets_.size() >= maxSources_) prune(perMinute, now);
        it = buckets_.emplace(key, Bucket{static_cast<double>(perMinute), now}).first;
    }
    Bucket& b = it->second;
    double elapsedMinutes = std::chrono::duration<double>(now - b.updated).count() / 60.0;
    b.tokens = std::min(static_cast<double>(perMinute), b.tokens + elapsedMinutes * perMinute);
    b.updated = now;
    return b;
}

void RateLimiter::prune(uint32_t perMinute, Clock::time_point now) {
    // Full buckets carry no information: drop them. If everything is busy, drop all (a flood
    // of distinct sources must not grow memory without bound).
    for (auto it = buckets_.begin(); it != buckets_.end();) {
        double elapsedMinutes = std::chrono::duration<double>(now - it->second.updated).count() / 60.0;
        if (it->second.tokens + elapsedMinutes * perMinute >= perMinute) {
            it = buckets_.erase(it);
        } else {
            ++it;
        }
    }
    if (buckets_.size() >= maxSources_) buckets_.clear();
}

bool RateLimiter::allowed(const std::string& key, uint32_t perMinute, Clock::time_point now) {
    if (!buckets_.contains(key)) return perMinute > 0;
    return refill(key, perMinute, now).tokens >= 1.0;
}

void RateLimiter::consume(const std::string& key, uint32_t perMinute, Clock::time_point now) {
    Bucket& b = refill(key, perMinute, now);
    b.tokens = std::max(0.0, b.tokens - 1.0);
}

uint32_t RateLimiter::retryAfterSeconds(const std::string& key, uint32_t perMinute, Clock::time_point now) {
    Bucket& b = refill(key, perMinute, now);
    if (b.tokens >= 1.0 || perMinute == 0) return 0;
    double seconds = (1.0 - b.tokens) * 60.0 / perMinute;
    return static_cast<uint32_t>(std::ceil(seconds));
}

}  // namespace relaypro
