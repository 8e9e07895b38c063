#include "common/config_fields.h"

#include <algorithm>
#include <climits>
#include <limits>

#include "common/file_io.h"
#include "common/pem.h"
#include "common/text.h"
#include "common/yaml_emit.h"

namespace relaypro::config_table {

using namespace std::chrono_literals;

// ------------------------------------------------------------------ value helpers

Result<int64_t> parseInteger(std::string_view text, int64_t min, int64_t max) {
    std::string_view s = text;
    bool negative = !s.empty() && s.front() == '-';
    if (negative || (!s.empty() && s.front() == '+')) s.remove_prefix(1);
    if (s.empty() || s.size() > 19) return Error{quoted(text) + " is not an integer"};
    uint64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return Error{quoted(text) + " is not an integer"};
        v = v * 10 + static_cast<uint64_t>(c - '0');
    }
    if (v > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) return Error{quoted(text) + " is too large"};
    auto value = negative ? -static_cast<int64_t>(v) : static_cast<int64_t>(v);
    if (value < min || value > max) {
        return Error{std::string(text) + " is out of range (" + std::to_string(min) + " to " + std::to_string(max) +
                     ")"};
    }
    return value;
}

Result<bool> parseBool(std::string_view text) {
    auto b = parseYamlBool(text);
    if (!b) return Error{quoted(text) + " is not a boolean (true or false)"};
    return *b;
}

Result<Duration> parseDurationIn(std::string_view text, Duration min, Duration max) {
    auto d = parseDuration(text);
    if (!d) return d.error();
    if (*d < min || *d > max) {
        return Error{quoted(text) + " is out of range (" + formatDuration(min) + " to " + formatDuration(max) + ")"};
    }
    return *d;
}

Result<uint64_t> parseSizeIn(std::string_view text, uint64_t min, uint64_t max) {
    auto s = parseSize(text);
    if (!s) return s.error();
    if (*s < min || *s > max) {
        return Error{quoted(text) + " is out of range (" + formatSize(min) + " to " + formatSize(max) + ")"};
    }
    return *s;
}

// Credentials sent in HTTP headers: printable ASCII without spaces, so no value can inject a
// header. The message never repeats the value.
Status checkTokenText(std::string_view text) {
    if (text.size() > 8192) return Error{"is longer than 8192 bytes"};
    for (char ch : text) {
        auto c = static_cast<unsigned char>(ch);
        if (c <= 0x20 || c >= 0x7F) return Error{"must be printable ASCII without spaces"};
    }
    return {};
}

Status checkPathText(std::string_view text) {
    if (text.find('\0') != std::string_view::npos) return Error{"contains a NUL byte"};
    if (text.size() > PATH_MAX) return Error{"is longer than PATH_MAX"};
    return {};
}

// ------------------------------------------------------------------ the field table

// Settings that only the environment gives (spec/config.md, "Environment").
struct EnvironmentField {
    std::string_view name;
    Apply apply;
    bool (*differs)(const Config&, const Config&);
    KeepFn keep = nullptr;
};

Shown str(const std::string& s) {
    return Shown{s, true};
}
Shown plain(std::string s) {
    return Shown{std::move(s), false};
}

// A relative name lives under logs/ beside config.yml (config.md); one that already starts with
// that folder ("logs/relaypro.log.txt", as an operator reads it) names the same folder, not
// logs/logs/ (issue 18).
std::string loggerPath(const Config& c, const std::string& fileName) {
    if (!fileName.empty() && fileName.front() == '/') return fileName;
    std::string_view name = fileName;
    while (name.starts_with("./")) name.remove_prefix(2);
    if (name.starts_with("logs/")) return resolvePath(c.folder, std::string(name));
    return resolvePath(resolvePath(c.folder, "logs"), std::string(name));
}

