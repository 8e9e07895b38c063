#include "common/config.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <limits>
#include <map>
#include <set>

#include "common/file_io.h"
#include "common/pem.h"
#include "common/text.h"
#include "common/yaml_doc.h"
#include "common/yaml_emit.h"

namespace relaypro {
namespace {

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

// How a field's effective value is shown: a string (quoted or a literal block), or plain text.
struct Shown {
    std::string text;
    bool isString = false;
};

using AssignFn = Status (*)(Config&, std::string_view);
using ShowFn = Shown (*)(const Config&);

struct Field {
    std::string_view name;
    Apply apply;
    bool secret;
    AssignFn assign;  // nullptr: not a scalar (handled by the loader itself)
    ShowFn show;
};

Shown str(const std::string& s) {
    return Shown{s, true};
}
Shown plain(std::string s) {
    return Shown{std::move(s), false};
}

std::string loggerPath(const Config& c, const std::string& fileName) {
    if (!fileName.empty() && fileName.front() == '/') return fileName;
    return resolvePath(resolvePath(c.folder, "logs"), fileName);
}

// clang-format off
const std::array<Field, 36> kFields{{
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
     [](const Config& c) { return str(c.serverName); }},
    {"privateFolder", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         if (v.empty()) return Error{"must not be empty"};
         if (auto s = checkPathText(v); !s) return s;
         c.privateFolder = resolvePath(c.folder, std::string(v));
         return {};
     },
     [](const Config& c) { return str(c.privateFolder); }},
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
     [](const Config& c) { return str(c.httpsListen.text()); }},
    {"httpsProxy.certFile", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         if (auto s = checkPathText(v); !s) return s;
         c.certFile = resolvePath(c.folder, std::string(v));
         return {};
     },
     [](const Config& c) { return str(c.certFile); }},
    {"httpsProxy.keyFile", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         if (auto s = checkPathText(v); !s) return s;
         c.keyFile = resolvePath(c.folder, std::string(v));
         return {};
     },
     [](const Config& c) { return str(c.keyFile); }},
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
     [](const Config& c) { return str(c.logger.path); }},
    {"logger.maxSize", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         auto s = parseSizeIn(v, 1, 1ULL << 40);
         if (!s) return s.error();
         c.logger.maxSize = *s;
         return {};
     },
     [](const Config& c) { return plain(formatSize(c.logger.maxSize)); }},
    {"logger.maxAge", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         auto d = parseDurationIn(v, 0s, 24h * 365 * 100);
         if (!d) return d.error();
         c.logger.maxAge = *d;
         return {};
     },
     [](const Config& c) { return plain(formatDuration(c.logger.maxAge)); }},
    {"logger.maxBackups", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         auto i = parseInteger(v, 0, 100000);
         if (!i) return i.error();
         c.logger.maxBackups = static_cast<uint32_t>(*i);
         return {};
     },
     [](const Config& c) { return plain(std::to_string(c.logger.maxBackups)); }},
    {"logger.noCompress", Apply::Restart, false,
     [](Config& c, std::string_view v) -> Status {
         auto b = parseBool(v);
         if (!b) return b.error();
         c.logger.noCompress = *b;
         return {};
     },
     [](const Config& c) { return plain(c.logger.noCompress ? "true" : "false"); }},
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
     [](const Config& c) { return plain(c.workers == 0 ? "auto" : std::to_string(c.workers)); }},
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
     [](const Config& c) { return str(c.metricsListen ? c.metricsListen->text() : ""); }},
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

