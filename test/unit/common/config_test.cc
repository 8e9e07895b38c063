#include "common/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <set>

#include "test/support/test_files.h"

namespace relaypro {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

constexpr const char* kBase = "consoleAddress: console.example.com\norganizationId: 1\n";
constexpr const char* kPath = "/srv/relay/config.yml";

struct Loaded {
    Result<Config> config;
    std::vector<std::string> warnings;
};

Loaded load(const std::string& yaml, EnvVars vars = {}) {
    Environment env(std::move(vars));
    std::vector<std::string> warnings;
    auto r = parseConfig(ConfigSource{kPath, yaml}, env, warnings);
    return Loaded{std::move(r), std::move(warnings)};
}

Config mustLoad(const std::string& yaml, EnvVars vars = {}) {
    auto l = load(yaml, std::move(vars));
    EXPECT_TRUE(l.config.ok()) << (l.config.ok() ? "" : l.config.error().message);
    return l.config.ok() ? *l.config : Config{};
}

std::string mustFail(const std::string& yaml, EnvVars vars = {}) {
    auto l = load(yaml, std::move(vars));
    EXPECT_FALSE(l.config.ok()) << yaml;
    return l.config.ok() ? "" : l.config.error().message;
}

// A self-signed certificate and key made once with the openssl command line.
struct TestPki {
    fs::path dir;
    std::string certPem;
    TestPki() {
        dir = fs::temp_directory_path() / ("relaypro-config-test-" + std::to_string(::getpid()));
        fs::create_directories(dir);
        std::string cmd =
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test"
            " -keyout " +
            (dir / "key.pem").string() + " -out " + (dir / "cert.pem").string() +
            " >/dev/null 2>&1 && openssl ecparam -name prime256v1 -genkey -noout -out " +
            (dir / "other-key.pem").string() + " 2>/dev/null";
        EXPECT_EQ(std::system(cmd.c_str()), 0);
        certPem = testing::readText(dir / "cert.pem");
    }
    ~TestPki() { fs::remove_all(dir); }
};

TestPki& pki() {
    static TestPki p;
    return p;
}

std::string indentBlock(const std::string& text, const std::string& pad) {
    std::string out;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string::npos) eol = text.size();
        out += pad + text.substr(pos, eol - pos) + "\n";
        pos = eol + 1;
    }
    return out;
}

TEST(Config, DefaultsMatchTheSpec) {
    Config c = mustLoad(kBase);
    EXPECT_EQ(c.consoleAddress.host, "console.example.com");
    EXPECT_EQ(c.consoleAddress.port, 443);
    EXPECT_EQ(c.organizationId, 1);
    EXPECT_EQ(c.registeredTo, "");
    EXPECT_EQ(c.relayProId, "");
    EXPECT_EQ(c.relayId, 0);
    EXPECT_EQ(c.securityToken, "");
    EXPECT_EQ(c.consoleCACert, "");
    EXPECT_FALSE(c.proxyEnabled);
    EXPECT_FALSE(c.debugLogging);
    EXPECT_EQ(c.deploymentToken, "");
    EXPECT_EQ(c.serverName, defaultServerName());
    EXPECT_EQ(c.privateFolder, "/srv/relay/private");
    EXPECT_EQ(c.passwordFile, "");
    EXPECT_EQ(c.tokenDuration, 1h);
    EXPECT_EQ(c.tokenClockSkew, 1min);
    EXPECT_EQ(c.httpsListen.text(), "0.0.0.0:9443");
    EXPECT_EQ(c.certFile, "");
    EXPECT_EQ(c.keyFile, "");
    EXPECT_FALSE(c.migration.has_value());
    EXPECT_EQ(c.logger.fileName, "relaypro.log.txt");
    EXPECT_EQ(c.logger.path, "/srv/relay/logs/relaypro.log.txt");
    EXPECT_EQ(c.logger.maxSize, 100ULL << 20);
    EXPECT_EQ(c.logger.maxAge, 24h * 28);
    EXPECT_EQ(c.logger.maxBackups, 10u);
    EXPECT_FALSE(c.logger.noCompress);
    EXPECT_EQ(c.workers, 0u);
    EXPECT_EQ(c.limits.maxConnections, 0u);
    EXPECT_EQ(c.limits.headerTimeout, 10s);
    EXPECT_EQ(c.limits.maxHeaderBytes, 16384u);
    EXPECT_EQ(c.limits.connectTimeout, 10s);
    EXPECT_EQ(c.limits.idleTimeout, 0s);
    EXPECT_EQ(c.limits.drainTimeout, 10min);
    EXPECT_EQ(c.limits.drainSpread, 1min);
    EXPECT_EQ(c.limits.shutdownGrace, 15s);
    EXPECT_EQ(c.limits.tokenRequestsPerMinute, 60u);
    EXPECT_EQ(c.limits.maxHandshakes, 0u);
    EXPECT_EQ(c.limits.listenBacklog, 4096u);
    EXPECT_EQ(c.limits.sourcePortLow, 0u);  // connect() chooses
    EXPECT_FALSE(c.metricsListen.has_value());
    EXPECT_TRUE(c.trustedSources.empty());
    EXPECT_FALSE(c.httpListen.has_value());
    EXPECT_EQ(c.caBundleFile, "/srv/relay/private/ca-bundle.pem");
    EXPECT_EQ(c.hostsFile, "/etc/hosts");
    EXPECT_EQ(c.controlSocketPath(), "/srv/relay/private/control.sock");
}

struct ValidCase {
    std::string yaml;
    std::function<void(const Config&)> check;
};

