// Whether a worker that has not answered two pings is hung, or only busy or starved of CPU.
//
// lifecycle.md: a worker is pinged every second, and one that misses two pings is killed and
// replaced. On a box driven past its CPU (a reconnect storm, more workers than cores), a healthy
// worker can wait on the run queue for two seconds, or spend them in one long turn of its loop
// (thousands of ready connections); killing it drops every tunnel it holds and the reconnects
// make the overload worse. So a missed ping counts only when the worker was not runnable: its
// time on a CPU plus its run-queue wait (/proc/PID/schedstat, first and second fields) over the
// window of unanswered pings must be under half of that window. A stopped, deadlocked or blocked
// worker is neither running nor waiting to and is replaced as before; a busy or starved one gets
// another window, up to kMaxStarvedWindow in all (a worker spinning in a loop is replaced then).
// Before issue 19 only the wait counted: the 100,000-Responder run lost three busy workers, and
// their 25,000 tunnels, in its first minutes.
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
    std::optional<uint64_t> runnableNs;             // the worker's runnable time at that moment
};

// `outstanding`: pings sent and not answered; `waitNowNs`: the runnable time now (nullopt when
// /proc does not tell); `firstSince`: when the first ping of this stretch went out (a starved
// worker's window is renewed, this is not).
PingVerdict judgeMissedPings(int outstanding, const PingWindow& window, std::optional<uint64_t> waitNowNs,
                             std::chrono::steady_clock::time_point firstSince,
                             std::chrono::steady_clock::time_point now);

// The time `pid` has been runnable in nanoseconds, on a CPU or waiting for one (/proc/PID/schedstat).
std::optional<uint64_t> runnableNs(pid_t pid);

}  // namespace relaypro
