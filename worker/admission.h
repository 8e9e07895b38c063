// Which new TLS connections a worker takes when more arrive than its CPU serves (issue 19,
// overload). The signal is CoDel's (Nichols and Jacobson, RFC 8289): a queue that a burst made
// drains, and within one window some ClientHello is reached after a short wait; a queue that the
// arrival rate keeps full does not. From that moment new connections are admitted at a rate, the
// rest reset as they are accepted (the cheapest refusal there is, before any work is spent on
// them), as HAProxy's maxsslrate does but measured rather than configured:
// - while the queue stands, 90 % of the rate at which ClientHellos were served in the last
//   window (a backlogged queue: that is the worker's capacity now), so that the queue drains
//   while the worker stays busy;
// - once it no longer stands, a tenth more each window (twice as much when the queue ran empty
//   in it: the worker was idle), up to what arrives;
// - back to admitting everything after a window that refused no one and saw no standing queue,
//   or after a quiet window (nothing reached, nothing refused).
// An on/off refusal instead (refuse for a window after a standing one) let a window's worth of
// arrivals in at each reopening: up to 4× a window of work, so many of those waited over the
// 1 s after which a ClientHello is shed anyway; halving the rate at a standing window and adding
// a quarter at each other one left the worker idle for part of each swing (BENCHMARKS.md).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>

namespace relaypro {

class Admission {
public:
    using Clock = std::chrono::steady_clock;
    // A window stands when at least `minReached` ClientHellos were reached in it, each after
    // more than `target` (a queue of one is not a queue: RFC 8289's MAXPACKET).
    Admission(Clock::duration target, Clock::duration window, uint64_t minReached)
        : target_(target), window_(window), minReached_(minReached) {}

    // A ClientHello was reached at `now` after waiting `wait` (served: processed through our
    // first flight, not shed, nor a turn that found only part of it).
    void reached(Clock::time_point now, Clock::duration wait, bool served) {
        roll(now);
        shortest_ = std::min(shortest_, wait);
        ++reached_;
        if (served) ++served_;
    }
    // The fate of a connection arriving at `now`: Free (not limiting), Admitted (a token taken)
    // or Refused (reset it).
    enum class Verdict { Free, Admitted, Refused };
    Verdict admit(Clock::time_point now) {
        roll(now);
        if (!limiting_) return Verdict::Free;
        const double seconds = std::chrono::duration<double>(now - refilledAt_).count();
        tokens_ = std::min(rate_ * windowSeconds(), tokens_ + rate_ * seconds);
        refilledAt_ = now;
        if (tokens_ >= 1) {
            tokens_ -= 1;
            return Verdict::Admitted;
        }
        ++refused_;
        return Verdict::Refused;
    }
    // An Admitted connection turned out to be gone already (its client's FIN was there): its
    // token goes to the next one.
    void giveBack() {
        if (limiting_) tokens_ = std::min(rate_ * windowSeconds(), tokens_ + 1);
    }
    // The queue ran empty at `now`: the worker had nothing left to serve.
    void drained(Clock::time_point now) {
        roll(now);
        drained_ = true;
    }
    [[nodiscard]] bool limiting() const { return limiting_; }
    // The last window judged (for the test build's trace): its counts and what it decided.
    struct Judged {
        uint64_t windows = 0;  // judged so far
        uint64_t reached = 0, served = 0, refused = 0;
        Clock::duration shortest{};
        bool drained = false, stale = false, limiting = false;
        double rate = 0;
    };
    [[nodiscard]] const Judged& judged() const { return judged_; }
    [[nodiscard]] double rate() const { return rate_; }  // admissions a second while limiting

private:
    [[nodiscard]] double windowSeconds() const { return std::chrono::duration<double>(window_).count(); }
    void roll(Clock::time_point now) {
        if (now < windowEnd_) return;
        // The window that just ended (one that ended long ago, on a quiet worker, says nothing:
        // what comes now is judged from scratch).
        const bool justEnded = windowEnd_ != Clock::time_point{} && now < windowEnd_ + window_;
        // Over the window as it was: it ends at the first call after windowEnd_, on a busy worker
        // often 5-10 % later, and a rate over the nominal 100 ms would read that much high (the
        // queue then stood at 0.5-1 s instead of draining).
        const double lasted = std::chrono::duration<double>(now - (windowEnd_ - window_)).count();
        const double servedRate = static_cast<double>(served_) / std::max(lasted, windowSeconds());
        if (!justEnded || (reached_ == 0 && refused_ == 0)) {
            limiting_ = false;
        } else if (reached_ >= minReached_ && shortest_ > target_) {
            if (!limiting_) {
                limiting_ = true;
                tokens_ = 0;
                refilledAt_ = now;
                rate_ = 0;
            }
            // Less than was served, so that the queue drains; not less than half the rate of
            // the window before (one spent shedding what had waited too long serves little), nor
            // than kMinRate.
            rate_ = std::max({servedRate * kDrain, rate_ / 2, kMinRate});
        } else if (limiting_) {
            if (refused_ == 0) {
                limiting_ = false;
            } else {
                // The queue emptied in the window: the worker was idle for part of it, so the
                // rate was well short of what it serves.
                rate_ = std::max(rate_, servedRate) * (drained_ ? kDrained : kProbe);
            }
        }
        judged_ = {judged_.windows + 1, reached_, served_, refused_, shortest_, drained_, !justEnded, limiting_, rate_};
        shortest_ = Clock::duration::max();
        reached_ = served_ = refused_ = 0;
        drained_ = false;
        windowEnd_ = now + window_;
    }

    // Some admitted even when nothing was served in a standing window (a worker whose loop is
    // held by other work): what is taken is shed after its wait if it must be.
    static constexpr double kMinRate = 10;
    static constexpr double kDrain = 0.9;  // of the rate served, while the queue stands
    static constexpr double kProbe = 1.1;  // each window it does not, while some are refused
    static constexpr double kDrained = 2;  // ... and the queue ran empty in it
    Clock::duration target_;
    Clock::duration window_;
    uint64_t minReached_;
    Clock::time_point windowEnd_{};
    Clock::duration shortest_ = Clock::duration::max();  // wait of the ClientHellos reached in it
    uint64_t reached_ = 0, served_ = 0, refused_ = 0;    // in the window
    bool drained_ = false;                               // the queue ran empty in the window
    bool limiting_ = false;
    double rate_ = 0;
    double tokens_ = 0;
    Clock::time_point refilledAt_{};
    Judged judged_;
};

}  // namespace relaypro
