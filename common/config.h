// The configuration model (spec/config.md): every field of config.yml with its default and
// range, the environment overrides (RELAYPRO_*), the AIR_* installation inputs, and a field
// table that says, for each field, whether a reload applies it or it needs a restart.
//
// A Config is a complete, validated snapshot: reload builds a new one beside the old and
// swaps only when it is valid; diffConfigs() tells what changed and how it applies.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/config_values.h"
#include "common/environment.h"
#include "common/proxy_env.h"
#include "common/result.h"

namespace relaypro {

inline constexpr std::string_view kDefaultConfigPath = "/opt/binalyze/air/relaypro/config.yml";
inline constexpr std::string_view kDefaultHostsFile = "/etc/hosts";
inline constexpr std::string_view kDefaultResolvConfFile = "/etc/resolv.conf";
inline constexpr std::string_view kControlSocketName = "control.sock";
inline constexpr std::string_view kCaBundleName = "ca-bundle.pem";
inline constexpr size_t kMaxUnixSocketPath = 107;

struct LoggerSettings {
    std::string fileName = "relaypro.log.txt";  // as configured
    std::string path;                           // resolved: under logs/ beside config.yml when relative
    uint64_t maxSize = 100ULL << 20;
    Duration maxAge = std::chrono::hours(24 * 7 * 4);
    uint32_t maxBackups = 10;
    bool noCompress = false;
    bool operator==(const LoggerSettings&) const = default;
};

// limits.maxHandshakes: auto. 256 handshakes in progress per online CPU, shared by the workers
// (at least 16 each): 256 full handshakes are about 0.09 s of one core's work here, and at a
// 100 ms round trip still let a core reach its handshake rate (issue 19: 1,024 per worker, with
// 8 workers on 2 cores, made a 40,000-Responder restart storm collapse).
inline constexpr uint32_t kAutoHandshakes = 0xffffffff;
inline constexpr uint32_t kHandshakesPerCpu = 256;
[[nodiscard]] inline uint32_t handshakeBound(uint32_t configured, unsigned workers, long cpus) {
    if (configured != kAutoHandshakes) return configured;
    uint64_t share = kHandshakesPerCpu * static_cast<uint64_t>(cpus > 0 ? cpus : 1) / (workers > 0 ? workers : 1);
    return static_cast<uint32_t>(share < 16 ? 16 : share);
}

struct Limits {
    uint64_t maxConnections = 0;  // 0 = auto
    Duration headerTimeout = std::chrono::seconds(10);
    uint64_t maxHeaderBytes = 16 << 10;
    Duration connectTimeout = std::chrono::seconds(10);
    Duration idleTimeout = Duration::zero();  // 0 = never
    Duration drainTimeout = std::chrono::minutes(10);
    Duration drainSpread = std::chrono::minutes(1);  // after drainTimeout, close what is left evenly over it
    Duration shutdownGrace = std::chrono::seconds(15);
    uint32_t tokenRequestsPerMinute = 60;
    // TLS handshakes in progress per worker; beyond it new connections wait in the kernel's
    // accept queue (0 = no bound, the default: see docs/configuration.md; kAutoHandshakes:
    // handshakeBound() sizes it).
    uint32_t maxHandshakes = 0;
    // The listening sockets' accept queue (the kernel caps it at net.core.somaxconn, 4096 by
    // default since Linux 5.4): what waits beyond maxHandshakes, and a reconnect storm's buffer.
    uint32_t listenBacklog = 4096;
    // The source ports of the connections the workers make (to the console, or the upstream
    // proxy), drawn at random from low … high (worker/source_port.h); 0, 0: connect() chooses.
    uint16_t sourcePortLow = 0;
    uint16_t sourcePortHigh = 0;
    bool operator==(const Limits&) const = default;
};

struct Migration {
    ConsoleAddress consoleAddress;
    std::chrono::system_clock::time_point validUntilAt;
    std::string validUntilText;  // as configured
    bool operator==(const Migration&) const = default;
};

struct Config {
    std::string path;    // config.yml as given on the command line (for messages)
    std::string folder;  // absolute folder of config.yml: relative paths resolve against it

