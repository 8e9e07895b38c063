#include "common/worker_settings.h"

#include <sodium.h>

namespace relaypro {

std::shared_ptr<const WorkerSettings> WorkerSettings::fromConfig(const Config& config,
                                                                 std::shared_ptr<const PasswordFile> passwords,
                                                                 NameResolutionData names, std::string caPem,
                                                                 uint64_t maxConnections, bool registered) {
    auto s = std::make_shared<WorkerSettings>();
    s->registered = registered;
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
    s->organizationId = config.organizationId;
    s->tokenLifetime = std::chrono::duration_cast<std::chrono::seconds>(config.tokenDuration);
    s->tokenClockSkew = std::chrono::duration_cast<std::chrono::seconds>(config.tokenClockSkew);
    return s;
}

void WorkerSecrets::wipe() {
    sodium_memzero(tls.privateKeyPem.data(), tls.privateKeyPem.size());
    for (auto& k : ticketKeys) sodium_memzero(k.bytes.data(), k.bytes.size());
    for (auto& m : masters) sodium_memzero(m.key.data(), m.key.size());
}

}  // namespace relaypro
