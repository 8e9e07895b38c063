#include "supervisor/liveness.h"

#include <cinttypes>
#include <cstdio>
#include <string>

namespace relaypro {

PingVerdict judgeMissedPings(int outstanding, const PingWindow& window, std::optional<uint64_t> waitNowNs,
                             std::chrono::steady_clock::time_point firstSince,
                             std::chrono::steady_clock::time_point now) {
    if (outstanding < 2) return PingVerdict::Waiting;
    if (now - firstSince >= kMaxStarvedWindow) return PingVerdict::Hung;
    if (!waitNowNs || !window.runnableNs || *waitNowNs < *window.runnableNs) return PingVerdict::Hung;
    auto elapsedNs = std::chrono::duration_cast<std::chrono::nanoseconds>(now - window.since).count();
    if (elapsedNs <= 0) return PingVerdict::Hung;
    uint64_t waited = *waitNowNs - *window.runnableNs;
    return waited * 2 >= static_cast<uint64_t>(elapsedNs) ? PingVerdict::Starved : PingVerdict::Hung;
}

std::optional<uint64_t> runnableNs(pid_t pid) {
    std::string path = "/proc/" + std::to_string(pid) + "/schedstat";
    FILE* f = std::fopen(path.c_str(), "re");
    if (f == nullptr) return std::nullopt;
    uint64_t onCpu = 0, waiting = 0;
    int n = std::fscanf(f, "%" SCNu64 " %" SCNu64, &onCpu, &waiting);
    std::fclose(f);
    if (n != 2) return std::nullopt;
    return onCpu + waiting;
}

}  // namespace relaypro
