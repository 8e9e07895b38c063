// Everything a worker needs to serve, as one immutable snapshot: built by the supervisor from
// the configuration and the files only it reads, swapped whole on reload (new requests use the
// new snapshot, requests in flight keep theirs).
#pragma once

#include <array>
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
#include "common/token.h"

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
    bool registered = false;                   // false: Bearer CONNECT and the token endpoint answer 503 not_registered
    std::string caPem;                         // served at /relaypro/v1/ca.pem
    int64_t organizationId = 0;                // tokens carry it ("org") and must match it
    std::chrono::seconds tokenLifetime{3600};  // clientAuthToken.duration
    std::chrono::seconds tokenClockSkew{60};   // clientAuthToken.clockSkew
    bool debugLogging = false;

    // `registered`: whether the supervisor holds a registration the console accepts (only it can
    // tell: revocations are not in the configuration).
    static std::shared_ptr<const WorkerSettings> fromConfig(const Config& config,
                                                            std::shared_ptr<const PasswordFile> passwords,
                                                            NameResolutionData names, std::string caPem,
                                                            uint64_t maxConnections, bool registered);
};

// TLS material of the HTTPS listener (PEM).
struct TlsMaterial {
    std::string certificateChainPem;
    std::string privateKeyPem;  // a secret: wiped by the holder when no longer needed
};

// One hour's TLS session ticket key (protocol.md): name (16 bytes), HMAC key (32), AES key (32).
struct TicketKey {
    int64_t hour = 0;
    std::array<unsigned char, 80> bytes{};
};

// One UTC day's token master (protocol.md).
struct DayMaster {
    int64_t day = 0;
    TokenKey key{};
};

// The secrets a worker serves with: the listener's certificate and key, the current and previous
// hour's ticket keys (the first issues tickets), today's and yesterday's token masters. Never
// the CA key. Every copy wipes itself when it goes.
struct WorkerSecrets {
    TlsMaterial tls;
    std::vector<TicketKey> ticketKeys;
    std::vector<DayMaster> masters;

    WorkerSecrets() = default;
    WorkerSecrets(const WorkerSecrets&) = default;
    WorkerSecrets(WorkerSecrets&&) = default;
    WorkerSecrets& operator=(const WorkerSecrets&) = default;
    WorkerSecrets& operator=(WorkerSecrets&&) = default;
    ~WorkerSecrets() { wipe(); }
    void wipe();
};

}  // namespace relaypro