TEST(Config, EveryFieldAcceptsItsValidForms) {
    const std::string pem = pki().certPem;
    std::vector<ValidCase> cases = {
        {"consoleAddress: https://Console.Example.com:8443/\norganizationId: 1\n",
         [](const Config& c) {
             EXPECT_EQ(c.consoleAddress.host, "Console.Example.com");
             EXPECT_EQ(c.consoleAddress.port, 8443);
         }},
        {"consoleAddress: \"[::1]:8443\"\norganizationId: 0\n",
         [](const Config& c) {
             EXPECT_EQ(c.consoleAddress.host, "::1");
             EXPECT_EQ(c.organizationId, 0);
         }},
        {std::string(kBase) + "registeredTo: console.example.com:443\n",
         [](const Config& c) { EXPECT_EQ(c.registeredTo, "console.example.com:443"); }},
        {"consoleAddress: c\norganizationId: 9223372036854775807\n",
         [](const Config& c) { EXPECT_EQ(c.organizationId, INT64_MAX); }},
        {std::string(kBase) + "relayProId: 6F1C2C1E-0D7E-4A53-9A43-3C0E1F2B8D11\n",
         [](const Config& c) { EXPECT_EQ(c.relayProId, "6f1c2c1e-0d7e-4a53-9a43-3c0e1f2b8d11"); }},
        {std::string(kBase) + "relayId: 3\n", [](const Config& c) { EXPECT_EQ(c.relayId, 3); }},
        {std::string(kBase) + "securityToken: \"s3cr3t.token-value\"\n",
         [](const Config& c) { EXPECT_EQ(c.securityToken, "s3cr3t.token-value"); }},
        {std::string(kBase) + "consoleCACert: |\n" + indentBlock(pem, "  "),
         [pem](const Config& c) { EXPECT_EQ(c.consoleCACert, pem); }},
        {std::string(kBase) + "proxyEnabled: off\n", [](const Config& c) { EXPECT_FALSE(c.proxyEnabled); }},
        {std::string(kBase) + "debugLogging: true\n", [](const Config& c) { EXPECT_TRUE(c.debugLogging); }},
        {std::string(kBase) + "deploymentToken: dt-123\n",
         [](const Config& c) { EXPECT_EQ(c.deploymentToken, "dt-123"); }},
        {std::string(kBase) + "serverName: relay.example.com\n",
         [](const Config& c) { EXPECT_EQ(c.serverName, "relay.example.com"); }},
        {std::string(kBase) + "serverName: 192.0.2.10\n",
         [](const Config& c) { EXPECT_EQ(c.serverName, "192.0.2.10"); }},
        {std::string(kBase) + "privateFolder: /var/lib/relaypro\n",
         [](const Config& c) {
             EXPECT_EQ(c.privateFolder, "/var/lib/relaypro");
             EXPECT_EQ(c.caBundleFile, "/var/lib/relaypro/ca-bundle.pem");
         }},
        {std::string(kBase) + "privateFolder: data/private\n",
         [](const Config& c) { EXPECT_EQ(c.privateFolder, "/srv/relay/data/private"); }},
        {std::string(kBase) + "passwordFile: passwords.txt\n",
         [](const Config& c) { EXPECT_EQ(c.passwordFile, "/srv/relay/passwords.txt"); }},
        {std::string(kBase) + "clientAuthToken:\n  duration: 24h\n  clockSkew: 0\n",
         [](const Config& c) {
             EXPECT_EQ(c.tokenDuration, 24h);
             EXPECT_EQ(c.tokenClockSkew, 0s);
         }},
        {std::string(kBase) + "clientAuthToken:\n  duration: 1m\n  clockSkew: 1h\n",
         [](const Config& c) {
             EXPECT_EQ(c.tokenDuration, 1min);
             EXPECT_EQ(c.tokenClockSkew, 1h);
         }},
        {std::string(kBase) + "httpsProxy:\n  listen: \"[::]:443\"\n",
         [](const Config& c) { EXPECT_EQ(c.httpsListen.text(), "[::]:443"); }},
        {std::string(kBase) + "httpsProxy:\n  listen: 127.0.0.1:0\n",
         [](const Config& c) { EXPECT_EQ(c.httpsListen.port, 0); }},
        {std::string(kBase) + "httpsProxy:\n  certFile: " + (pki().dir / "cert.pem").string() +
             "\n  keyFile: " + (pki().dir / "key.pem").string() + "\n",
         [](const Config& c) {
             EXPECT_EQ(c.certFile, (pki().dir / "cert.pem").string());
             EXPECT_EQ(c.keyFile, (pki().dir / "key.pem").string());
         }},
        {std::string(kBase) +
             "migration:\n  consoleAddress: new.example.com:8443\n  validUntilAt: 2026-12-31T00:00:00Z\n",
         [](const Config& c) {
             ASSERT_TRUE(c.migration.has_value());
             EXPECT_EQ(c.migration->consoleAddress.host, "new.example.com");
             EXPECT_EQ(c.migration->validUntilText, "2026-12-31T00:00:00Z");
         }},
        {std::string(kBase) + "logger:\n  fileName: /var/log/relaypro/relay.json\n  maxSize: 5MB\n  maxAge: 0\n"
                              "  maxBackups: 0\n  noCompress: true\n",
         [](const Config& c) {
             EXPECT_EQ(c.logger.path, "/var/log/relaypro/relay.json");
             EXPECT_EQ(c.logger.maxSize, 5000000u);
             EXPECT_EQ(c.logger.maxAge, 0s);
             EXPECT_EQ(c.logger.maxBackups, 0u);
             EXPECT_TRUE(c.logger.noCompress);
         }},
        {std::string(kBase) + "logger:\n  fileName: sub/relay.txt\n  maxAge: 2days\n",
         [](const Config& c) {
             EXPECT_EQ(c.logger.path, "/srv/relay/logs/sub/relay.txt");
             EXPECT_EQ(c.logger.maxAge, 48h);
         }},
        // Issue 18: a name that already starts with logs/ is not put under logs/ again.
        {std::string(kBase) + "logger:\n  fileName: logs/relaypro.log.txt\n",
         [](const Config& c) { EXPECT_EQ(c.logger.path, "/srv/relay/logs/relaypro.log.txt"); }},
        {std::string(kBase) + "logger:\n  fileName: ./logs/archive/relay.txt\n",
         [](const Config& c) { EXPECT_EQ(c.logger.path, "/srv/relay/logs/archive/relay.txt"); }},
        {std::string(kBase) + "logger:\n  fileName: logsX/relay.txt\n",
         [](const Config& c) { EXPECT_EQ(c.logger.path, "/srv/relay/logs/logsX/relay.txt"); }},
        {std::string(kBase) + "workers: 64\n", [](const Config& c) { EXPECT_EQ(c.workers, 64u); }},
        {std::string(kBase) + "workers: auto\n", [](const Config& c) { EXPECT_EQ(c.workers, 0u); }},
        {std::string(kBase) + "limits:\n  maxConnections: 50000\n  headerTimeout: 500ms\n  maxHeaderBytes: 1KiB\n"
                              "  connectTimeout: 3s\n  idleTimeout: 1h\n  drainTimeout: 0\n  drainSpread: 4s\n"
                              "  shutdownGrace: 1m\n  tokenRequestsPerMinute: 1\n  maxHandshakes: 0\n"
                              "  listenBacklog: 128\n  sourcePorts: 40000-65535\n",
         [](const Config& c) {
             EXPECT_EQ(c.limits.maxConnections, 50000u);
             EXPECT_EQ(c.limits.headerTimeout, 500ms);
             EXPECT_EQ(c.limits.maxHeaderBytes, 1024u);
             EXPECT_EQ(c.limits.connectTimeout, 3s);
             EXPECT_EQ(c.limits.idleTimeout, 1h);
             EXPECT_EQ(c.limits.drainTimeout, 0s);
             EXPECT_EQ(c.limits.drainSpread, 4s);
             EXPECT_EQ(c.limits.shutdownGrace, 1min);
             EXPECT_EQ(c.limits.tokenRequestsPerMinute, 1u);
             EXPECT_EQ(c.limits.maxHandshakes, 0u);
             EXPECT_EQ(c.limits.listenBacklog, 128u);
             EXPECT_EQ(c.limits.sourcePortLow, 40000u);
             EXPECT_EQ(c.limits.sourcePortHigh, 65535u);
         }},
        {std::string(kBase) + "limits:\n  maxConnections: auto\n  maxHeaderBytes: 1MiB\n",
         [](const Config& c) {
             EXPECT_EQ(c.limits.maxConnections, 0u);
             EXPECT_EQ(c.limits.maxHeaderBytes, 1u << 20);
         }},
        {std::string(kBase) + "metrics:\n  listen: 127.0.0.1:9100\n",
         [](const Config& c) { EXPECT_EQ(c.metricsListen->text(), "127.0.0.1:9100"); }},
        {std::string(kBase) +
             "proxyProtocol:\n  trustedSources:\n    - 10.0.0.0/8\n    - \"2001:db8::/32\"\n    - 192.0.2.1\n",
         [](const Config& c) {
             ASSERT_EQ(c.trustedSources.size(), 3u);
             EXPECT_EQ(c.trustedSources[2].text(), "192.0.2.1/32");
         }},
        {std::string(kBase) + "proxyProtocol:\n  trustedSources: [10.0.0.0/8]\n",
         [](const Config& c) { EXPECT_EQ(c.trustedSources.size(), 1u); }},
        // null means "not set": the default stays.
        {std::string(kBase) + "relayId:\nlimits: ~\nlogger:\n  maxSize: null\n",
         [](const Config& c) {
             EXPECT_EQ(c.relayId, 0);
             EXPECT_EQ(c.logger.maxSize, 100ULL << 20);
         }},
    };
    for (const auto& c : cases) {
        SCOPED_TRACE(c.yaml);
        auto l = load(c.yaml);
        ASSERT_TRUE(l.config.ok()) << l.config.error().message;
        EXPECT_TRUE(l.warnings.empty()) << l.warnings.front();
        c.check(*l.config);
    }
}

