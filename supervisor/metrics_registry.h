// The supervisor's side of the metrics: every worker's last reported counters
// (common/relay_counters.h), the totals of the workers that are gone, and what the supervisor
// counts itself (console calls, reloads, upgrades, worker restarts). A total is the sum over the
// gone and the live workers, and a worker's counter is only ever raised, so no series goes
// backwards across a worker's replacement, a reload, or an upgrade: the state crosses the
// upgrade's re-exec in the hand-over (serialize / restore).
#pragma once

#include <sys/types.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>

#include "common/relay_counters.h"
#include "common/result.h"
#include "ipc/messages.h"

namespace relaypro {

// A latency histogram: the count per bucket of counters::kLatencyBuckets (not cumulative), +Inf
// last, and the sum in microseconds.
struct Histogram {
    std::array<uint64_t, counters::kLatencyBuckets.size() + 1> buckets{};
    uint64_t sumMicros = 0;
    void observe(std::chrono::nanoseconds latency);
    [[nodiscard]] uint64_t count() const;
};

class MetricsRegistry {
public:
    // The console endpoints (console-api.md) and how a call ended.
    enum class Endpoint : uint8_t { Register, Heartbeat, Verify, Other };
    static constexpr size_t kEndpoints = 4;
    enum class Outcome : uint8_t { Success, Refused, Unreachable };  // 2xx answer; other answer; none
    static constexpr size_t kOutcomes = 3;
    enum class Result : uint8_t { Success, Failure };

    static Endpoint endpointOf(std::string_view path);
    static std::string_view name(Endpoint e);
    static std::string_view name(Outcome o);

    // A new worker has this pid: what an earlier one with the same pid left (one the hand-over
    // named that did not survive the exec) joins the totals of the gone first.
    void workerStarted(pid_t pid) { workerGone(pid, false); }
    // A worker's report: each counter is raised to the reported value (never lowered).
    void workerReported(pid_t pid, const ipc::Counters& report);
    // The worker is gone: its counters join the totals of the gone; `unexpected` counts a restart.
    void workerGone(pid_t pid, bool unexpected);

    void consoleCall(Endpoint e, Outcome o, std::chrono::nanoseconds latency);
    void reloaded(Result r) { ++reloads_[static_cast<size_t>(r)]; }
    void upgraded(Result r) { ++upgrades_[static_cast<size_t>(r)]; }

    // The sum of one counter over every worker, gone or live.
    [[nodiscard]] uint64_t total(counters::Id id) const;
    [[nodiscard]] uint64_t consoleCalls(Endpoint e, Outcome o) const {
        return consoleCalls_[static_cast<size_t>(e)][static_cast<size_t>(o)];
    }
    [[nodiscard]] const Histogram& consoleLatency(Endpoint e) const { return consoleLatency_[static_cast<size_t>(e)]; }
    [[nodiscard]] uint64_t reloads(Result r) const { return reloads_[static_cast<size_t>(r)]; }
    [[nodiscard]] uint64_t upgrades(Result r) const { return upgrades_[static_cast<size_t>(r)]; }
    [[nodiscard]] uint64_t workerRestarts() const { return workerRestarts_; }
    // Resident bytes and descriptors the live workers reported last.
    [[nodiscard]] uint64_t workersResidentBytes() const;
    [[nodiscard]] uint64_t workersDescriptors() const;

    // The whole state, for the upgrade's hand-over; restore() takes what serialize() wrote, or
    // fails on anything else and leaves the registry as it was.
    [[nodiscard]] std::string serialize() const;
    Status restore(std::string_view bytes);

private:
    struct Live {
        std::array<uint64_t, counters::kCount> values{};
        uint64_t residentBytes = 0;
        uint64_t descriptors = 0;
    };
    std::map<pid_t, Live> live_;
    std::array<uint64_t, counters::kCount> gone_{};
    std::array<std::array<uint64_t, kOutcomes>, kEndpoints> consoleCalls_{};
    std::array<Histogram, kEndpoints> consoleLatency_{};
    std::array<uint64_t, 2> reloads_{};
    std::array<uint64_t, 2> upgrades_{};
    uint64_t workerRestarts_ = 0;
};

}  // namespace relaypro
