// Per-source token buckets (a burst equal to the per-minute limit, refilled continuously).
// Sources are IPv4 addresses or IPv6 /64 prefixes, so one host cannot dodge the limit by
// rotating through its own addresses.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <unordered_map>

namespace relaypro {

class RateLimiter {
public:
    using Clock = std::chrono::steady_clock;
    explicit RateLimiter(size_t maxSources = 100000) : maxSources_(maxSources) {}

    // The bucket key of a peer address.
    static std::string sourceKey(const sockaddr_storage& addr);

    // Whether `key` has a token left at this rate (without taking it).
    [[nodiscard]] bool allowed(const std::string& key, uint32_t perMinute, Clock::time_point now);
    // Takes one token (an attempt that counts against the limit).
    void consume(const std::string& key, uint32_t perMinute, Clock::time_point now);
    // Whole seconds until the next token.
    [[nodiscard]] uint32_t retryAfterSeconds(const std::string& key, uint32_t perMinute, Clock::time_point now);

private:
    struct Bucket {
        double tokens;
        Clock::time_point updated;
    };
    Bucket& refill(const std::string& key, uint32_t perMinute, Clock::time_point now);
    void prune(uint32_t perMinute, Clock::time_point now);

    std::unordered_map<std::string, Bucket> buckets_;
    size_t maxSources_;
};

}  // namespace relaypro
