#include "common/config.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <limits>
#include <map>
#include <set>

#include "common/config_fields.h"
#include "common/file_io.h"
#include "common/pem.h"
#include "common/text.h"
#include "common/yaml_doc.h"
#include "common/yaml_emit.h"

namespace relaypro {
namespace {

using namespace std::chrono_literals;
using namespace config_table;

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