struct InvalidCase {
    std::string line;      // appended to kBase (so it starts on line 3)
    std::string expected;  // the whole error message
};

TEST(Config, EveryFieldRejectsInvalidValuesWithFileLineColumn) {
    std::vector<InvalidCase> cases = {
        {"registeredTo: \"http://x\"\n",
         "/srv/relay/config.yml:3:1: registeredTo: \"http://x\" has scheme \"http\"; only an https:// prefix is "
         "accepted"},
        {"relayProId: not-a-uuid\n",
         "/srv/relay/config.yml:3:1: relayProId: \"not-a-uuid\" is not a UUID (8-4-4-4-12 hexadecimal digits)"},
        {"relayId: -1\n", "/srv/relay/config.yml:3:1: relayId: -1 is out of range (0 to 9223372036854775807)"},
        {"relayId: three\n", "/srv/relay/config.yml:3:1: relayId: \"three\" is not an integer"},
        {"securityToken: \"a\\nInjected: 1\"\n",
         "/srv/relay/config.yml:3:1: securityToken: invalid value: must be printable ASCII without spaces"},
        {"consoleCACert: \"not pem\"\n",
         "/srv/relay/config.yml:3:1: consoleCACert: is not PEM (expected -----BEGIN CERTIFICATE-----)"},
        {"consoleCACert: |\n  -----BEGIN CERTIFICATE-----\n  AAAA\n  -----END CERTIFICATE-----\n",
         "/srv/relay/config.yml:3:1: consoleCACert: certificate 1 is not a valid X.509 certificate"},
        {"proxyEnabled: maybe\n",
         "/srv/relay/config.yml:3:1: proxyEnabled: \"maybe\" is not a boolean (true or false)"},
        {"debugLogging: 1\n", "/srv/relay/config.yml:3:1: debugLogging: \"1\" is not a boolean (true or false)"},
        {"deploymentToken: \"has space\"\n",
         "/srv/relay/config.yml:3:1: deploymentToken: invalid value: must be printable ASCII without spaces"},
        {"serverName: \"bad name\"\n",
         "/srv/relay/config.yml:3:1: serverName: \"bad name\" is not a DNS name or IP address"},
        {"privateFolder: \"\"\n", "/srv/relay/config.yml:3:1: privateFolder: must not be empty"},
        {"clientAuthToken:\n  duration: 30s\n",
         "/srv/relay/config.yml:4:3: clientAuthToken.duration: \"30s\" is out of range (1m to 1d)"},
        {"clientAuthToken:\n  duration: 25h\n",
         "/srv/relay/config.yml:4:3: clientAuthToken.duration: \"25h\" is out of range (1m to 1d)"},
        {"clientAuthToken:\n  clockSkew: 2h\n",
         "/srv/relay/config.yml:4:3: clientAuthToken.clockSkew: \"2h\" is out of range (0 to 1h)"},
        {"clientAuthToken:\n  clockSkew: soon\n",
         "/srv/relay/config.yml:4:3: clientAuthToken.clockSkew: \"soon\" is not a valid duration (expected a number; "
         "e.g. 90s, 1h30m, 500ms, 2days, 4weeks)"},
        {"httpsProxy:\n  listen: \"0.0.0.0:99999\"\n",
         "/srv/relay/config.yml:4:3: httpsProxy.listen: \"0.0.0.0:99999\" is not a valid port"},
        {"httpsProxy:\n  listen: 9443\n",
         "/srv/relay/config.yml:4:3: httpsProxy.listen: \"9443\" has no port (expected host:port)"},
        {"httpsProxy:\n  certFile: /nonexistent/cert.pem\n",
         "/srv/relay/config.yml:4:3: httpsProxy.certFile: needs httpsProxy.keyFile too (set both or neither)"},
        {"httpsProxy: 5\n",
         "/srv/relay/config.yml:3:1: httpsProxy: expected a mapping of its fields, not a single value"},
        {"migration:\n  consoleAddress: new.example.com\n",
         "/srv/relay/config.yml:4:3: migration.consoleAddress: needs migration.validUntilAt (the end of the migration "
         "window)"},
        {"migration:\n  consoleAddress: new.example.com\n  validUntilAt: tomorrow\n",
         "/srv/relay/config.yml:5:3: migration.validUntilAt: \"tomorrow\" is not an RFC 3339 time (e.g. "
         "2026-12-01T00:00:00Z)"},
        {"logger:\n  fileName: \"\"\n", "/srv/relay/config.yml:4:3: logger.fileName: must name a file"},
        {"logger:\n  maxSize: 0\n", "/srv/relay/config.yml:4:3: logger.maxSize: \"0\" is out of range (1 to 1TiB)"},
        {"logger:\n  maxSize: 5 parsecs\n",
         "/srv/relay/config.yml:4:3: logger.maxSize: \"5 parsecs\" is not a valid size (unknown unit; use B, KB, MB, "
         "GB, TB, KiB, MiB, GiB or TiB; e.g. 16KiB, 100MiB, 512KB, 1048576)"},
        {"logger:\n  maxAge: -1s\n",
         "/srv/relay/config.yml:4:3: logger.maxAge: \"-1s\" is not a valid duration (expected a number; e.g. 90s, "
         "1h30m, 500ms, 2days, 4weeks)"},
        {"logger:\n  maxBackups: -2\n",
         "/srv/relay/config.yml:4:3: logger.maxBackups: -2 is out of range (0 to 100000)"},
        {"logger:\n  noCompress: nope\n",
         "/srv/relay/config.yml:4:3: logger.noCompress: \"nope\" is not a boolean (true or false)"},
        {"workers: 0\n", "/srv/relay/config.yml:3:1: workers: 0 is out of range (1 to 64); use auto or 1 to 64"},
        {"workers: 65\n", "/srv/relay/config.yml:3:1: workers: 65 is out of range (1 to 64); use auto or 1 to 64"},
        {"workers: many\n", "/srv/relay/config.yml:3:1: workers: \"many\" is not an integer; use auto or 1 to 64"},
        {"limits:\n  maxConnections: 0\n",
         "/srv/relay/config.yml:4:3: limits.maxConnections: 0 is out of range (1 to 100000000); use auto or an "
         "integer"},
        {"limits:\n  headerTimeout: 0\n",
         "/srv/relay/config.yml:4:3: limits.headerTimeout: \"0\" is out of range (1ms to 1h)"},
        {"limits:\n  maxHeaderBytes: 512\n",
         "/srv/relay/config.yml:4:3: limits.maxHeaderBytes: \"512\" is out of range (1KiB to 1MiB)"},
        {"limits:\n  maxHeaderBytes: 2MiB\n",
         "/srv/relay/config.yml:4:3: limits.maxHeaderBytes: \"2MiB\" is out of range (1KiB to 1MiB)"},
        {"limits:\n  connectTimeout: 11m\n",
         "/srv/relay/config.yml:4:3: limits.connectTimeout: \"11m\" is out of range (1ms to 10m)"},
        {"limits:\n  idleTimeout: 400d\n",
         "/srv/relay/config.yml:4:3: limits.idleTimeout: \"400d\" is out of range (0 to 52w1d)"},
        {"limits:\n  drainTimeout: 31d\n",
         "/srv/relay/config.yml:4:3: limits.drainTimeout: \"31d\" is out of range (0 to 4w2d)"},
        {"limits:\n  drainSpread: 25h\n",
         "/srv/relay/config.yml:4:3: limits.drainSpread: \"25h\" is out of range (0 to 1d)"},
        {"limits:\n  maxHandshakes: 1000001\n",
         "/srv/relay/config.yml:4:3: limits.maxHandshakes: 1000001 is out of range (0 to 1000000); use auto or an "
         "integer"},
        {"limits:\n  listenBacklog: 0\n",
         "/srv/relay/config.yml:4:3: limits.listenBacklog: 0 is out of range (1 to 65535)"},
        {"limits:\n  sourcePorts: 40000\n",
         "/srv/relay/config.yml:4:3: limits.sourcePorts: expected low-high, e.g. 40000-65535, or \"\""},
        {"limits:\n  sourcePorts: 80-65535\n",
         "/srv/relay/config.yml:4:3: limits.sourcePorts: the low port: 80 is out of range (1024 to 65535)"},
        {"limits:\n  sourcePorts: 40000-70000\n",
         "/srv/relay/config.yml:4:3: limits.sourcePorts: the high port: 70000 is out of range (1024 to 65535)"},
        {"limits:\n  sourcePorts: 50000-40000\n",
         "/srv/relay/config.yml:4:3: limits.sourcePorts: the high port is below the low one (50000-40000)"},
        {"limits:\n  sourcePorts: 40000-40100\n",
         "/srv/relay/config.yml:4:3: limits.sourcePorts: a range of at least 1024 ports is needed (40000-40100)"},
        {"limits:\n  shutdownGrace: 2d\n",
         "/srv/relay/config.yml:4:3: limits.shutdownGrace: \"2d\" is out of range (0 to 1d)"},
        {"limits:\n  tokenRequestsPerMinute: 0\n",
         "/srv/relay/config.yml:4:3: limits.tokenRequestsPerMinute: 0 is out of range (1 to 1000000)"},
        {"metrics:\n  listen: localhost\n",
         "/srv/relay/config.yml:4:3: metrics.listen: \"localhost\" has no port (expected host:port)"},
        {"proxyProtocol:\n  trustedSources: 10.0.0.0/8\n",
         "/srv/relay/config.yml:4:3: proxyProtocol.trustedSources: expected a list of CIDRs (e.g. [10.0.0.0/8])"},
        {"proxyProtocol:\n  trustedSources:\n    - 10.0.0.0/8\n    - 300.0.0.0/8\n",
         "/srv/relay/config.yml:6:7: proxyProtocol.trustedSources: \"300.0.0.0/8\" is not an IP address or CIDR (e.g. "
         "10.0.0.0/8, 2001:db8::/32)"},
        {"relayId: [1, 2]\n", "/srv/relay/config.yml:3:1: relayId: expected a single value, not a list"},
        {"relayId:\n  a: 1\n", "/srv/relay/config.yml:3:1: relayId: expected a single value, not a mapping"},
    };
    for (const auto& c : cases) {
        EXPECT_EQ(mustFail(std::string(kBase) + c.line), c.expected) << c.line;
    }
}

