#include "supervisor/metrics_registry.h"

#include <algorithm>

#include "ipc/wire.h"

namespace relaypro {

namespace {

// Sums that cannot wrap: a worker may report any value, and a total must never go backwards.
uint64_t saturatingAdd(uint64_t a, uint64_t b) {
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

constexpr uint32_t kSerializedFormat = 1;
constexpr uint32_t kMaxLive = 4096;

template <size_t N>
void writeArray(ipc::Writer& w, const std::array<uint64_t, N>& a) {
    w.u32(static_cast<uint32_t>(N));
    for (uint64_t v : a) w.u64(v);
}

// An array written by a build with `n` entries: a newer build's extra entries are dropped, an
// older build's missing ones stay zero.
template <size_t N>
void readArray(ipc::Reader& r, std::array<uint64_t, N>& a) {
    uint32_t n = r.count(4096);
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
        uint64_t v = r.u64();
        if (i < N) a[i] = v;
    }
}

void writeHistogram(ipc::Writer& w, const Histogram& h) {
    writeArray(w, h.buckets);
    w.u64(h.sumMicros);
}

void readHistogram(ipc::Reader& r, Histogram& h) {
    readArray(r, h.buckets);
    h.sumMicros = r.u64();
}

}  // namespace

void Histogram::observe(std::chrono::nanoseconds latency) {
    buckets[counters::bucketOf(latency)] += 1;
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(latency).count();
    sumMicros += static_cast<uint64_t>(std::max<int64_t>(micros, 0));
}

uint64_t Histogram::count() const {
    uint64_t n = 0;
    for (uint64_t b : buckets) n = saturatingAdd(n, b);
    return n;
}

MetricsRegistry::Endpoint MetricsRegistry::endpointOf(std::string_view path) {
    auto endsWith = [&](std::string_view tail) { return path.size() >= tail.size() && path.ends_with(tail); };
    if (endsWith("/register")) return Endpoint::Register;
    if (endsWith("/heartbeat")) return Endpoint::Heartbeat;
    if (endsWith("/verify")) return Endpoint::Verify;
    return Endpoint::Other;
}

std::string_view MetricsRegistry::name(Endpoint e) {
    switch (e) {
        case Endpoint::Register:
            return "register";
        case Endpoint::Heartbeat:
            return "heartbeat";
        case Endpoint::Verify:
            return "verify";
        case Endpoint::Other:
            break;
    }
    return "other";
}

std::string_view MetricsRegistry::name(Outcome o) {
    switch (o) {
        case Outcome::Success:
            return "success";
        case Outcome::Refused:
            return "refused";
        case Outcome::Unreachable:
            break;
    }
    return "unreachable";
}

void MetricsRegistry::workerReported(pid_t pid, const ipc::Counters& report) {
    if (!live_.contains(pid) && live_.size() >= kMaxLive) return;
    Live& l = live_[pid];
    for (const auto& [id, value] : report.values) {
        if (id < counters::kCount) l.values[id] = std::max(l.values[id], value);  // a newer build's: skipped
    }
    l.residentBytes = report.residentBytes;
    l.descriptors = report.descriptors;
}

void MetricsRegistry::workerGone(pid_t pid, bool unexpected) {
    if (unexpected) ++workerRestarts_;
    auto it = live_.find(pid);
    if (it == live_.end()) return;
    for (size_t i = 0; i < counters::kCount; ++i) gone_[i] = saturatingAdd(gone_[i], it->second.values[i]);
    live_.erase(it);
}

void MetricsRegistry::consoleCall(Endpoint e, Outcome o, std::chrono::nanoseconds latency) {
    ++consoleCalls_[static_cast<size_t>(e)][static_cast<size_t>(o)];
    consoleLatency_[static_cast<size_t>(e)].observe(latency);
}

uint64_t MetricsRegistry::total(counters::Id id) const {
    const auto i = static_cast<size_t>(id);
    uint64_t sum = gone_[i];
    for (const auto& [pid, l] : live_) sum = saturatingAdd(sum, l.values[i]);
    return sum;
}

uint64_t MetricsRegistry::workersResidentBytes() const {
    uint64_t sum = 0;
    for (const auto& [pid, l] : live_) sum = saturatingAdd(sum, l.residentBytes);
    return sum;
}

uint64_t MetricsRegistry::workersDescriptors() const {
    uint64_t sum = 0;
    for (const auto& [pid, l] : live_) sum = saturatingAdd(sum, l.descriptors);
    return sum;
}

std::string MetricsRegistry::serialize() const {
    ipc::Writer w;
    w.u32(kSerializedFormat);
    writeArray(w, gone_);
    w.u32(static_cast<uint32_t>(live_.size()));
    for (const auto& [pid, l] : live_) {
        w.u32(static_cast<uint32_t>(pid));
        writeArray(w, l.values);
    }
    w.u32(static_cast<uint32_t>(kEndpoints));
    for (size_t e = 0; e < kEndpoints; ++e) {
        writeArray(w, consoleCalls_[e]);
        writeHistogram(w, consoleLatency_[e]);
    }
    writeArray(w, reloads_);
    writeArray(w, upgrades_);
    w.u64(workerRestarts_);
    return w.take();
}

Status MetricsRegistry::restore(std::string_view bytes) {
    ipc::Reader r(bytes);
    MetricsRegistry next;
    if (r.u32() != kSerializedFormat) return Error{"the metrics in the hand-over have an unknown format"};
    readArray(r, next.gone_);
    uint32_t nl = r.count(kMaxLive);
    for (uint32_t i = 0; i < nl && r.ok(); ++i) {
        auto pid = static_cast<pid_t>(r.u32());
        readArray(r, next.live_[pid].values);
    }
    uint32_t ne = r.count(64);
    for (uint32_t e = 0; e < ne && r.ok(); ++e) {
        std::array<uint64_t, kOutcomes> calls{};
        Histogram h;
        readArray(r, calls);
        readHistogram(r, h);
        if (e < kEndpoints) {
            next.consoleCalls_[e] = calls;
            next.consoleLatency_[e] = h;
        }
    }
    readArray(r, next.reloads_);
    readArray(r, next.upgrades_);
    next.workerRestarts_ = r.u64();
    if (!r.finish()) return Error{"the metrics in the hand-over are malformed"};
    *this = std::move(next);
    return {};
}

}  // namespace relaypro
