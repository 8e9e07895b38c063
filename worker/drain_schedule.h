// The end of an upgrade's drain (limits.drainSpread, issue 19): at the drain deadline the old
// generation does not cut every tunnel it still holds in the same instant, which would send all
// their Responders back at once; it closes them at an even rate over the spread. Pure
// arithmetic on a clock the caller passes, so that it is unit-tested without waiting.
#pragma once

#include <chrono>
#include <cstddef>

namespace relaypro {

class DrainSchedule {
public:
    using Clock = std::chrono::steady_clock;
    // Closes are never closer together than this: one timer wakes for a batch.
    static constexpr Clock::duration kMinTick = std::chrono::milliseconds(5);

    // Keep the tunnels until `deadline`, then close what is left evenly until deadline + spread.
    // A later call (a stop during an upgrade's drain) may only bring the end forward; it returns
    // false and changes nothing otherwise.
    bool plan(Clock::time_point deadline, Clock::duration spread);
    [[nodiscard]] bool planned() const { return planned_; }

    // How many connections to close at `now`, `open` of them being left: none before the
    // deadline, all from the end on, and in between as many as keep the closes since the
    // deadline proportional to the time since it.
    size_t due(Clock::time_point now, size_t open);
    // When to look again (after closing what due() said).
    [[nodiscard]] Clock::time_point next(Clock::time_point now) const;

private:
    bool planned_ = false;
    Clock::time_point start_{};  // the drain deadline: the spread starts
    Clock::time_point end_{};    // everything is closed by then
    size_t total_ = 0;           // connections open when the spread started
    size_t closed_ = 0;          // closed by the spread so far
    bool counted_ = false;       // total_ is known
};

}  // namespace relaypro