const std::array<std::string_view, 36> kFieldNames = [] {
    std::array<std::string_view, 36> names{};
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

// Names one level below `section` ("" = top level): fields and section names.
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

// ------------------------------------------------------------------ the loader

class Loader {
public:
    Loader(const ConfigSource& source, const Environment& env, std::vector<std::string>& warnings)
        : src_(source), env_(env), warnings_(warnings) {}

    Result<Config> run() {
        cfg_.path = src_.path;
        cfg_.folder = absoluteFolder(src_.path);
        cfg_.privateFolder = resolvePath(cfg_.folder, "private");
        cfg_.logger.path = loggerPath(cfg_, cfg_.logger.fileName);
        cfg_.serverName = defaultServerName();
        cfg_.hostsFile = std::string(kDefaultHostsFile);
        cfg_.resolvConfFile = std::string(kDefaultResolvConfFile);

        auto doc = parseYaml(src_.text);
        if (!doc) return Error{src_.path + ":" + doc.error().message};
        if (doc->root) {
            if (!doc->root->isMapping() && !doc->root->isNull()) {
                return Error{at(doc->root->start) + "syntax: the file must be a mapping of field: value"};
            }
            if (doc->root->isMapping()) readMapping(*doc->root, "");
        }
        applyEnvironment();
        fillInstallationInputs();
        crossChecks();
        if (!errors_.empty()) {
            std::string all;
            for (const auto& e : errors_) all += (all.empty() ? "" : "\n") + e;
            return Error{all};
        }
        return std::move(cfg_);
    }

private:
    static std::string absoluteFolder(const std::string& path) {
        std::string dir = dirName(path);
        if (!dir.empty() && dir.front() == '/') return dir;
        char cwd[PATH_MAX];
        if (::getcwd(cwd, sizeof cwd) == nullptr) return dir;
        return dir == "." ? std::string(cwd) : resolvePath(cwd, dir);
    }

    std::string at(const YamlMark& m) const {
        return src_.path + ":" + std::to_string(m.line) + ":" + std::to_string(m.column) + ": ";
    }

    void fieldError(const YamlMark& m, std::string_view field, const std::string& message) {
        errors_.push_back(at(m) + std::string(field) + ": " + message);
    }

    void envError(std::string_view variable, const std::string& message) {
        errors_.push_back(env_.sourceOf(variable) + ": " + std::string(variable) + ": " + message);
    }

    void readMapping(const YamlNode& map, std::string_view section) {
        if (map.style == YamlStyle::Flow && section.empty()) {
            // Allowed for reading; the writer refuses to edit such a file and says so.
        }
        for (const auto& [key, value] : map.entries) {
            std::string name = section.empty() ? key.text : std::string(section) + "." + key.text;
            if (const Field* f = findField(name)) {
                readField(*f, key, value);
            } else if (isSection(name)) {
                if (value.isNull()) continue;
                if (!value.isMapping()) {
                    fieldError(key.start, name, "expected a mapping of its fields, not a single value");
                    continue;
                }
                readMapping(value, name);
            } else {
                auto candidates = namesAt(section);
                std::string nearest(nearestName(key.text, candidates));
                std::string prefix = section.empty() ? "" : std::string(section) + ".";
                warnings_.push_back(at(key.start) + "unknown field \"" + name + "\" — did you mean \"" + prefix +
                                    nearest + "\"?");
            }
        }
    }

    void readField(const Field& f, const YamlNode& key, const YamlNode& value) {
        marks_[std::string(f.name)] = key.start;
        if (value.isNull()) return;  // null = not set: the default stays
        // An installation template writes `consoleAddress: ""` for "not given yet".
        if (f.name == "consoleAddress" && value.isScalar() && value.text.empty()) return;
        if (f.assign == nullptr) {  // proxyProtocol.trustedSources: a list of CIDRs
            if (!value.isSequence()) {
                fieldError(key.start, f.name, "expected a list of CIDRs (e.g. [10.0.0.0/8])");
                return;
            }
            for (const auto& item : value.items) {
                if (!item.isScalar()) {
                    fieldError(item.start, f.name, "expected a CIDR, not a list or mapping");
                    continue;
                }
                auto c = parseCidr(item.text);
                if (!c) {
                    fieldError(item.start, f.name, c.error().message);
                    continue;
                }
                cfg_.trustedSources.push_back(*c);
            }
            present_.insert(std::string(f.name));
            return;
        }
        if (!value.isScalar()) {
            fieldError(key.start, f.name,
                       std::string("expected a single value, not a ") + (value.isSequence() ? "list" : "mapping"));
            return;
        }
        if (auto s = f.assign(cfg_, value.text); !s) {
            fieldError(key.start, f.name, f.secret ? "invalid value: " + s.error().message : s.error().message);
            failed_.insert(std::string(f.name));
            return;
        }
        if (!value.text.empty()) present_.insert(std::string(f.name));
    }

    void assignFromEnv(std::string_view variable, std::string_view field, std::string_view value) {
        const Field* f = findField(field);
        if (auto s = f->assign(cfg_, value); !s) envError(variable, s.error().message);
    }

    void applyEnvironment() {
        if (auto v = env_.get("RELAYPRO_HTTPS_LISTEN"); v && !v->empty()) {
            assignFromEnv("RELAYPRO_HTTPS_LISTEN", "httpsProxy.listen", *v);
        }
        if (auto v = env_.get("RELAYPRO_HTTP_LISTEN"); v && !v->empty()) {
            auto hp = parseHostPort(*v);
            if (hp)
                cfg_.httpListen = *hp;
            else
                envError("RELAYPRO_HTTP_LISTEN", hp.error().message);
        }
        if (auto v = env_.get("RELAYPRO_PASSWORD_FILE")) assignFromEnv("RELAYPRO_PASSWORD_FILE", "passwordFile", *v);
        if (auto v = env_.get("RELAYPRO_HOSTS_FILE"); v && !v->empty()) {
            if (auto s = checkPathText(*v); !s)
                envError("RELAYPRO_HOSTS_FILE", s.error().message);
            else
                cfg_.hostsFile = resolvePath(cfg_.folder, *v);
        }
        if (auto v = env_.get("RELAYPRO_RESOLV_CONF"); v && !v->empty()) {
            if (auto s = checkPathText(*v); !s)
                envError("RELAYPRO_RESOLV_CONF", s.error().message);
            else
                cfg_.resolvConfFile = resolvePath(cfg_.folder, *v);
        }
        cfg_.caBundleFile = resolvePath(cfg_.privateFolder, std::string(kCaBundleName));
        if (auto v = env_.get("RELAYPRO_CA_BUNDLE_FILE"); v && !v->empty()) {
            if (auto s = checkPathText(*v); !s)
                envError("RELAYPRO_CA_BUNDLE_FILE", s.error().message);
            else
                cfg_.caBundleFile = resolvePath(cfg_.folder, *v);
        }
        if (auto v = env_.get("RELAYPRO_LOGGER_CONF"); v && !v->empty()) applyLoggerConf(*v);
    }

    // RELAYPRO_LOGGER_CONF: "fileName=…,maxSize=…,maxAge=…,maxBackups=…,noCompress=…".
    void applyLoggerConf(std::string_view text) {
        static constexpr std::array<std::string_view, 5> kKeys{"fileName", "maxSize", "maxAge", "maxBackups",
                                                               "noCompress"};
        std::set<std::string, std::less<>> seen;
        size_t pos = 0;
        while (pos <= text.size()) {
            size_t comma = text.find(',', pos);
            if (comma == std::string_view::npos) comma = text.size();
            std::string_view item = trimSpace(text.substr(pos, comma - pos));
            pos = comma + 1;
            if (item.empty()) continue;
            size_t eq = item.find('=');
            if (eq == std::string_view::npos) {
                envError("RELAYPRO_LOGGER_CONF", quoted(item) + " is not key=value");
                continue;
            }
            std::string_view key = trimSpace(item.substr(0, eq));
            std::string_view value = trimSpace(item.substr(eq + 1));
            if (std::find(kKeys.begin(), kKeys.end(), key) == kKeys.end()) {
                envError("RELAYPRO_LOGGER_CONF", "unknown key " + quoted(key) + " — did you mean \"" +
                                                     std::string(nearestName(key, kKeys)) + "\"?");
                continue;
            }
            if (!seen.insert(std::string(key)).second) {
                envError("RELAYPRO_LOGGER_CONF", std::string(key) + " is given twice");
                continue;
            }
            const Field* f = findField("logger." + std::string(key));
            if (auto s = f->assign(cfg_, value); !s)
                envError("RELAYPRO_LOGGER_CONF", std::string(key) + ": " + s.error().message);
        }
    }

    // AIR_* installation inputs fill only what config.yml lacks.
    void fillInstallationInputs() {
        auto fill = [&](std::string_view variable, std::string_view field) {
            if (present_.contains(field)) return;
            auto v = env_.get(variable);
            if (!v || v->empty()) return;
            const Field* f = findField(field);
            if (auto s = f->assign(cfg_, *v); !s) {
                envError(variable, f->secret ? "invalid value: " + s.error().message : s.error().message);
                failed_.insert(std::string(field));
                return;
            }
            present_.insert(std::string(field));
        };
        fill("AIR_CONSOLE_ADDRESS", "consoleAddress");
        fill("AIR_ORGANIZATION_ID", "organizationId");
        fill("AIR_DEPLOYMENT_TOKEN", "deploymentToken");
        if (!present_.contains("consoleCACert")) {
            if (auto v = env_.get("AIR_CONSOLE_CA_CERT"); v && !v->empty()) {
                auto pem = certificatesFromInput(*v, cfg_.folder);
                if (!pem) {
                    envError("AIR_CONSOLE_CA_CERT", pem.error().describe());
                    return;
                }
                cfg_.consoleCACert = std::move(*pem);
                present_.insert("consoleCACert");
            }
        }
    }

    YamlMark markOf(std::string_view field) const {
        auto it = marks_.find(std::string(field));
        return it == marks_.end() ? YamlMark{} : it->second;
    }

    void crossChecks() {
        if (!present_.contains("consoleAddress") && !failed_.contains("consoleAddress")) {
            fieldError(markOf("consoleAddress"), "consoleAddress",
                       "is required (set it in config.yml, or AIR_CONSOLE_ADDRESS at installation)");
        }
        if (!present_.contains("organizationId") && !failed_.contains("organizationId")) {
            fieldError(markOf("organizationId"), "organizationId",
                       "is required (set it in config.yml, or AIR_ORGANIZATION_ID at installation)");
        }
        bool hasAddress = present_.contains("migration.consoleAddress");
        bool hasUntil = present_.contains("migration.validUntilAt");
        if (hasAddress && !hasUntil && !failed_.contains("migration.validUntilAt")) {
            fieldError(markOf("migration.consoleAddress"), "migration.consoleAddress",
                       "needs migration.validUntilAt (the end of the migration window)");
        }
        if (!hasAddress && hasUntil) {
            warnings_.push_back(at(markOf("migration.validUntilAt")) +
                                "migration.validUntilAt: ignored without migration.consoleAddress");
            cfg_.migration.reset();
        }
        if (cfg_.certFile.empty() != cfg_.keyFile.empty()) {
            std::string_view missing = cfg_.certFile.empty() ? "httpsProxy.certFile" : "httpsProxy.keyFile";
            std::string_view given = cfg_.certFile.empty() ? "httpsProxy.keyFile" : "httpsProxy.certFile";
            fieldError(markOf(given), given,
                       std::string("needs ") + std::string(missing) + " too (set both or neither)");
        } else if (!cfg_.certFile.empty()) {
            if (auto s = validateCertificateAndKeyFiles(cfg_.certFile, cfg_.keyFile); !s) {
                fieldError(markOf("httpsProxy.certFile"), "httpsProxy.certFile", s.error().message);
            }
        }
        std::string sock = cfg_.controlSocketPath();
        if (sock.size() > kMaxUnixSocketPath) {
            fieldError(markOf("privateFolder"), "privateFolder",
                       "the control socket path " + quoted(sock, 200) + " is " + std::to_string(sock.size()) +
                           " bytes; a Unix socket path holds at most " + std::to_string(kMaxUnixSocketPath));
        }
        if (cfg_.proxyEnabled) {
            auto p = proxySettingsFrom(env_);
            if (!p) {
                errors_.push_back("environment: " + p.error().message);
            } else {
                cfg_.proxy = std::move(*p);
                if (!cfg_.proxy.https) {
                    warnings_.push_back(
                        at(markOf("proxyEnabled")) +
                        "proxyEnabled: true but neither https_proxy nor HTTPS_PROXY is set; connections go direct");
                }
            }
        }
    }

    const ConfigSource& src_;
    const Environment& env_;
    Config cfg_;
    std::vector<std::string> errors_;
    std::vector<std::string>& warnings_;
    std::set<std::string, std::less<>> present_;  // fields config.yml (or an AIR_* input) set to a value
    std::set<std::string, std::less<>> failed_;   // fields whose value was rejected (already reported)
    std::map<std::string, YamlMark> marks_;       // where each field's key is
};

// ------------------------------------------------------------------ rendering

void appendValue(std::string& out, const Shown& v, size_t indent) {
    if (!v.isString) {
        out += v.text;
        return;
    }
    if (v.text.find('\n') != std::string::npos) {
        if (auto block = yamlLiteralBlock(v.text, indent + 2)) {
            out += *block;
            if (out.back() != '\n') return;
            out.pop_back();  // the caller ends the line
            return;
        }
    }
    out += yamlDoubleQuoted(v.text);
}

}  // namespace