TEST(Config, RequiredFieldsAndTopLevelShape) {
    EXPECT_EQ(mustFail("organizationId: 1\n"),
              "/srv/relay/config.yml:1:1: consoleAddress: is required (set it in config.yml, or AIR_CONSOLE_ADDRESS at "
              "installation)");
    EXPECT_EQ(mustFail("consoleAddress: \"\"\norganizationId: 1\n"),
              "/srv/relay/config.yml:1:1: consoleAddress: is required (set it in config.yml, or AIR_CONSOLE_ADDRESS at "
              "installation)");
    EXPECT_EQ(mustFail("consoleAddress: c\n"),
              "/srv/relay/config.yml:1:1: organizationId: is required (set it in config.yml, or AIR_ORGANIZATION_ID at "
              "installation)");
    EXPECT_EQ(mustFail("consoleAddress: c\norganizationId:\n"),
              "/srv/relay/config.yml:2:1: organizationId: is required (set it in config.yml, or AIR_ORGANIZATION_ID at "
              "installation)");
    EXPECT_EQ(mustFail("- a\n- b\n"), "/srv/relay/config.yml:1:1: syntax: the file must be a mapping of field: value");
    std::string syntax = mustFail("consoleAddress: c\norganizationId: 1\nlimits:\n  headerTimeout: 1s\n bad: x\n");
    EXPECT_EQ(syntax.rfind("/srv/relay/config.yml:5:", 0), 0u) << syntax;
    EXPECT_NE(syntax.find("syntax:"), std::string::npos);
}

