// Small types shared by the server and its connections.
#pragma once

#include <sys/time.h>

#include <chrono>
#include <cstdint>

namespace relaypro {

// A libevent timeout from a std::chrono duration.
template <typename Rep, typename Period>
timeval toTimeval(std::chrono::duration<Rep, Period> d) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

// The supervisor's answer about a Responder that asks for a token (protocol.md, token endpoint).
enum class VerifyResult : uint8_t { Valid, Invalid, RateLimited, NotRegistered, ConsoleUnavailable };

}  // namespace relaypro