    ConsoleAddress consoleAddress;
    std::string registeredTo;
    int64_t organizationId = 0;
    std::string relayProId;  // empty until generated
    int64_t relayId = 0;
    std::string securityToken;
    std::string consoleCACert;
    bool proxyEnabled = false;
    bool debugLogging = false;
    std::string deploymentToken;
    std::string serverName;
    std::string privateFolder;  // resolved
    std::string passwordFile;   // resolved; empty = Basic authentication off
    Duration tokenDuration = std::chrono::hours(1);
    Duration tokenClockSkew = std::chrono::minutes(1);
    HostPort httpsListen{"0.0.0.0", 9443};
    std::string certFile;  // resolved
    std::string keyFile;   // resolved
    std::optional<Migration> migration;
    LoggerSettings logger;
    uint32_t workers = 0;  // 0 = auto
    Limits limits;
    std::optional<HostPort> metricsListen;
    std::vector<Cidr> trustedSources;

    // From the environment only.
    std::optional<HostPort> httpListen;  // RELAYPRO_HTTP_LISTEN
    std::string caBundleFile;            // RELAYPRO_CA_BUNDLE_FILE, default <privateFolder>/ca-bundle.pem
    std::string hostsFile;               // RELAYPRO_HOSTS_FILE, default /etc/hosts
    std::string resolvConfFile;          // RELAYPRO_RESOLV_CONF (an extension), default /etc/resolv.conf
    ProxySettings proxy;                 // read when proxyEnabled

    [[nodiscard]] std::string controlSocketPath() const;
};

// How a change of a field takes effect.
enum class Apply {
    Reload,            // a reload applies it to new requests
    Restart,           // kept until the next restart; a reload warns
    NextRegistration,  // used at the next registration with the console
};

struct FieldChange {
    std::string field;  // "limits.headerTimeout", or the variable name for environment-only settings
    Apply apply;
};

// The fields that differ between two snapshots, in table order.
std::vector<FieldChange> diffConfigs(const Config& before, const Config& after);

// `next` with the running values of every field that only a restart changes (Apply::Restart).
Config keepRestartFields(const Config& running, Config next);
// Every field classified Apply::Restart, and only those, has a way to be kept (a build check).
bool restartFieldsAreKept();

// Every field name config.yml knows (dotted), in the order of spec/config.md.
std::span<const std::string_view> configFieldNames();

struct ConfigSource {
    std::string path;  // as given (messages name it)
    std::string text;  // the file's content
};

// Parses and validates config.yml text with the environment. The error holds one line per
// problem, each `file:line:column: field: message` (or `<variable source>: VARIABLE: message`).
// Warnings (unknown keys, ignored values) are appended to `warnings`, also when it fails.
Result<Config> parseConfig(const ConfigSource& source, const Environment& env, std::vector<std::string>& warnings);

// Reads `path` (at most 1 MiB) and parses it.
Result<Config> loadConfig(const std::string& path, const Environment& env, std::vector<std::string>& warnings);

// config.yml and the environment file read together, with the texts they were parsed from: the
// snapshot of the running configuration that an upgrade hands to the next supervisor image.
struct ConfigSnapshot {
    Environment env;
    Config config;
    std::string configText;
    std::string envFileText;  // empty when there is no environment file
};
// The two files' texts as they are now (a missing environment file reads as empty).
Result<std::pair<std::string, std::string>> readConfigTexts(const std::string& path, const std::string& envFile);
// Parses the texts over `base` (the process environment; its file overlay is replaced).
Result<ConfigSnapshot> parseConfigSnapshot(const std::string& path, const std::string& envFile, std::string configText,
                                           std::string envFileText, Environment base,
                                           std::vector<std::string>& warnings);
// Both: reads, then parses.
Result<ConfigSnapshot> loadConfigSnapshot(const std::string& path, const std::string& envFile, Environment base,
                                          std::vector<std::string>& warnings);

// The effective configuration as YAML, secrets as "<redacted>" (check-config prints it).
std::string renderEffectiveConfig(const Config& config);

// Host name used as serverName's default (a seam for tests).
std::string defaultServerName();

}  // namespace relaypro