TEST(Config, ReportsEveryErrorNotJustTheFirst) {
    std::string message = mustFail("consoleAddress: \"http://x\"\norganizationId: -5\nworkers: 0\n");
    EXPECT_EQ(std::count(message.begin(), message.end(), '\n'), 2) << message;
    EXPECT_NE(message.find(":1:1: consoleAddress:"), std::string::npos);
    EXPECT_NE(message.find(":2:1: organizationId:"), std::string::npos);
    EXPECT_NE(message.find(":3:1: workers:"), std::string::npos);
}

TEST(Config, UnknownKeysWarnWithTheNearestKnownKey) {
    auto l = load(std::string(kBase) +
                  "httpProxy:\n  listen: x\nlimits:\n  headerTimout: 5s\nlogger:\n  maxsize: 5MB\nzzz: 1\n");
    ASSERT_TRUE(l.config.ok()) << l.config.error().message;
    ASSERT_EQ(l.warnings.size(), 4u);
    EXPECT_EQ(l.warnings[0], "/srv/relay/config.yml:3:1: unknown field \"httpProxy\" — did you mean \"httpsProxy\"?");
    EXPECT_EQ(
        l.warnings[1],
        "/srv/relay/config.yml:6:3: unknown field \"limits.headerTimout\" — did you mean \"limits.headerTimeout\"?");
    EXPECT_EQ(l.warnings[2],
              "/srv/relay/config.yml:8:3: unknown field \"logger.maxsize\" — did you mean \"logger.maxSize\"?");
    EXPECT_EQ(l.warnings[3].rfind("/srv/relay/config.yml:9:1: unknown field \"zzz\" — did you mean \"", 0), 0u);
    // The misspelt values were not applied.
    EXPECT_EQ(l.config->limits.headerTimeout, 10s);
}

TEST(Config, ControlSocketPathMustFitAUnixSocket) {
    std::string longFolder = "/" + std::string(100, 'p');
    std::string message = mustFail(std::string(kBase) + "privateFolder: " + longFolder + "\n");
    EXPECT_EQ(message.rfind("/srv/relay/config.yml:3:1: privateFolder: the control socket path", 0), 0u) << message;
    EXPECT_NE(message.find("is 114 bytes; a Unix socket path holds at most 107"), std::string::npos);
    EXPECT_TRUE(load(std::string(kBase) + "privateFolder: /" + std::string(93, 'p') + "\n").config.ok());
}

TEST(Config, CertificateFilesMustBeUsable) {
    std::string cert = (pki().dir / "cert.pem").string();
    std::string other = (pki().dir / "other-key.pem").string();
    std::string message =
        mustFail(std::string(kBase) + "httpsProxy:\n  certFile: " + cert + "\n  keyFile: " + other + "\n");
    EXPECT_EQ(message, "/srv/relay/config.yml:4:3: httpsProxy.certFile: " + other +
                           " does not match the certificate in " + cert);
    std::string missing =
        mustFail(std::string(kBase) + "httpsProxy:\n  certFile: /nonexistent.pem\n  keyFile: " + other + "\n");
    EXPECT_NE(missing.find("httpsProxy.certFile: cannot open /nonexistent.pem: No such file or directory"),
              std::string::npos)
        << missing;
}

