// The Prometheus text exposition (format 0.0.4) of the relay's metrics: the registry's totals
// (supervisor/metrics_registry.h) and what is read at the scrape (workers, registration, the CA,
// the processes). A pure function: no Responder id, source address or secret is ever an input.
// docs/operators-guide.md lists the series.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "supervisor/metrics_registry.h"

namespace relaypro {

struct MetricsSnapshot {
    std::string version;         // RelayPro's
    std::string opensslVersion;  // the OpenSSL linked in
    std::string registration;    // status --json's registration.state
    std::optional<int64_t> caNotAfterUnix;
    struct Workers {
        uint32_t generation = 0;
        std::string state;  // starting | serving | draining
        uint64_t count = 0;
    };
    std::vector<Workers> workers;
    uint64_t connectionsActive = 0;
    uint64_t tunnelsActive = 0;
    uint64_t processes = 0;  // the supervisor and its workers
    uint64_t residentBytes = 0;
    uint64_t descriptors = 0;
};

[[nodiscard]] std::string renderMetrics(const MetricsRegistry& registry, const MetricsSnapshot& snapshot);

// A label value as the exposition format writes it: backslash, double quote and line feed escaped.
[[nodiscard]] std::string escapeLabelValue(std::string_view value);

// The content type of the exposition.
inline constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";

}  // namespace relaypro
