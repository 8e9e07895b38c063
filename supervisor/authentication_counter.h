// What the supervisor counts of the workers' authentication traffic, across all of them
// (protocol.md): failures per source, token requests per source, and the token verifications in
// flight. A worker chooses the source it reports, so each worker's share is capped too (issue 15).
// The counter only decides; the pool sends and logs what its answers say.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>

#include "common/rate_limiter.h"

namespace relaypro {

class AuthenticationCounter {
public:
    using Clock = std::chrono::steady_clock;
    // Caps on what one worker may ask for the others (failureReported, admitVerification).
    static constexpr uint32_t kMaxFailuresPerSecond = 2000;
    static constexpr uint64_t kMaxVerifyingUnlimited = 20000;  // maxConnections 0: one process's descriptors

    // One worker's share, kept with the worker.
    struct WorkerShare {
        size_t verifying = 0;             // VerifyRequests in flight
        bool verifyCapLogged = false;     // since it was last below the cap
        Clock::time_point failureSecond;  // the second failuresThisSecond counts
        uint32_t failuresThisSecond = 0;
    };

    struct FailureCount {
        bool capPassed = false;                  // this report is the first over the worker's cap this second
        std::optional<uint32_t> blockedSeconds;  // the source is over its limit: SourceBlocked, Retry-After
        // This report used up the source's limit: every worker is told. A report of a source
        // already over it is answered to its worker only, so that one message in never costs
        // one out to every worker (a compromised worker could flood them all so).
        bool newlyBlocked = false;
    };
    // Counts one authentication failure a worker reports, within that worker's cap.
    FailureCount failureReported(WorkerShare& share, const std::string& source, uint32_t perMinute,
                                 Clock::time_point now);

    enum class Admission {
        Repeat,       // asked again while the first is in flight: ignored
        OverCap,      // beyond the worker's share: answered "console unavailable" at once
        RateLimited,  // the source's token requests are over their limit: answered, then ended
        Admitted,     // for the console to decide; ended when answered
    };
    struct VerifyAdmission {
        Admission admission = Admission::Admitted;
        bool logCap = false;             // OverCap for the first time since the worker was below the cap
        uint32_t retryAfterSeconds = 0;  // RateLimited
    };
    // The verifications a worker may have in flight: its share of maxConnections.
    static uint64_t verifyCap(uint64_t maxConnections);
    VerifyAdmission admitVerification(WorkerShare& share, pid_t pid, uint64_t ticket, const std::string& source,
                                      uint64_t cap, uint32_t perMinute, Clock::time_point now);
    // A verification that was RateLimited or Admitted is answered; `share` is null when its worker
    // is gone (or is of another generation).
    void verificationEnded(pid_t pid, uint64_t ticket, WorkerShare* share);

    [[nodiscard]] size_t inFlight() const { return verifying_.size(); }

private:
    RateLimiter failuresBySource_;  // authentication failures per source
    RateLimiter tokenRequests_;     // token requests per source
    // Verifications in flight, by worker and ticket: a worker asks again when an answer is slow
    // (a re-executed supervisor has lost its calls), and a repeat of one in flight is ignored.
    std::set<std::pair<pid_t, uint64_t>> verifying_;
};

}  // namespace relaypro
