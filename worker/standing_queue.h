// CoDel's test for a standing queue (Nichols and Jacobson, RFC 8289), applied to the TLS
// connections waiting for a worker's CPU: a queue that a burst made drains, and within one
// window some item leaves it after a short wait; a queue that the arrival rate keeps full does
// not. While the queue stands, a worker refuses new connections at accept (Server::accept), the
// cheapest refusal there is, so that what it took is served before its client gives up.
#pragma once

#include <algorithm>
#include <chrono>

namespace relaypro {

class StandingQueue {
public:
    using Clock = std::chrono::steady_clock;
    StandingQueue(Clock::duration target, Clock::duration window) : target_(target), window_(window) {}

    // An item left the queue at `now` after waiting `wait`.
    void left(Clock::time_point now, Clock::duration wait) {
        if (now >= windowEnd_) {
            // The window that just ended, if every item that left in it had waited more than the
            // target: refuse for the next window. (One that ended long ago, on a quiet worker,
            // says nothing about now.)
            const bool justEnded = windowEnd_ != Clock::time_point{} && now < windowEnd_ + window_;
            if (justEnded && shortest_ > target_) refuseUntil_ = now + window_;
            shortest_ = Clock::duration::max();
            windowEnd_ = now + window_;
        }
        shortest_ = std::min(shortest_, wait);
    }
    // Whether a new item should be refused at `now`.
    [[nodiscard]] bool refusing(Clock::time_point now) const { return now < refuseUntil_; }

private:
    Clock::duration target_;
    Clock::duration window_;
    Clock::duration shortest_ = Clock::duration::max();  // of the items that left in the window
    Clock::time_point windowEnd_{};
    Clock::time_point refuseUntil_{};
};

}  // namespace relaypro