std::string Config::controlSocketPath() const {
    return resolvePath(privateFolder, std::string(kControlSocketName));
}

std::span<const std::string_view> configFieldNames() {
    return kFieldNames;
}

std::string defaultServerName() {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) != 0 || !isHostName(host)) return "localhost";
    return host;
}

Result<Config> parseConfig(const ConfigSource& source, const Environment& env, std::vector<std::string>& warnings) {
    Loader loader(source, env, warnings);
    return loader.run();
}

Result<Config> loadConfig(const std::string& path, const Environment& env, std::vector<std::string>& warnings) {
    auto text = readFile(path, kMaxYamlBytes);
    if (!text) return Error{text.error().describe()};
    return parseConfig(ConfigSource{path, std::move(*text)}, env, warnings);
}

Result<std::pair<std::string, std::string>> readConfigTexts(const std::string& path, const std::string& envFile) {
    auto envText = readFile(envFile, kMaxEnvFileBytes);
    if (!envText && envText.error().sysErrno != ENOENT) return Error{"environment file: " + envText.error().describe()};
    auto text = readFile(path, kMaxYamlBytes);
    if (!text) return Error{text.error().describe()};
    return std::make_pair(std::move(*text), envText ? std::move(*envText) : std::string());
}

Result<ConfigSnapshot> parseConfigSnapshot(const std::string& path, const std::string& envFile, std::string configText,
                                           std::string envFileText, Environment base,
                                           std::vector<std::string>& warnings) {
    if (auto s = base.applyFileText(envFileText, envFile, warnings); !s) return s.error();
    auto config = parseConfig(ConfigSource{path, configText}, base, warnings);
    if (!config) return config.error();
    return ConfigSnapshot{std::move(base), std::move(*config), std::move(configText), std::move(envFileText)};
}