TEST(Config, EnvironmentOverridesTheFile) {
    Config c = mustLoad(std::string(kBase) + "httpsProxy:\n  listen: 0.0.0.0:9443\npasswordFile: a.txt\n",
                        {{"RELAYPRO_HTTPS_LISTEN", "127.0.0.1:0"},
                         {"RELAYPRO_HTTP_LISTEN", "127.0.0.1:8080"},
                         {"RELAYPRO_PASSWORD_FILE", "env-passwords.txt"},
                         {"RELAYPRO_CA_BUNDLE_FILE", "/etc/relay/bundle.pem"},
                         {"RELAYPRO_HOSTS_FILE", "hosts.test"}});
    EXPECT_EQ(c.httpsListen.text(), "127.0.0.1:0");
    EXPECT_EQ(c.httpListen->text(), "127.0.0.1:8080");
    EXPECT_EQ(c.passwordFile, "/srv/relay/env-passwords.txt");  // relative to config.yml's folder
    EXPECT_EQ(c.caBundleFile, "/etc/relay/bundle.pem");
    EXPECT_EQ(c.hostsFile, "/srv/relay/hosts.test");

    // An empty RELAYPRO_PASSWORD_FILE turns Basic off even when the file names one.
    Config off = mustLoad(std::string(kBase) + "passwordFile: a.txt\n", {{"RELAYPRO_PASSWORD_FILE", ""}});
    EXPECT_EQ(off.passwordFile, "");
}

TEST(Config, EnvironmentErrorsNameTheVariable) {
    EXPECT_EQ(mustFail(kBase, {{"RELAYPRO_HTTPS_LISTEN", "0.0.0.0:99999"}}),
              "environment: RELAYPRO_HTTPS_LISTEN: \"0.0.0.0:99999\" is not a valid port");
    EXPECT_EQ(mustFail(kBase, {{"RELAYPRO_HTTP_LISTEN", "nowhere"}}),
              "environment: RELAYPRO_HTTP_LISTEN: \"nowhere\" has no port (expected host:port)");
}

TEST(Config, EnvironmentFileValuesAreAttributedToTheirLine) {
    Environment env;
    std::vector<std::string> warnings;
    ASSERT_TRUE(env.applyFileText("# x\nRELAYPRO_HTTPS_LISTEN=bad\n", "/etc/environment.d/r.conf", warnings).ok());
    auto r = parseConfig(ConfigSource{kPath, kBase}, env, warnings);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message,
              "/etc/environment.d/r.conf:2: RELAYPRO_HTTPS_LISTEN: \"bad\" has no port (expected host:port)");
}

TEST(Config, LoggerConfStringOverridesEachKeyItNames) {
    Config c =
        mustLoad(std::string(kBase) + "logger:\n  fileName: file.txt\n  maxSize: 1MiB\n  maxBackups: 3\n",
                 {{"RELAYPRO_LOGGER_CONF", " fileName=/var/log/r.txt, maxSize=5MB,maxAge=1week , noCompress=true"}});
    EXPECT_EQ(c.logger.path, "/var/log/r.txt");
    EXPECT_EQ(c.logger.maxSize, 5000000u);
    EXPECT_EQ(c.logger.maxAge, 168h);
    EXPECT_EQ(c.logger.maxBackups, 3u);  // not named: config.yml's value stays
    EXPECT_TRUE(c.logger.noCompress);

    Config rel = mustLoad(kBase, {{"RELAYPRO_LOGGER_CONF", "fileName=relay.log,maxBackups=0"}});
    EXPECT_EQ(rel.logger.path, "/srv/relay/logs/relay.log");
    EXPECT_EQ(rel.logger.maxBackups, 0u);

    EXPECT_EQ(mustFail(kBase, {{"RELAYPRO_LOGGER_CONF", "maxSize=big"}}),
              "environment: RELAYPRO_LOGGER_CONF: maxSize: \"big\" is not a valid size (expected a number; e.g. 16KiB, "
              "100MiB, 512KB, 1048576)");
    EXPECT_EQ(mustFail(kBase, {{"RELAYPRO_LOGGER_CONF", "maxsize=5MB"}}),
              "environment: RELAYPRO_LOGGER_CONF: unknown key \"maxsize\" — did you mean \"maxSize\"?");
    EXPECT_EQ(mustFail(kBase, {{"RELAYPRO_LOGGER_CONF", "maxSize"}}),
              "environment: RELAYPRO_LOGGER_CONF: \"maxSize\" is not key=value");
    EXPECT_EQ(mustFail(kBase, {{"RELAYPRO_LOGGER_CONF", "maxBackups=1,maxBackups=2"}}),
              "environment: RELAYPRO_LOGGER_CONF: maxBackups is given twice");
}

