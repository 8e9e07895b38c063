// The service's metrics endpoint (metrics.listen): bound with the listeners, served on the
// supervisor's loop, handed over across an upgrade with the totals (supervisor/metrics_registry.h).
#include <fcntl.h>
#include <openssl/crypto.h>

#include "supervisor/cli.h"
#include "supervisor/listeners.h"
#include "supervisor/metrics_text.h"
#include "supervisor/service.h"
#include "supervisor/version.h"

namespace relaypro {

int Service::bindMetrics() {
    if (!config_.metricsListen) return 0;
    UniqueFd fd = adoptActivatedListener(*config_.metricsListen);
    if (!fd) {
        auto bound = bindListener(*config_.metricsListen, 64);  // a scraper or two
        if (!bound) return fatal(kExitFailure, "metrics.listen: " + bound.error().message);
        fd = std::move(*bound);
    }
    metricsAddress_ = boundAddress(fd.get());
    metricsSocket_ = std::move(fd);
    return 0;
}

void Service::adoptMetrics(HandoverState& state) {
    if (state.metricsFd >= 0) {
        ::fcntl(state.metricsFd, F_SETFD, FD_CLOEXEC);
        metricsSocket_.reset(state.metricsFd);
        metricsAddress_ = state.metricsAddress;
        state.metricsFd = -1;
    }
    if (state.metricsState.empty()) return;  // an older image counted nothing
    if (auto s = metrics_.restore(state.metricsState); !s) log_->warn(s.error().message + "; counting from zero");
}

void Service::serveMetrics() {
    if (!metricsSocket_) return;
    auto endpoint = MetricsEndpoint::create(base_, metricsSocket_.get(), [this] { return metricsText(); });
    if (!endpoint) {
        log_->error("metrics are not served", {{"error", endpoint.error().describe()}});
        return;
    }
    metricsEndpoint_ = std::move(*endpoint);
    log_->info("listening", {{"kind", "metrics"}, {"address", metricsAddress_}, {"socketActivation", false}});
}

void Service::countConsoleCall(const std::string& path, const ConsoleResponse& r, std::chrono::microseconds took) {
    using O = MetricsRegistry::Outcome;
    const O outcome = !r.transportOk ? O::Unreachable : r.success() ? O::Success : O::Refused;
    metrics_.consoleCall(MetricsRegistry::endpointOf(path), outcome, took);
}

std::string Service::metricsText() {
    MetricsSnapshot s;
    s.version = std::string(versionString());
    s.opensslVersion = OpenSSL_version(OPENSSL_VERSION_STRING);
    s.registration = registrationState();
    s.caNotAfterUnix =
        std::chrono::duration_cast<std::chrono::seconds>(trust_->ca().expiresAt().time_since_epoch()).count();
    for (const auto& w : pool_->view()) {
        s.workers.push_back({w.generation, w.state, 1});
        s.connectionsActive += w.connections;
        s.tunnelsActive += w.tunnels;
    }
    s.processes = 1 + s.workers.size();
    s.residentBytes = figures_.residentBytes().value_or(0) + metrics_.workersResidentBytes();
    const auto own = figures_.descriptors();  // else counted the slow way (kernels before 6.2)
    s.descriptors = (own ? *own : ProcessFigures::open().descriptorsAtOpen()) + metrics_.workersDescriptors();
    return renderMetrics(metrics_, s);
}

}  // namespace relaypro
