#include "common/worker_settings.h"

namespace relaypro {

std::shared_ptr<const WorkerSettings> WorkerSettings::fromConfig(const Config& config,
                                                                 std::shared_ptr<const PasswordFile> passwords,
                                                                 NameResolutionData names, std::string caPem,
                                                                 uint64_t maxConnections) {
    auto s = std::make_shared<WorkerSettings>();
    s->limits = config.limits;
    s->maxConnections = maxConnections;
    s->policy = TargetPolicy::fromConfig(config);
    s->passwords = std::move(passwords);
    s->proxyEnabled = config.proxyEnabled;
    s->proxy = config.proxy;
    s->names = std::move(names);
    s->trustedSources = config.trustedSources;
    s->caPem = std::move(caPem);
    s->debugLogging = config.debugLogging;
    return s;
}

}  // namespace relaypro
