#include "supervisor/install_config.h"

#include <sys/stat.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/config.h"
#include "common/config_values.h"
#include "common/config_writer.h"
#include "common/file_io.h"
#include "common/pem.h"
#include "common/yaml_doc.h"
#include "relaypro_config_template.h"
#include "supervisor/cli.h"

namespace relaypro {
namespace {

// A top-level key that config.yml does not set to a value (absent, null or "").
bool lacks(const YamlNode& root, std::string_view key) {
    const YamlNode* v = root.find(key);
    return v == nullptr || v->isNull() || (v->isScalar() && v->text.empty());
}

// config.yml exists as a regular file afterwards (created from the template if it did not
// exist); the exit code otherwise.
int ensureConfigFile(const std::string& path) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) {
        if (errno != ENOENT) {
            std::fprintf(stderr, "relaypro: %s: %s\n", path.c_str(), std::strerror(errno));
            return kExitFailure;
        }
        AtomicWriteOptions options;
        options.mode = 0600;
        if (auto s = writeFileAtomic(path, kConfigTemplate, options); !s) {
            std::fprintf(stderr, "relaypro: cannot create %s: %s\n", path.c_str(), s.error().describe().c_str());
            return kExitFailure;
        }
        std::printf("created %s from the template\n", path.c_str());
    } else if (!S_ISREG(st.st_mode)) {
        std::fprintf(stderr, "relaypro: %s is not a regular file (a symbolic link?); refusing to write it\n",
                     path.c_str());
        return kExitFailure;
    }
    return kExitOk;
}

// The AIR_* inputs config.yml lacks, as updates of it; `written` names them. The exit code of
// an input that cannot be used, or kExitOk.
int inputUpdates(const YamlNode& root, const std::string& path, const Environment& env, const InstallInputs& inputs,
                 std::vector<ConfigUpdate>& updates, std::string& written) {
    auto input = [&](std::string_view variable) {
        auto v = env.get(variable);
        return v && !v->empty() ? v : std::nullopt;
    };
    auto note = [&](const char* field) { written += written.empty() ? field : std::string(", ") + field; };
    if (auto v = input("AIR_CONSOLE_ADDRESS"); v && lacks(root, "consoleAddress")) {
        if (auto a = parseConsoleAddress(*v); !a) {
            std::fprintf(stderr, "relaypro: AIR_CONSOLE_ADDRESS: %s\n", a.error().message.c_str());
            return kExitConfig;
        }
        updates.push_back(ConfigUpdate::string({"consoleAddress"}, *v));
        note("consoleAddress");
    }
    if (auto v = input("AIR_ORGANIZATION_ID"); v && lacks(root, "organizationId")) {
        char* end = nullptr;
        errno = 0;
        long long id = std::strtoll(v->c_str(), &end, 10);
        if (*end != '\0' || errno != 0 || id < 0 || !std::isdigit(static_cast<unsigned char>((*v)[0]))) {
            std::fprintf(stderr, "relaypro: AIR_ORGANIZATION_ID: \"%s\" is not an integer >= 0\n", v->c_str());
            return kExitConfig;
        }
        updates.push_back(ConfigUpdate::integer({"organizationId"}, id));
        note("organizationId");
    }
    // An existing registration is kept: a relay with a securityToken needs no deployment token.
    if (auto v = input("AIR_DEPLOYMENT_TOKEN"); v && lacks(root, "deploymentToken") && lacks(root, "securityToken")) {
        updates.push_back(ConfigUpdate::string({"deploymentToken"}, *v));
        note("deploymentToken");
    }
    if (auto v = input("AIR_CONSOLE_CA_CERT"); v && lacks(root, "consoleCACert")) {
        auto pem = inputs.consoleCaFromRoot && *v == inputs.consoleCaInput ? *inputs.consoleCaFromRoot
                                                                           : certificatesFromInput(*v, dirName(path));
        if (!pem) {
            std::fprintf(stderr, "relaypro: AIR_CONSOLE_CA_CERT: %s\n", pem.error().describe().c_str());
            return kExitConfig;
        }
        updates.push_back(ConfigUpdate::string({"consoleCACert"}, *pem));
        note("consoleCACert");
    }
    return kExitOk;
}

// Ready to start? As the service will read it (the AIR_* inputs are in the file now).
int reportReadiness(const std::string& path, const Environment& env, std::vector<std::string>& warnings) {
    auto config = loadConfig(path, env, warnings);
    for (const auto& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    if (!config) {
        std::fprintf(stderr, "%s\n", config.error().message.c_str());
        std::printf(
            "not ready: %s is not complete; set consoleAddress, organizationId and deploymentToken, "
            "then start the service\n",
            path.c_str());
        return kExitConfig;
    }
    if (config->deploymentToken.empty() && config->securityToken.empty()) {
        std::printf("not ready: %s has no deploymentToken (and no registration); set it, then start the service\n",
                    path.c_str());
        return kExitConfig;
    }
    std::printf("ready: %s\n", path.c_str());
    return kExitOk;
}

}  // namespace

// Written as the service user through RelayPro's own atomic, comment-preserving writer, so the
// package scripts never write into the install folder as root.
int installConfig(const std::string& path, const Environment& env, const InstallInputs& inputs,
                  std::vector<std::string>& warnings) {
    if (int code = ensureConfigFile(path); code != kExitOk) return code;
    auto text = readFile(path, kMaxYamlBytes);
    if (!text) {
        std::fprintf(stderr, "relaypro: %s\n", text.error().describe().c_str());
        return kExitFailure;
    }
    auto doc = parseYaml(*text);
    if (!doc) {
        std::fprintf(stderr, "%s:%s\n", path.c_str(), doc.error().message.c_str());
        return kExitConfig;
    }
    YamlNode empty;
    empty.kind = YamlNode::Kind::Mapping;
    const YamlNode& root = doc->root ? *doc->root : empty;
    if (!root.isMapping()) {
        std::fprintf(stderr, "%s: the file is not a mapping of keys to values\n", path.c_str());
        return kExitConfig;
    }
    std::vector<ConfigUpdate> updates;
    std::string written;
    if (int code = inputUpdates(root, path, env, inputs, updates, written); code != kExitOk) return code;
    if (!updates.empty()) {
        if (auto s = writeConfigUpdates(path, updates, env); !s) {
            std::fprintf(stderr, "relaypro: %s\n", s.error().describe().c_str());
            return kExitFailure;
        }
        std::printf("wrote %s into %s\n", written.c_str(), path.c_str());
    }
    return reportReadiness(path, env, warnings);
}

}  // namespace relaypro