TEST(Config, InstallationInputsFillOnlyWhatTheFileLacks) {
    Config filled = mustLoad("# empty\n", {{"AIR_CONSOLE_ADDRESS", "air.example.com"},
                                           {"AIR_ORGANIZATION_ID", "42"},
                                           {"AIR_DEPLOYMENT_TOKEN", "deploy-1"},
                                           {"AIR_CONSOLE_CA_CERT", pki().certPem}});
    EXPECT_EQ(filled.consoleAddress.host, "air.example.com");
    EXPECT_EQ(filled.organizationId, 42);
    EXPECT_EQ(filled.deploymentToken, "deploy-1");
    EXPECT_EQ(filled.consoleCACert, pki().certPem);

    Config kept =
        mustLoad(std::string(kBase) + "deploymentToken: from-file\n", {{"AIR_CONSOLE_ADDRESS", "air.example.com"},
                                                                       {"AIR_ORGANIZATION_ID", "42"},
                                                                       {"AIR_DEPLOYMENT_TOKEN", "deploy-1"}});
    EXPECT_EQ(kept.consoleAddress.host, "console.example.com");
    EXPECT_EQ(kept.organizationId, 1);
    EXPECT_EQ(kept.deploymentToken, "from-file");

    // An empty value in the file counts as lacking it.
    Config empty = mustLoad("consoleAddress: \"\"\norganizationId: 1\n", {{"AIR_CONSOLE_ADDRESS", "air.example.com"}});
    EXPECT_EQ(empty.consoleAddress.host, "air.example.com");

    // AIR_CONSOLE_CA_CERT may be a path (relative to config.yml's folder).
    Environment env(EnvVars{{"AIR_CONSOLE_CA_CERT", (pki().dir / "cert.pem").string()}});
    std::vector<std::string> warnings;
    auto fromPath = parseConfig(ConfigSource{kPath, kBase}, env, warnings);
    ASSERT_TRUE(fromPath.ok()) << fromPath.error().message;
    EXPECT_EQ(fromPath->consoleCACert, pki().certPem);

    EXPECT_EQ(mustFail("consoleAddress: c\n", {{"AIR_ORGANIZATION_ID", "x"}}),
              "environment: AIR_ORGANIZATION_ID: \"x\" is not an integer");
    EXPECT_EQ(mustFail(kBase, {{"AIR_CONSOLE_CA_CERT", "/nonexistent/ca.pem"}}),
              "environment: AIR_CONSOLE_CA_CERT: cannot open /nonexistent/ca.pem: No such file or directory");
    EXPECT_EQ(
        mustFail(kBase, {{"AIR_CONSOLE_CA_CERT", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"}}),
        "environment: AIR_CONSOLE_CA_CERT: certificate 1 is not a valid X.509 certificate");
}

TEST(Config, ProxySettingsAreReadOnlyWhenEnabled) {
    Config off = mustLoad(kBase, {{"HTTPS_PROXY", "not a url"}});
    EXPECT_FALSE(off.proxy.https.has_value());
    Config on = mustLoad(std::string(kBase) + "proxyEnabled: true\n",
                         {{"https_proxy", "http://user:pw@127.0.0.1:3128"}, {"NO_PROXY", ".internal"}});
    ASSERT_TRUE(on.proxy.https.has_value());
    EXPECT_EQ(on.proxy.https->port, 3128);
    EXPECT_TRUE(on.proxy.noProxy.bypasses("x.internal"));
    EXPECT_EQ(
        mustFail(std::string(kBase) + "proxyEnabled: true\n", {{"HTTPS_PROXY", "not a url"}}),
        "environment: HTTPS_PROXY: proxy URL is not a proxy URL (expected http://host:port or https://host:port)");
    auto noProxy = load(std::string(kBase) + "proxyEnabled: true\n");
    ASSERT_TRUE(noProxy.config.ok());
    ASSERT_EQ(noProxy.warnings.size(), 1u);
    EXPECT_NE(noProxy.warnings[0].find("neither https_proxy nor HTTPS_PROXY is set"), std::string::npos);
}

TEST(Config, RelativeConfigPathResolvesAgainstItsFolderNotTheProcess) {
    Environment env;
    std::vector<std::string> warnings;
    auto r = parseConfig(ConfigSource{"etc/config.yml", kBase}, env, warnings);
    ASSERT_TRUE(r.ok());
    char cwd[4096];
    ASSERT_NE(::getcwd(cwd, sizeof cwd), nullptr);
    EXPECT_EQ(r->privateFolder, std::string(cwd) + "/etc/private");
    EXPECT_EQ(r->logger.path, std::string(cwd) + "/etc/logs/relaypro.log.txt");
}

TEST(Config, DiffTellsWhichFieldsChangedAndHowTheyApply) {
    Config a = mustLoad(kBase);
    Config b = mustLoad(std::string(kBase) +
                            "serverName: other.example\nlimits:\n  headerTimeout: 5s\n"
                            "passwordFile: p.txt\nlogger:\n  maxBackups: 2\n",
                        {{"RELAYPRO_HTTP_LISTEN", "127.0.0.1:80"}});
    Config c = mustLoad("consoleAddress: console.example.com\norganizationId: 2\n");
    auto changes = diffConfigs(a, b);
    std::vector<std::pair<std::string, Apply>> got;
    for (const auto& ch : changes) got.emplace_back(ch.field, ch.apply);
    std::vector<std::pair<std::string, Apply>> want{{"serverName", Apply::Restart},
                                                    {"passwordFile", Apply::Reload},
                                                    {"logger.maxBackups", Apply::Restart},
                                                    {"limits.headerTimeout", Apply::Reload},
                                                    {"RELAYPRO_HTTP_LISTEN", Apply::Restart}};
    EXPECT_EQ(got, want);
    auto org = diffConfigs(a, c);
    ASSERT_EQ(org.size(), 1u);
    EXPECT_EQ(org[0].field, "organizationId");
    EXPECT_EQ(org[0].apply, Apply::NextRegistration);
    EXPECT_TRUE(diffConfigs(a, a).empty());
    // A secret that changes is reported by name only.
    Config d = mustLoad(std::string(kBase) + "securityToken: abc\n");
    ASSERT_EQ(diffConfigs(a, d).size(), 1u);
    EXPECT_EQ(diffConfigs(a, d)[0].field, "securityToken");
}

// Every field and environment setting is classified once: a reload keeps exactly those that
// only a restart changes (keepRestartFields, derived from the field table), and applies the rest.
TEST(Config, AReloadKeepsExactlyTheRestartFields) {
    fs::copy_file(pki().dir / "cert.pem", pki().dir / "cert2.pem", fs::copy_options::overwrite_existing);
    fs::copy_file(pki().dir / "key.pem", pki().dir / "key2.pem", fs::copy_options::overwrite_existing);
    auto tls = [](const std::string& n) {
        return "httpsProxy:\n  listen: 127.0.0.1:" + std::string(n == "2" ? "8443" : "443") +
               "\n  certFile: " + (pki().dir / ("cert" + n + ".pem")).string() +
               "\n  keyFile: " + (pki().dir / ("key" + n + ".pem")).string() + "\n";
    };
    Config running = mustLoad(std::string(kBase) + tls(""));
    // Every field changed: the restart-only ones and some of the others.
    Config next = mustLoad(
        std::string(kBase) + tls("2") +
            "serverName: other.example\nprivateFolder: /srv/other\nworkers: 3\nmetrics:\n  listen: 127.0.0.1:9464\n"
            "logger:\n  fileName: other.log\n  maxSize: 5MB\n  maxAge: 1h\n  maxBackups: 2\n  noCompress: true\n"
            "limits:\n  headerTimeout: 5s\ndebugLogging: true\n",
        {{"RELAYPRO_HTTP_LISTEN", "127.0.0.1:8080"},
         {"RELAYPRO_CA_BUNDLE_FILE", "/srv/other/ca.pem"},
         {"RELAYPRO_HOSTS_FILE", "/srv/other/hosts"}});
    std::set<std::string> restart, reload;
    for (const auto& ch : diffConfigs(running, next)) (ch.apply == Apply::Restart ? restart : reload).insert(ch.field);
    const std::set<std::string> restartFields{
        "serverName",      "privateFolder",  "httpsProxy.listen",    "httpsProxy.certFile",    "httpsProxy.keyFile",
        "logger.fileName", "logger.maxSize", "logger.maxAge",        "logger.maxBackups",      "logger.noCompress",
        "workers",         "metrics.listen", "RELAYPRO_HTTP_LISTEN", "RELAYPRO_CA_BUNDLE_FILE"};
    EXPECT_EQ(restart, restartFields) << "the restart-only fields, as spec/config.md lists them";
    EXPECT_EQ(reload, (std::set<std::string>{"debugLogging", "limits.headerTimeout", "RELAYPRO_HOSTS_FILE"}));

    EXPECT_TRUE(restartFieldsAreKept()) << "a Restart field without a keep rule, or a keep rule on another";
    Config kept = keepRestartFields(running, next);
    std::set<std::string> left;
    for (const auto& ch : diffConfigs(running, kept)) {
        EXPECT_NE(ch.apply, Apply::Restart) << ch.field << " was not kept";
        left.insert(ch.field);
    }
    EXPECT_EQ(left, reload) << "what a reload applies is applied";
    EXPECT_EQ(kept.logger.path, running.logger.path) << "the derived log path is kept with its field";
    EXPECT_TRUE(kept.logger == running.logger) << "every logger setting is restart-only";
    EXPECT_EQ(kept.limits.headerTimeout, 5s);
}

TEST(Config, FieldTableCoversEveryFieldOfTheSpec) {
    std::vector<std::string> want{"consoleAddress",
                                  "registeredTo",
                                  "organizationId",
                                  "relayProId",
                                  "relayId",
                                  "securityToken",
                                  "consoleCACert",
                                  "proxyEnabled",
                                  "debugLogging",
                                  "deploymentToken",
                                  "serverName",
                                  "privateFolder",
                                  "passwordFile",
                                  "clientAuthToken.duration",
                                  "clientAuthToken.clockSkew",
                                  "httpsProxy.listen",
                                  "httpsProxy.certFile",
                                  "httpsProxy.keyFile",
                                  "migration.consoleAddress",
                                  "migration.validUntilAt",
                                  "logger.fileName",
                                  "logger.maxSize",
                                  "logger.maxAge",
                                  "logger.maxBackups",
                                  "logger.noCompress",
                                  "workers",
                                  "limits.maxConnections",
                                  "limits.headerTimeout",
                                  "limits.maxHeaderBytes",
                                  "limits.connectTimeout",
                                  "limits.idleTimeout",
                                  "limits.drainTimeout",
                                  "limits.drainSpread",
                                  "limits.shutdownGrace",
                                  "limits.tokenRequestsPerMinute",
                                  "limits.maxHandshakes",
                                  "limits.listenBacklog",
                                  "limits.sourcePorts",
                                  "metrics.listen",
                                  "proxyProtocol.trustedSources"};
    std::vector<std::string> got(configFieldNames().begin(), configFieldNames().end());
    EXPECT_EQ(got, want);
}

// limits.maxHandshakes: auto is 256 per online CPU shared by the workers, at least 16 each.
TEST(Config, TheHandshakeBoundIsSizedByCpusAndWorkers) {
    EXPECT_EQ(handshakeBound(kAutoHandshakes, 8, 2), 64u);  // issue 19's storm: 8 workers, 2 vCPUs
    EXPECT_EQ(handshakeBound(kAutoHandshakes, 2, 2), 256u);
    EXPECT_EQ(handshakeBound(kAutoHandshakes, 64, 1), 16u);
    EXPECT_EQ(handshakeBound(kAutoHandshakes, 1, 0), 256u);
    EXPECT_EQ(handshakeBound(100, 8, 2), 100u);
    EXPECT_EQ(handshakeBound(0, 8, 2), 0u) << "0: no bound";
    Config c = mustLoad(std::string(kBase) + "limits:\n  maxHandshakes: auto\n");
    EXPECT_EQ(c.limits.maxHandshakes, kAutoHandshakes);
}

TEST(Config, RenderRedactsSecretsAndReadsBack) {
    Config c = mustLoad(std::string(kBase) + "securityToken: sec-123\ndeploymentToken: dep-456\nconsoleCACert: |\n" +
                            indentBlock(pki().certPem, "  ") +
                            "migration:\n  consoleAddress: n.example\n  validUntilAt: 2030-01-01T00:00:00Z\n"
                            "proxyEnabled: true\nproxyProtocol:\n  trustedSources: [10.0.0.0/8]\n",
                        {{"HTTPS_PROXY", "http://u:proxy-pass@p:1"}});
    std::string out = renderEffectiveConfig(c);
    EXPECT_EQ(out.find("sec-123"), std::string::npos);
    EXPECT_EQ(out.find("dep-456"), std::string::npos);
    EXPECT_EQ(out.find("proxy-pass"), std::string::npos);
    EXPECT_NE(out.find("securityToken: \"<redacted>\""), std::string::npos);
    EXPECT_NE(out.find("deploymentToken: \"<redacted>\""), std::string::npos);
    EXPECT_NE(out.find("#   https_proxy: \"http://u:<redacted>@p:1\""), std::string::npos);
    EXPECT_NE(out.find("consoleCACert: |\n  -----BEGIN CERTIFICATE-----"), std::string::npos);
    // The output is itself a valid configuration with the same values (secrets aside).
    std::vector<std::string> warnings;
    Environment env(EnvVars{{"HTTPS_PROXY", "http://u:proxy-pass@p:1"}});
    auto again = parseConfig(ConfigSource{kPath, out}, env, warnings);
    ASSERT_TRUE(again.ok()) << again.error().message << "\n" << out;
    EXPECT_TRUE(warnings.empty());
    auto changes = diffConfigs(c, *again);
    std::vector<std::string> changed;
    for (const auto& ch : changes) changed.push_back(ch.field);
    EXPECT_EQ(changed, (std::vector<std::string>{"securityToken", "deploymentToken"}));
}

}  // namespace
}  // namespace relaypro
