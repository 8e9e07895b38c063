#include "supervisor/authentication_counter.h"

#include <algorithm>

namespace relaypro {

AuthenticationCounter::FailureCount AuthenticationCounter::failureReported(WorkerShare& share,
                                                                           const std::string& source,
                                                                           uint32_t perMinute, Clock::time_point now) {
    // A worker chooses the source it reports, and every worker then refuses that source: a
    // compromised one could lock Responders out at will. So each worker's reports count up to a
    // cap per second; beyond it they are acknowledged and dropped, and that is logged. The
    // worker is not replaced for it: clients alone can push an honest worker past any such cap
    // (a burst read before the SourceBlocked arrives), and replacing it would end every tunnel
    // it holds. A source already over its limit costs nothing against the cap.
    FailureCount out;
    const bool counts = failuresBySource_.allowed(source, perMinute, now);
    if (counts) {
        if (now - share.failureSecond >= std::chrono::seconds(1)) {
            share.failureSecond = now;
            share.failuresThisSecond = 0;
        }
        out.capPassed = ++share.failuresThisSecond == kMaxFailuresPerSecond + 1;
        if (share.failuresThisSecond > kMaxFailuresPerSecond) return out;
    }
    // One bucket per source across all workers (protocol.md): once it is empty, every worker
    // answers that source 429 until the next token.
    failuresBySource_.consume(source, perMinute, now);
    if (failuresBySource_.allowed(source, perMinute, now)) return out;
    out.blockedSeconds = std::max<uint32_t>(1, failuresBySource_.retryAfterSeconds(source, perMinute, now));
    out.newlyBlocked = counts;
    return out;
}

uint64_t AuthenticationCounter::verifyCap(uint64_t maxConnections) {
    return maxConnections > 0 ? maxConnections : kMaxVerifyingUnlimited;
}

// The token endpoint's per-source rate (protocol.md) is counted here, across all workers; then
// the console client decides.
AuthenticationCounter::VerifyAdmission AuthenticationCounter::admitVerification(WorkerShare& share, pid_t pid,
                                                                                uint64_t ticket,
                                                                                const std::string& source, uint64_t cap,
                                                                                uint32_t perMinute,
                                                                                Clock::time_point now) {
    VerifyAdmission out;
    if (!verifying_.insert({pid, ticket}).second) {
        out.admission = Admission::Repeat;
        return out;
    }
    // A connection waits for one verification at a time, so a worker needs no more in flight
    // than its share of maxConnections (a little more only when clients hung up while the
    // console was slow). A compromised one could choose its sources to get past the per-source
    // bucket and flood the console with the relay's own credential: beyond its share, a
    // verification is answered "console unavailable" at once, and that is logged. Not replaced,
    // for the same reason as failureReported().
    if (share.verifying >= cap) {
        verifying_.erase({pid, ticket});
        out.admission = Admission::OverCap;
        out.logCap = !share.verifyCapLogged;
        share.verifyCapLogged = true;
        return out;
    }
    ++share.verifying;
    share.verifyCapLogged = false;
    if (!tokenRequests_.allowed(source, perMinute, now)) {
        out.admission = Admission::RateLimited;
        out.retryAfterSeconds = std::max<uint32_t>(1, tokenRequests_.retryAfterSeconds(source, perMinute, now));
        return out;
    }
    tokenRequests_.consume(source, perMinute, now);
    out.admission = Admission::Admitted;
    return out;
}

void AuthenticationCounter::verificationEnded(pid_t pid, uint64_t ticket, WorkerShare* share) {
    verifying_.erase({pid, ticket});
    if (share != nullptr && share->verifying > 0) --share->verifying;
}

}  // namespace relaypro