// clang-format off
constexpr std::array<Field, kFieldCount> kFields{{
    {"consoleAddress", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto a = parseConsoleAddress(v);
         if (!a) return a.error();
         c.consoleAddress = *a;
         return {};
     },
     [](const Config& c) { return str(c.consoleAddress.text()); }},
    {"registeredTo", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         if (!v.empty()) {
             auto a = parseConsoleAddress(v);
             if (!a) return a.error();
         }
         c.registeredTo = std::string(v);
         return {};
     },
     [](const Config& c) { return str(c.registeredTo); }},
    {"organizationId", Apply::NextRegistration, false,
     [](Config& c, std::string_view v) -> Status {
         auto i = parseInteger(v, 0, std::numeric_limits<int64_t>::max());
         if (!i) return i.error();
         c.organizationId = *i;
         return {};
     },
     [](const Config& c) { return plain(std::to_string(c.organizationId)); }},
    {"relayProId", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         if (!v.empty() && !isUuid(v)) return Error{quoted(v) + " is not a UUID (8-4-4-4-12 hexadecimal digits)"};
         c.relayProId = toLower(v);
         return {};
     },
     [](const Config& c) { return str(c.relayProId); }},
    {"relayId", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto i = parseInteger(v, 0, std::numeric_limits<int64_t>::max());
         if (!i) return i.error();
         c.relayId = *i;
         return {};
     },
     [](const Config& c) { return plain(std::to_string(c.relayId)); }},
    {"securityToken", Apply::Reload, true,
     [](Config& c, std::string_view v) -> Status {
         if (auto s = checkTokenText(v); !s) return s;
         c.securityToken = std::string(v);
         return {};
     },
     [](const Config& c) { return str(c.securityToken); }},
    {"consoleCACert", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         if (!v.empty()) {
             if (auto s = validateCertificatesPem(v); !s) return s;
         }
         c.consoleCACert = std::string(v);
         return {};
     },
     [](const Config& c) { return str(c.consoleCACert); }},
    {"proxyEnabled", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto b = parseBool(v);
         if (!b) return b.error();
         c.proxyEnabled = *b;
         return {};
     },
     [](const Config& c) { return plain(c.proxyEnabled ? "true" : "false"); }},
    {"debugLogging", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto b = parseBool(v);
         if (!b) return b.error();
         c.debugLogging = *b;
         return {};
     },
     [](const Config& c) { return plain(c.debugLogging ? "true" : "false"); }},
    {"deploymentToken", Apply::Reload, true,
     [](Config& c, std::string_view v) -> Status {
         if (auto s = checkTokenText(v); !s) return s;
         c.deploymentToken = std::string(v);
         return {};
     },
     [](const Config& c) { return str(c.deploymentToken); }},
    {"serverName", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         if (!isHostName(v) && !isIpLiteral(v)) return Error{quoted(v) + " is not a DNS name or IP address"};
         c.serverName = std::string(v);
         return {};
     },
     [](const Config& c) { return str(c.serverName); },
     [](Config& next, const Config& running) { next.serverName = running.serverName; }},
    {"privateFolder", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         if (v.empty()) return Error{"must not be empty"};
         if (auto s = checkPathText(v); !s) return s;
         c.privateFolder = resolvePath(c.folder, std::string(v));
         return {};
     },
     [](const Config& c) { return str(c.privateFolder); },
     [](Config& next, const Config& running) { next.privateFolder = running.privateFolder; }},
    {"passwordFile", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         if (auto s = checkPathText(v); !s) return s;
         c.passwordFile = resolvePath(c.folder, std::string(v));
         return {};
     },
     [](const Config& c) { return str(c.passwordFile); }},
    {"clientAuthToken.duration", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto d = parseDurationIn(v, 1min, 24h);
         if (!d) return d.error();
         c.tokenDuration = *d;
         return {};
     },
     [](const Config& c) { return plain(formatDuration(c.tokenDuration)); }},
    {"clientAuthToken.clockSkew", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto d = parseDurationIn(v, 0s, 1h);
         if (!d) return d.error();
         c.tokenClockSkew = *d;
         return {};
     },
     [](const Config& c) { return plain(formatDuration(c.tokenClockSkew)); }},
    {"httpsProxy.listen", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         auto hp = parseHostPort(v);
         if (!hp) return hp.error();
         c.httpsListen = *hp;
         return {};
     },
     [](const Config& c) { return str(c.httpsListen.text()); },
     [](Config& next, const Config& running) { next.httpsListen = running.httpsListen; }},
    {"httpsProxy.certFile", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         if (auto s = checkPathText(v); !s) return s;
         c.certFile = resolvePath(c.folder, std::string(v));
         return {};
     },
     [](const Config& c) { return str(c.certFile); },
     [](Config& next, const Config& running) { next.certFile = running.certFile; }},
    {"httpsProxy.keyFile", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         if (auto s = checkPathText(v); !s) return s;
         c.keyFile = resolvePath(c.folder, std::string(v));
         return {};
     },
     [](const Config& c) { return str(c.keyFile); },
     [](Config& next, const Config& running) { next.keyFile = running.keyFile; }},
    {"migration.consoleAddress", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         if (v.empty()) return {};
         auto a = parseConsoleAddress(v);
         if (!a) return a.error();
         if (!c.migration) c.migration.emplace();
         c.migration->consoleAddress = *a;
         return {};
     },
     [](const Config& c) { return str(c.migration ? c.migration->consoleAddress.text() : ""); }},
    {"migration.validUntilAt", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto t = parseRfc3339(v);
         if (!t) return t.error();
         if (!c.migration) c.migration.emplace();
         c.migration->validUntilAt = *t;
         c.migration->validUntilText = std::string(v);
         return {};
     },
     [](const Config& c) { return str(c.migration ? c.migration->validUntilText : ""); }},
    {"logger.fileName", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         if (v.empty() || v.back() == '/') return Error{"must name a file"};
         if (auto s = checkPathText(v); !s) return s;
         c.logger.fileName = std::string(v);
         c.logger.path = loggerPath(c, c.logger.fileName);
         return {};
     },
     [](const Config& c) { return str(c.logger.path); },
     [](Config& next, const Config& running) { next.logger.fileName = running.logger.fileName; next.logger.path = running.logger.path; }},
    {"logger.maxSize", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         auto s = parseSizeIn(v, 1, 1ULL << 40);
         if (!s) return s.error();
         c.logger.maxSize = *s;
         return {};
     },
     [](const Config& c) { return plain(formatSize(c.logger.maxSize)); },
     [](Config& next, const Config& running) { next.logger.maxSize = running.logger.maxSize; }},
    {"logger.maxAge", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         auto d = parseDurationIn(v, 0s, 24h * 365 * 100);
         if (!d) return d.error();
         c.logger.maxAge = *d;
         return {};
     },
     [](const Config& c) { return plain(formatDuration(c.logger.maxAge)); },
     [](Config& next, const Config& running) { next.logger.maxAge = running.logger.maxAge; }},
    {"logger.maxBackups", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         auto i = parseInteger(v, 0, 100000);
         if (!i) return i.error();
         c.logger.maxBackups = static_cast<uint32_t>(*i);
         return {};
     },
     [](const Config& c) { return plain(std::to_string(c.logger.maxBackups)); },
     [](Config& next, const Config& running) { next.logger.maxBackups = running.logger.maxBackups; }},
    {"logger.noCompress", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         auto b = parseBool(v);
         if (!b) return b.error();
         c.logger.noCompress = *b;
         return {};
     },
     [](const Config& c) { return plain(c.logger.noCompress ? "true" : "false"); },
     [](Config& next, const Config& running) { next.logger.noCompress = running.logger.noCompress; }},
    {"workers", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         if (v == "auto") {
             c.workers = 0;
             return {};
         }
         auto i = parseInteger(v, 1, 64);
         if (!i) return Error{i.error().message + "; use auto or 1 to 64"};
         c.workers = static_cast<uint32_t>(*i);
         return {};
     },
     [](const Config& c) { return plain(c.workers == 0 ? "auto" : std::to_string(c.workers)); },
     [](Config& next, const Config& running) { next.workers = running.workers; }},
    {"limits.maxConnections", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         if (v == "auto") {
             c.limits.maxConnections = 0;
             return {};
         }
         auto i = parseInteger(v, 1, 100000000);
         if (!i) return Error{i.error().message + "; use auto or an integer"};
         c.limits.maxConnections = static_cast<uint64_t>(*i);
         return {};
     },
     [](const Config& c) {
         return plain(c.limits.maxConnections == 0 ? "auto" : std::to_string(c.limits.maxConnections));
     }},
    {"limits.headerTimeout", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto d = parseDurationIn(v, 1ms, 1h);
         if (!d) return d.error();
         c.limits.headerTimeout = *d;
         return {};
     },
     [](const Config& c) { return plain(formatDuration(c.limits.headerTimeout)); }},
    {"limits.maxHeaderBytes", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto s = parseSizeIn(v, 1024, 1 << 20);
         if (!s) return s.error();
         c.limits.maxHeaderBytes = *s;
         return {};
     },
     [](const Config& c) { return plain(formatSize(c.limits.maxHeaderBytes)); }},
    {"limits.connectTimeout", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto d = parseDurationIn(v, 1ms, 10min);
         if (!d) return d.error();
         c.limits.connectTimeout = *d;
         return {};
     },
     [](const Config& c) { return plain(formatDuration(c.limits.connectTimeout)); }},
    {"limits.idleTimeout", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto d = parseDurationIn(v, 0s, 24h * 365);
         if (!d) return d.error();
         c.limits.idleTimeout = *d;
         return {};
     },
     [](const Config& c) { return plain(formatDuration(c.limits.idleTimeout)); }},
    {"limits.drainTimeout", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto d = parseDurationIn(v, 0s, 24h * 30);
         if (!d) return d.error();
         c.limits.drainTimeout = *d;
         return {};
     },
     [](const Config& c) { return plain(formatDuration(c.limits.drainTimeout)); }},
    {"limits.drainSpread", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto d = parseDurationIn(v, 0s, 24h);
         if (!d) return d.error();
         c.limits.drainSpread = *d;
         return {};
     },
     [](const Config& c) { return plain(formatDuration(c.limits.drainSpread)); }},
    {"limits.shutdownGrace", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto d = parseDurationIn(v, 0s, 24h);
         if (!d) return d.error();
         c.limits.shutdownGrace = *d;
         return {};
     },
     [](const Config& c) { return plain(formatDuration(c.limits.shutdownGrace)); }},
    {"limits.tokenRequestsPerMinute", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto i = parseInteger(v, 1, 1000000);
         if (!i) return i.error();
         c.limits.tokenRequestsPerMinute = static_cast<uint32_t>(*i);
         return {};
     },
     [](const Config& c) { return plain(std::to_string(c.limits.tokenRequestsPerMinute)); }},
    {"limits.maxHandshakes", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         if (v == "auto") {
             c.limits.maxHandshakes = kAutoHandshakes;
             return {};
         }
         auto i = parseInteger(v, 0, 1000000);
         if (!i) return Error{i.error().message + "; use auto or an integer"};
         c.limits.maxHandshakes = static_cast<uint32_t>(*i);
         return {};
     },
     [](const Config& c) {
         return plain(c.limits.maxHandshakes == kAutoHandshakes ? "auto" : std::to_string(c.limits.maxHandshakes));
     }},
    {"limits.listenBacklog", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         auto i = parseInteger(v, 1, 65535);
         if (!i) return i.error();
         c.limits.listenBacklog = static_cast<uint32_t>(*i);
         return {};
     },
     [](const Config& c) { return plain(std::to_string(c.limits.listenBacklog)); }},
    {"limits.sourcePorts", Apply::Reload, false,
     [](Config& c, std::string_view v) -> Status {
         if (v.empty()) {
             c.limits.sourcePortLow = c.limits.sourcePortHigh = 0;
             return {};
         }
         size_t dash = v.find('-');
         if (dash == std::string_view::npos) return Error{"expected low-high, e.g. 40000-65535, or \"\""};
         auto low = parseInteger(v.substr(0, dash), 1024, 65535);
         if (!low) return Error{"the low port: " + low.error().message};
         auto high = parseInteger(v.substr(dash + 1), 1024, 65535);
         if (!high) return Error{"the high port: " + high.error().message};
         if (*high < *low) return Error{"the high port is below the low one (" + std::string(v) + ")"};
         if (*high - *low < 1023) return Error{"a range of at least 1024 ports is needed (" + std::string(v) + ")"};
         c.limits.sourcePortLow = static_cast<uint16_t>(*low);
         c.limits.sourcePortHigh = static_cast<uint16_t>(*high);
         return {};
     },
     [](const Config& c) {
         return str(c.limits.sourcePortLow == 0 ? ""
                                                 : std::to_string(c.limits.sourcePortLow) + "-" +
                                                       std::to_string(c.limits.sourcePortHigh));
     }},
    {"metrics.listen", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         if (v.empty()) {
             c.metricsListen.reset();
             return {};
         }
         auto hp = parseHostPort(v);
         if (!hp) return hp.error();
         c.metricsListen = *hp;
         return {};
     },
     [](const Config& c) { return str(c.metricsListen ? c.metricsListen->text() : ""); },
     [](Config& next, const Config& running) { next.metricsListen = running.metricsListen; }},
    {"proxyProtocol.trustedSources", Apply::Reload, false, nullptr,
     [](const Config& c) {
         std::string out = "[";
         for (size_t i = 0; i < c.trustedSources.size(); ++i) {
             out += (i == 0 ? "" : ", ") + yamlDoubleQuoted(c.trustedSources[i].text());
         }
         return plain(out + "]");
     }},
}};
// clang-format on

