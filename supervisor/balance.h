// Which serving workers should leave accepts to the others for a while.
//
// The workers share the listening sockets, and the kernel wakes every one of them for a new
// connection: whichever calls accept() first takes it (and, in libevent's accept loop, any others
// queued). That spreads connections unevenly — at 100,000 tunnels over 20 workers the fullest held
// 8,217 and the emptiest 3,717 — and limits.maxConnections is a per-worker share, so the fullest
// worker refuses connections while the others have room. Once a second (with the pings) the
// supervisor compares the connection counts of the current generation's serving workers; one well
// above their average holds its accepts until the next comparison, and the others take the new
// connections. The comparison is relative (one snapshot for all), so at least one worker always
// accepts: the one with the fewest connections is never above the average.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace relaypro {

// How far above the average counts as "well above": 1/32 of it, and at least 64 connections (so
// small relays never hold, and a reconnect storm's noise does not).
inline constexpr uint64_t kBalanceMinExcess = 64;

// The counts come from the workers, which are not trusted: one that reports 2^64 - 1 connections
// must not wrap the sum (and so make every honest worker "well above" a tiny average). Summed as
// quotients and remainders, the average is exact and cannot overflow.
inline uint64_t averageOf(const std::vector<uint64_t>& connections) {
    if (connections.empty()) return 0;
    const uint64_t n = connections.size();
    uint64_t quotients = 0;
    uint64_t remainders = 0;
    for (uint64_t c : connections) {
        quotients += c / n;
        remainders += c % n;
    }
    return quotients + remainders / n;
}

// For each count, whether that worker holds its accepts.
inline std::vector<bool> acceptHolds(const std::vector<uint64_t>& connections) {
    std::vector<bool> hold(connections.size(), false);
    if (connections.size() < 2) return hold;
    uint64_t average = averageOf(connections);
    uint64_t excess = std::max<uint64_t>(kBalanceMinExcess, average / 32);
    uint64_t limit = average > UINT64_MAX - excess ? UINT64_MAX : average + excess;
    for (size_t i = 0; i < connections.size(); ++i) hold[i] = connections[i] > limit;
    return hold;
}

}  // namespace relaypro