Result<ConfigSnapshot> loadConfigSnapshot(const std::string& path, const std::string& envFile, Environment base,
                                          std::vector<std::string>& warnings) {
    auto texts = readConfigTexts(path, envFile);
    if (!texts) return texts.error();
    return parseConfigSnapshot(path, envFile, std::move(texts->first), std::move(texts->second), std::move(base),
                               warnings);
}

std::vector<FieldChange> diffConfigs(const Config& a, const Config& b) {
    std::vector<FieldChange> out;
    for (const auto& f : kFields) {
        if (f.show(a).text != f.show(b).text) out.push_back(FieldChange{std::string(f.name), f.apply});
    }
    if (a.httpListen != b.httpListen) out.push_back({"RELAYPRO_HTTP_LISTEN", Apply::Restart});
    if (a.caBundleFile != b.caBundleFile) out.push_back({"RELAYPRO_CA_BUNDLE_FILE", Apply::Restart});
    if (a.hostsFile != b.hostsFile) out.push_back({"RELAYPRO_HOSTS_FILE", Apply::Reload});
    if (a.resolvConfFile != b.resolvConfFile) out.push_back({"RELAYPRO_RESOLV_CONF", Apply::Reload});
    if (a.proxy.https != b.proxy.https) out.push_back({"https_proxy", Apply::Reload});
    if (a.proxy.http != b.proxy.http) out.push_back({"http_proxy", Apply::Reload});
    if (!(a.proxy.noProxy == b.proxy.noProxy)) out.push_back({"no_proxy", Apply::Reload});
    return out;
}