const std::array<std::string_view, kFieldCount> kFieldNames = [] {
    std::array<std::string_view, kFieldCount> names{};
    for (size_t i = 0; i < kFields.size(); ++i) names[i] = kFields[i].name;
    return names;
}();

const Field* findField(std::string_view name) {
    for (const auto& f : kFields) {
        if (f.name == name) return &f;
    }
    return nullptr;
}

bool isSection(std::string_view name) {
    for (const auto& f : kFields) {
        if (f.name.size() > name.size() && f.name.starts_with(name) && f.name[name.size()] == '.') return true;
    }
    return false;
}

std::vector<std::string_view> namesAt(std::string_view section) {
    std::vector<std::string_view> out;
    for (const auto& f : kFields) {
        std::string_view n = f.name;
        if (!section.empty()) {
            if (!(n.size() > section.size() && n.starts_with(section) && n[section.size()] == '.')) continue;
            n.remove_prefix(section.size() + 1);
        }
        n = n.substr(0, n.find('.'));
        if (std::find(out.begin(), out.end(), n) == out.end()) out.push_back(n);
    }
    return out;
}

}  // namespace relaypro::config_table

namespace relaypro {

using namespace config_table;

// clang-format off
constexpr std::array<EnvironmentField, 7> kEnvironmentFields{{
    {"RELAYPRO_HTTP_LISTEN", Apply::Restart,
     [](const Config& a, const Config& b) { return a.httpListen != b.httpListen; },
     [](Config& next, const Config& running) { next.httpListen = running.httpListen; }},
    {"RELAYPRO_CA_BUNDLE_FILE", Apply::Restart,
     [](const Config& a, const Config& b) { return a.caBundleFile != b.caBundleFile; },
     [](Config& next, const Config& running) { next.caBundleFile = running.caBundleFile; }},
    {"RELAYPRO_HOSTS_FILE", Apply::Reload,
     [](const Config& a, const Config& b) { return a.hostsFile != b.hostsFile; }},
    {"RELAYPRO_RESOLV_CONF", Apply::Reload,
     [](const Config& a, const Config& b) { return a.resolvConfFile != b.resolvConfFile; }},
    {"https_proxy", Apply::Reload, [](const Config& a, const Config& b) { return a.proxy.https != b.proxy.https; }},
    {"http_proxy", Apply::Reload, [](const Config& a, const Config& b) { return a.proxy.http != b.proxy.http; }},
    {"no_proxy", Apply::Reload, [](const Config& a, const Config& b) { return !(a.proxy.noProxy == b.proxy.noProxy); }},
}};
// clang-format on

// A field is kept across a reload exactly when only a restart changes it: keepRestartFields()
// derives from the tables, and a field marked Restart without a way to keep it does not build
// (GCC's UndefinedBehaviorSanitizer makes a function pointer's test non-constant: that build
// checks it in the unit test only, through restartFieldsAreKept()).
template <typename Table>
constexpr bool keepMatchesApply(const Table& table) {
    return std::all_of(table.begin(), table.end(),
                       [](const auto& f) { return (f.apply == Apply::Restart) == (f.keep != nullptr); });
}
#ifndef RELAYPRO_SANITIZE_BUILD
static_assert(keepMatchesApply(kFields));
static_assert(keepMatchesApply(kEnvironmentFields));
#endif

bool restartFieldsAreKept() {
    return keepMatchesApply(kFields) && keepMatchesApply(kEnvironmentFields);
}

std::vector<FieldChange> diffConfigs(const Config& a, const Config& b) {
    std::vector<FieldChange> out;
    for (const auto& f : kFields) {
        if (f.show(a).text != f.show(b).text) out.push_back(FieldChange{std::string(f.name), f.apply});
    }
    for (const auto& f : kEnvironmentFields) {
        if (f.differs(a, b)) out.push_back(FieldChange{std::string(f.name), f.apply});
    }
    return out;
}

Config keepRestartFields(const Config& running, Config next) {
    for (const auto& f : kFields) {
        if (f.keep != nullptr) f.keep(next, running);
    }
    for (const auto& f : kEnvironmentFields) {
        if (f.keep != nullptr) f.keep(next, running);
    }
    return next;
}

std::span<const std::string_view> configFieldNames() {
    return kFieldNames;
}

}  // namespace relaypro
