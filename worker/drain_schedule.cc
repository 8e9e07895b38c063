#include "worker/drain_schedule.h"

#include <algorithm>
#include <cstdint>

namespace relaypro {

namespace {

constexpr uint64_t kMaxTotal = 1000000;

uint64_t micros(DrainSchedule::Clock::duration d) {
    return static_cast<uint64_t>(
        std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::microseconds>(d).count()));
}

}  // namespace

bool DrainSchedule::plan(Clock::time_point deadline, Clock::duration spread) {
    Clock::time_point end = deadline + spread;
    if (planned_ && end >= end_) return false;
    if (!planned_ || deadline < start_) start_ = deadline;
    end_ = end;
    start_ = std::min(start_, end_);
    planned_ = true;
    return true;
}

size_t DrainSchedule::due(Clock::time_point now, size_t open) {
    if (!planned_ || now < start_) return 0;
    if (now >= end_) return open;
    if (!counted_) {
        total_ = open;
        counted_ = true;
    }
    // ceil(total * elapsed / span) in microseconds: a span of up to a day (8.64e10 µs) times a
    // worker's connections (under 20,000 here, a million at most) stays inside 64 bits.
    uint64_t elapsed = micros(now - start_);
    uint64_t span = std::max<uint64_t>(1, micros(end_ - start_));
    auto target = static_cast<size_t>((std::min<uint64_t>(total_, kMaxTotal) * elapsed + span - 1) / span);
    size_t n = target > closed_ ? std::min(target - closed_, open) : 0;
    closed_ += n;
    return n;
}

DrainSchedule::Clock::time_point DrainSchedule::next(Clock::time_point now) const {
    if (now < start_) return start_;
    if (!counted_) return now;  // the spread starts now: due() counts what is left (review: a 0 s grace)
    if (total_ == 0) return end_;
    // The moment the proportional target passes closed_: start + span * (closed + 1) / total.
    uint64_t span = micros(end_ - start_);
    uint64_t total = std::min<uint64_t>(total_, kMaxTotal);
    auto offset =
        std::chrono::microseconds(static_cast<int64_t>(span * std::min<uint64_t>(closed_ + 1, total) / total));
    Clock::time_point at = start_ + offset;
    return std::clamp(at, now + kMinTick, std::max(end_, now + kMinTick));
}

}  // namespace relaypro