std::string renderEffectiveConfig(const Config& c) {
    std::string out = "# Effective configuration of " + c.path + " (secrets redacted)\n";
    std::string openSection;
    for (const auto& f : kFields) {
        std::string_view name = f.name;
        if (name.starts_with("migration.") && !c.migration) {
            if (name == "migration.consoleAddress") out += "# migration: none\n";
            continue;
        }
        size_t dot = name.find('.');
        size_t indent = 0;
        if (dot != std::string_view::npos) {
            std::string section(name.substr(0, dot));
            if (section != openSection) {
                out += section + ":\n";
                openSection = section;
            }
            name.remove_prefix(dot + 1);
            indent = 2;
        } else {
            openSection.clear();
        }
        Shown v = f.show(c);
        if (f.secret && !v.text.empty()) v = Shown{"<redacted>", true};
        out += std::string(indent, ' ') + std::string(name) + ": ";
        appendValue(out, v, indent);
        out += "\n";
    }
    // Settings that only the environment gives, as comments (one line each: values are quoted).
    out += "# From the environment:\n";
    out += "#   RELAYPRO_HTTP_LISTEN: " + (c.httpListen ? yamlDoubleQuoted(c.httpListen->text()) : "off") + "\n";
    out += "#   RELAYPRO_CA_BUNDLE_FILE: " + yamlDoubleQuoted(c.caBundleFile) + "\n";
    out += "#   RELAYPRO_HOSTS_FILE: " + yamlDoubleQuoted(c.hostsFile) + "\n";
    out += "#   RELAYPRO_RESOLV_CONF: " + yamlDoubleQuoted(c.resolvConfFile) + "\n";
    if (c.proxyEnabled) {
        out += "#   https_proxy: " + (c.proxy.https ? yamlDoubleQuoted(c.proxy.https->redacted()) : "none") + "\n";
        out += "#   http_proxy: " + (c.proxy.http ? yamlDoubleQuoted(c.proxy.http->redacted()) : "none") + "\n";
        out += "#   no_proxy: " + yamlDoubleQuoted(c.proxy.noProxy.text()) + "\n";
    }
    return out;
}

}  // namespace relaypro
