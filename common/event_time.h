// A libevent timeout from a std::chrono duration (both sides' loops use it).
#pragma once

#include <sys/time.h>

#include <chrono>

namespace relaypro {

template <typename Rep, typename Period>
timeval toTimeval(std::chrono::duration<Rep, Period> d) {
    auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    return timeval{static_cast<time_t>(us / 1000000), static_cast<suseconds_t>(us % 1000000)};
}

}  // namespace relaypro
