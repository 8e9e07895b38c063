// Everything a worker needs to serve, as one immutable snapshot: built by the supervisor from
// the configuration and the files only it reads, swapped whole on reload (new requests use the
// new snapshot, requests in flight keep theirs).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/name_resolution.h"
#include "common/password_file.h"
#include "common/proxy_env.h"
#include "common/target_policy.h"

namespace relaypro {

struct WorkerSettings {
    Limits limits;
    uint64_t maxConnections = 0;  // this worker's share; 0 = no limit
    TargetPolicy policy{ConsoleAddress{}, std::nullopt};
    std::shared_ptr<const PasswordFile> passwords;  // nullptr: Basic authentication off
    bool proxyEnabled = false;
    ProxySettings proxy;
    NameResolutionData names;
    std::vector<Cidr> trustedSources;
    bool registered = false;  // false: Bearer CONNECT and the token endpoint answer 503 not_registered
    std::string caPem;        // served at /relaypro/v1/ca.pem
    bool debugLogging = false;

    static std::shared_ptr<const WorkerSettings> fromConfig(const Config& config,
                                                            std::shared_ptr<const PasswordFile> passwords,
                                                            NameResolutionData names, std::string caPem,
                                                            uint64_t maxConnections);
};

// TLS material of the HTTPS listener (PEM).
struct TlsMaterial {
    std::string certificateChainPem;
    std::string privateKeyPem;  // a secret: wiped by the holder when no longer needed
};

}  // namespace relaypro
