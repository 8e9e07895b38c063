// Whether a worker that has not answered two pings is hung or only starved of CPU.
//
// lifecycle.md: a worker is pinged every second, and one that misses two pings is killed and
// replaced. On a box driven past its CPU (a reconnect storm, more workers than cores), a healthy
// worker can wait on the run queue for two seconds; killing it drops every tunnel it holds and
// the reconnects make the overload worse. So a missed ping counts only when the worker had the
// CPU to answer it: the kernel's run-queue wait of the process (/proc/PID/schedstat, second
// field) over the window of unanswered pings must be under half of that window. A stopped,
// deadlocked or blocked worker does not wait on the run queue and is replaced as before; a
// starved one gets another window, up to kMaxStarvedWindow in all.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>

namespace relaypro {

inline constexpr std::chrono::seconds kMaxStarvedWindow{30};

enum class PingVerdict { Waiting, Starved, Hung };

struct PingWindow {
    std::chrono::steady_clock::time_point since{};  // when the oldest unanswered ping went out
    std::optional<uint64_t> runQueueWaitNs;         // the worker's run-queue wait at that moment
};

// `outstanding`: pings sent and not answered; `waitNowNs`: the run-queue wait now (nullopt when
// /proc does not tell); `firstSince`: when the first ping of this stretch went out (a starved
// worker's window is renewed, this is not).
PingVerdict judgeMissedPings(int outstanding, const PingWindow& window, std::optional<uint64_t> waitNowNs,
                             std::chrono::steady_clock::time_point firstSince,
                             std::chrono::steady_clock::time_point now);

// The run-queue wait of `pid` in nanoseconds, from /proc/PID/schedstat.
std::optional<uint64_t> runQueueWaitNs(pid_t pid);

}  // namespace relaypro
