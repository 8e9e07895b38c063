#include "supervisor/cli.h"

#include <jansson.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <iostream>
#include <optional>

#include "common/config.h"
#include "common/config_values.h"
#include "common/config_writer.h"
#include "common/environment.h"
#include "common/file_io.h"
#include "common/pem.h"
#include "common/test_hooks.h"
#include "common/text.h"
#include "common/yaml_doc.h"
#include "supervisor/build_info.h"
#include "supervisor/ca_bundle.h"
#include "supervisor/control_socket.h"
#include "supervisor/handover.h"
#include "supervisor/install_config.h"
#include "supervisor/privileges.h"
#include "supervisor/run.h"
#include "supervisor/status_tunnels.h"
#include "supervisor/version.h"

namespace relaypro {
namespace {

constexpr const char* kUsage =
    "Usage: relaypro <command> [options]\n"
    "\n"
    "RelayPro relays XDR Forensics Responders to their console over authenticated tunnels.\n"
    "\n"
    "Commands:\n"
    "  run          [--config FILE] [--user NAME]    the service: supervisor + workers, in the foreground\n"
    "  check-config [--config FILE]                  validate; print the effective config (secrets redacted) as YAML\n"
    "  status       [--config FILE] [--json]         ask the running service over its control socket\n"
    "               [--tunnels [--sort age|bytes] [--limit N]]  the open tunnels\n"
    "  upgrade      [--config FILE] [--timeout SEC]  zero-downtime switch of the running service to the installed "
    "binary\n"
    "  ca init      [--config FILE]                  create the CA bundle if it does not exist; print its fingerprint\n"
    "  ca show      [--config FILE]                  print subject, validity and SHA-256 fingerprint of the CA "
    "certificate\n"
    "  version      [--verbose]                      print the version; --verbose: every bundled library's too\n"
    "  help | --help | -h                            this text; every command also takes --help\n"
    "\n"
    "Used by the package scripts:\n"
    "  install-config [--config FILE]                config.yml from the AIR_* inputs, or a template\n"
    "\n"
    "--config defaults to $RELAYPRO_CONFIG, else /opt/binalyze/air/relaypro/config.yml.\n"
    "Exit codes: 0 success, 1 runtime failure, 2 usage error, 78 configuration error.\n";

struct CommandSpec {
    const char* name;
    const char* usage;
    bool takesUser, takesJson, takesTimeout;
};

constexpr CommandSpec kCommands[] = {
    {"run", "relaypro run [--config FILE] [--user NAME]\n  Runs the service in the foreground (never daemonizes).\n",
     true, false, false},
    {"check-config",
     "relaypro check-config [--config FILE]\n  Validates the configuration and the environment file; prints the "
     "effective\n  configuration as YAML with secrets redacted. Exit 0 when valid, 78 when not.\n",
     false, false, false},
    {"status",
     "relaypro status [--config FILE] [--json] [--tunnels [--sort age|bytes] [--limit N]]\n  Asks the running service "
     "over its control socket. --tunnels lists the open tunnels\n  (Responder, source, target port, worker, "
     "generation, age, bytes each way);\n  --sort age: oldest first, --sort bytes: most bytes first; --limit N: "
     "the first N.\n",
     false, true, false},
    {"upgrade",
     "relaypro upgrade [--config FILE] [--timeout SEC]\n  Switches the running service to the installed binary without "
     "downtime.\n",
     false, false, true},
    {"ca init",
     "relaypro ca init [--config FILE]\n  Creates the CA bundle if it does not exist; prints its fingerprint.\n", false,
     false, false},
    {"ca show",
     "relaypro ca show [--config FILE]\n  Prints subject, validity and SHA-256 fingerprint of the CA certificate.\n",
     false, false, false},
    {"version",
     "relaypro version [--verbose]\n  Prints \"relaypro <version> (<git describe>)\". With --verbose, then one line "
     "per "
     "library\n  inside the binary: its version as it reports it, and where it comes from (in the\n  packages: "
     "the Debian source package it was built from), and the C library it runs on.\n",
     false, false, false},
    {"install-config",
     "relaypro install-config [--config FILE]\n  What the package scripts run at installation: as the service user, "
     "creates config.yml\n  from a commented template when it does not exist, and fills consoleAddress,\n  "
     "organizationId, deploymentToken and consoleCACert from AIR_CONSOLE_ADDRESS,\n  AIR_ORGANIZATION_ID, "
     "AIR_DEPLOYMENT_TOKEN and AIR_CONSOLE_CA_CERT where config.yml\n  lacks them (an existing registration is "
     "kept). Exit 0 when config.yml is\n  ready to start the service, 78 when it is not (the reason and the next "
     "step\n  are printed), 1 when it cannot be written.\n",
     false, false, false},
};

const CommandSpec* findCommand(const std::string& name) {
    for (const auto& c : kCommands) {
        if (name == c.name) return &c;
    }
    return nullptr;
}

// This process's own arguments (an upgrade re-executes with them).
std::vector<std::string>& processArguments() {
    static std::vector<std::string> args;
    return args;
}

std::string envFilePath() {
    const char* path = std::getenv("RELAYPRO_ENV_FILE");
    return path != nullptr && *path != '\0' ? path : std::string(kDefaultEnvFile);
}

// The environment as RelayPro sees it: the process environment overlaid by the environment file.
Result<Environment> loadEnvironment(std::vector<std::string>& warnings) {
    Environment env = Environment::fromProcess();
    if (auto s = env.loadFile(envFilePath(), warnings); !s) return s.error();
    return env;
}

// The start of every sub-command but run (cli.md): the environment, then the switch to the
// service user. The environment file comes first because it may name the account
// (RELAYPRO_USER); it is root's own (/etc/environment.d), not under the install folder.
// 0 with `env` filled, or the exit code (reason printed).
int environmentAsServiceUser(std::optional<Environment>& env, std::vector<std::string>& warnings) {
    auto loaded = loadEnvironment(warnings);
    if (!loaded) {
        std::fprintf(stderr, "relaypro: %s\n", loaded.error().message.c_str());
        return kExitConfig;
    }
    if (auto s = switchToServiceUserIfPresent(*loaded); !s) {
        std::fprintf(stderr, "relaypro: %s\n", s.error().describe().c_str());
        return kExitFailure;
    }
    env = std::move(*loaded);
    return kExitOk;
}

// ... then config.yml; warnings on stderr when `showWarnings`. 0 with `config` filled, or the
// exit code (reason printed).
int loadAsServiceUser(const CommandLine& cmd, std::optional<Config>& config, bool showWarnings = true,
                      std::vector<std::string>* shown = nullptr) {
    std::optional<Environment> env;
    std::vector<std::string> local;
    std::vector<std::string>& warnings = shown != nullptr ? *shown : local;
    if (int code = environmentAsServiceUser(env, warnings); code != kExitOk) return code;
    auto loaded = loadConfig(configPathFor(cmd), *env, warnings);
    if (showWarnings) {
        for (const auto& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    }
    if (!loaded) {
        std::fprintf(stderr, "%s\n", loaded.error().message.c_str());
        return kExitConfig;
    }
    config = std::move(*loaded);
    return kExitOk;
}

// status and upgrade: the running service answers over its control socket.
int talkToService(const CommandLine& cmd) {
    std::optional<Config> config;
    bool upgrade = cmd.command == "upgrade";
    if (int code = loadAsServiceUser(cmd, config, false); code != kExitOk) {
        // cli.md and lifecycle.md (Upgrade, step 1): an upgrade that cannot start failed, and the
        // running service serves on: exit 1, the reason printed above, whatever the reason.
        if (upgrade) {
            std::fprintf(stderr,
                         "relaypro: upgrade failed: the configuration cannot be used; the running service "
                         "keeps serving\n");
            return kExitFailure;
        }
        return code;
    }
    if (cmd.tunnels) {
        TunnelOptions options;
        options.json = cmd.json;
        options.limit = cmd.limit;
        if (cmd.sort) options.sort = *cmd.sort == "age" ? TunnelSort::Age : TunnelSort::Bytes;
        return listTunnels(config->controlSocketPath(), options, stdout, stderr);
    }
    unsigned timeout = cmd.timeoutSeconds.value_or(60);
    std::string request = upgrade ? "{\"command\":\"upgrade\",\"timeoutSeconds\":" + std::to_string(timeout) + "}"
                                  : "{\"command\":\"status\"}";
    auto answer = controlRequest(config->controlSocketPath(), request, upgrade ? static_cast<int>(timeout) + 30 : 10);
    if (!answer) {
        std::fprintf(stderr, "relaypro: %s%s\n", upgrade ? "upgrade failed: " : "", answer.error().describe().c_str());
        return kExitFailure;
    }
    json_error_t err;
    json_t* j = json_loads(answer->c_str(), 0, &err);
    if (j == nullptr) {
        std::fprintf(stderr, "relaypro: the service sent a malformed answer\n");
        return kExitFailure;
    }
    int code = kExitOk;
    if (const char* e = json_string_value(json_object_get(j, "error"))) {
        std::fprintf(stderr, "relaypro: %s\n", e);
        code = kExitFailure;
    } else if (upgrade) {
        std::printf("upgraded: generation %lld serving\n",
                    static_cast<long long>(json_integer_value(json_object_get(j, "generation"))));
    } else if (cmd.json) {
        std::printf("%s\n", answer->c_str());
    } else {
        json_t* reg = json_object_get(j, "registration");
        std::printf("RelayPro %s, pid %lld, generation %lld, up %llds\n",
                    json_string_value(json_object_get(j, "version")),
                    static_cast<long long>(json_integer_value(json_object_get(j, "pid"))),
                    static_cast<long long>(json_integer_value(json_object_get(j, "generation"))),
                    static_cast<long long>(json_integer_value(json_object_get(j, "uptimeSeconds"))));
        const char* state = json_string_value(json_object_get(reg, "state"));
        const char* progress = json_string_value(json_object_get(reg, "progress"));
        bool finer = progress != nullptr && state != nullptr && std::strcmp(progress, state) != 0;
        std::printf("registration: %s%s%s%s\n", state != nullptr ? state : "?", finer ? " (" : "",
                    finer ? progress : "", finer ? ")" : "");
        size_t i = 0;
        json_t* v = nullptr;
        json_array_foreach(json_object_get(j, "listeners"), i, v) {
            std::printf("listener %s %s\n", json_string_value(json_object_get(v, "kind")),
                        json_string_value(json_object_get(v, "address")));
        }
        json_array_foreach(json_object_get(j, "workers"), i, v) {
            std::printf("worker %lld generation %lld %s: %lld tunnels, %lld connections\n",
                        static_cast<long long>(json_integer_value(json_object_get(v, "pid"))),
                        static_cast<long long>(json_integer_value(json_object_get(v, "generation"))),
                        json_string_value(json_object_get(v, "state")),
                        static_cast<long long>(json_integer_value(json_object_get(v, "tunnels"))),
                        static_cast<long long>(json_integer_value(json_object_get(v, "connections"))));
        }
    }
    json_decref(j);
    return code;
}

int run(const CommandLine& cmd) {
    ServiceOptions options;
    options.configPath = configPathFor(cmd);
    options.envFile = envFilePath();
    options.argv = processArguments();
    // The image an upgrade re-executed: it takes over the configuration the previous image checked
    // and ran with (in the hand-over), and only then reads the files. A file that became invalid
    // meanwhile must not end the service here (issue 16).
    if (std::getenv(kHandoverEnv) != nullptr) return runService(std::move(options), Environment::fromProcess(), {});
    std::vector<std::string> warnings;
    // The texts are kept: they are the snapshot an upgrade hands over.
    auto texts = readConfigTexts(options.configPath, options.envFile);
    Environment env = Environment::fromProcess();
    // The environment file's own errors first, as "relaypro: …" (its warnings come below).
    Environment probe = env;
    std::vector<std::string> later;
    Status envRead = texts ? probe.applyFileText(texts->second, options.envFile, later) : Status{};
    if (!texts || !envRead) {
        const std::string& m = !texts ? texts.error().message : envRead.error().message;
        std::fprintf(stderr, m.starts_with("environment file") || texts ? "relaypro: %s\n" : "%s\n", m.c_str());
        return kExitConfig;
    }
    // Started as root: the service account (--user, RELAYPRO_USER from the environment file or
    // the environment, air-relaypro) must exist, unless root is asked for by name.
    std::optional<Account> account;
    if (::geteuid() == 0) {
        std::string name = cmd.user.value_or(serviceUserName(probe));
        if (name != "root") {
            account = lookUpAccount(name);
            if (!account) {
                std::fprintf(stderr,
                             "relaypro: the service account \"%s\" does not exist; create it (useradd --system %s) "
                             "or run with --user root\n",
                             name.c_str(), name.c_str());
                return kExitConfig;
            }
        }
    }
    auto loaded = parseConfigSnapshot(options.configPath, options.envFile, std::move(texts->first),
                                      std::move(texts->second), std::move(env), warnings);
    for (const auto& w : warnings) std::fprintf(stderr, "warning: %s\n", w.c_str());
    if (!loaded) {
        std::fprintf(stderr, "%s\n", loaded.error().message.c_str());
        return kExitConfig;
    }
    if (::geteuid() == 0 && !account) {
        warnings.push_back("running as root (--user root): the service keeps every privilege");
    }
    options.startWarnings = std::move(warnings);
    options.account = std::move(account);
    options.configText = std::move(loaded->configText);
    options.envFileText = std::move(loaded->envFileText);
    return runService(std::move(options), std::move(loaded->env), std::move(loaded->config));
}

int checkConfig(const CommandLine& cmd) {
    std::optional<Config> config;
    std::vector<std::string> warnings;
    if (int code = loadAsServiceUser(cmd, config, true, &warnings); code != kExitOk) return code;
    // A CA bundle that exists must be usable (a missing one is created at start). An upgrade
    // runs this check with the new binary before it switches.
    if (::access(config->caBundleFile.c_str(), F_OK) == 0) {
        auto bundle = CaBundle::load(config->caBundleFile, std::chrono::system_clock::now());
        if (!bundle) {
            std::fprintf(stderr, "relaypro: %s\n", bundle.error().message.c_str());
            return kExitConfig;
        }
    }
    std::fputs(renderEffectiveConfig(*config).c_str(), stdout);
    // The warnings came first; a long configuration scrolls them away on a terminal, so they are
    // summarised after it too, under a heading (issue 18).
    if (!warnings.empty()) {
        std::fflush(stdout);
        std::fprintf(stderr, "\nwarnings (%zu):\n", warnings.size());
        for (const auto& w : warnings) std::fprintf(stderr, "  %s\n", w.c_str());
    }
    if (const char* upgrade = std::getenv(kUpgradeCheckEnv); upgrade != nullptr && std::string_view(upgrade) == "1") {
        // The running supervisor asks which hand-over this build can take over from (handover.h).
        unsigned format = testHooks().handoverFormat.value_or(kHandoverFormat);  // tests stand in for an older build
        std::fprintf(stderr, "hand-over format: %u\n", format);
    }
    return kExitOk;
}

void printCaBundle(const CaBundle& ca) {
    std::printf("subject: %s\n", ca.subject().c_str());
    std::printf("notBefore: %s\n", ca.notBefore().c_str());
    std::printf("notAfter: %s\n", ca.notAfter().c_str());
    std::printf("sha256 Fingerprint=%s\n", ca.fingerprintColons().c_str());
}

// ca init / ca show: as the service user, like the service itself.
int caCommand(const CommandLine& cmd) {
    std::optional<Config> config;
    if (int code = loadAsServiceUser(cmd, config); code != kExitOk) return code;
    const std::string& path = config->caBundleFile;
    if (cmd.command == "ca show") {
        if (::access(path.c_str(), F_OK) != 0 && errno == ENOENT) {
            std::fprintf(stderr, "relaypro: no CA bundle at %s; `relaypro ca init` creates one\n", path.c_str());
            return kExitFailure;
        }
        auto ca = CaBundle::load(path, std::chrono::system_clock::now());
        if (!ca) {
            std::fprintf(stderr, "relaypro: %s\n", ca.error().message.c_str());
            return kExitConfig;
        }
        std::printf("file: %s\n", path.c_str());
        printCaBundle(*ca);
        return kExitOk;
    }
    // The bundle's folder is created like the private folder: 0700.
    const std::string dir = dirName(path);
    if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
        std::fprintf(stderr, "relaypro: cannot create %s: %s\n", dir.c_str(), std::strerror(errno));
        return kExitFailure;
    }
    bool created = false;
    auto ca = CaBundle::loadOrCreate(path, created);
    if (!ca) {
        std::fprintf(stderr, "relaypro: %s\n", ca.error().message.c_str());
        return kExitConfig;
    }
    std::printf("%s %s\n", created ? "created" : "exists:", path.c_str());
    printCaBundle(*ca);
    return kExitOk;
}

// install-config (packaging.md, "Install"); install_config.h does the work as the service user.
int installConfigCommand(const CommandLine& cmd) {
    InstallInputs inputs;
    // AIR_CONSOLE_CA_CERT may name a file only root can read: resolved before switching users,
    // used if config.yml lacks consoleCACert.
    const char* caInput = std::getenv("AIR_CONSOLE_CA_CERT");
    if (caInput != nullptr && *caInput != '\0') {
        inputs.consoleCaInput = caInput;
        inputs.consoleCaFromRoot = certificatesFromInput(caInput, dirName(configPathFor(cmd)));
    }
    std::optional<Environment> env;
    std::vector<std::string> warnings;
    if (int code = environmentAsServiceUser(env, warnings); code != kExitOk) return code;
    return installConfig(configPathFor(cmd), *env, inputs, warnings);
}
}  // namespace

namespace {

// `--timeout`: whole seconds, 1 to 86400.
std::optional<unsigned> parseTimeout(const std::string& v) {
    char* end = nullptr;
    unsigned long t = std::strtoul(v.c_str(), &end, 10);
    if (v.empty() || *end != '\0' || t == 0 || t > 86400 || v[0] == '-' || v[0] == '+') return std::nullopt;
    return static_cast<unsigned>(t);
}

using OptionValue = std::function<std::optional<std::string>(const std::string& flag)>;

// status's --tunnels, --sort and --limit; false with `error` set.
bool parseTunnelOption(const std::string& arg, bool inlineValue, const OptionValue& value, CommandLine& cmd,
                       std::string& error) {
    if (arg == "--tunnels") {
        if (inlineValue) error = "--tunnels takes no value";
        cmd.tunnels = true;
        return !inlineValue;
    }
    auto v = value(arg);
    if (!v) return false;
    if (arg == "--sort") {
        if (*v != "age" && *v != "bytes") {
            error = "--sort needs age or bytes, not " + quoted(*v);
            return false;
        }
        cmd.sort = *v;
        return true;
    }
    char* end = nullptr;
    unsigned long long n = std::strtoull(v->c_str(), &end, 10);
    if (v->empty() || *end != '\0' || !std::isdigit(static_cast<unsigned char>((*v)[0])) || n == 0 ||
        n > kMaxTunnelLimit) {
        error = "--limit needs a number of rows (1 to " + std::to_string(kMaxTunnelLimit) + "), not " + quoted(*v);
        return false;
    }
    cmd.limit = n;
    return true;
}

// The options after the command word, from args[i] on, into `cmd`; false with `error` set.
bool parseOptions(const std::vector<std::string>& args, size_t i, const CommandSpec& spec, CommandLine& cmd,
                  std::string& error) {
    const bool isVersion = cmd.command == "version";
    for (; i < args.size(); ++i) {
        std::string arg = args[i];
        std::optional<std::string> inlineValue;
        if (arg.starts_with("--") && arg.find('=') != std::string::npos) {
            inlineValue = arg.substr(arg.find('=') + 1);
            arg = arg.substr(0, arg.find('='));
        }
        auto value = [&](const std::string& flag) -> std::optional<std::string> {
            if (inlineValue) return inlineValue;
            if (i + 1 >= args.size()) {
                error = flag + " needs a value";
                return std::nullopt;
            }
            return args[++i];
        };
        if (arg == "--help" || arg == "-h") {
            cmd.help = true;
        } else if (arg == "--config" && !isVersion) {
            auto v = value(arg);
            if (!v) return false;
            if (v->empty()) {
                error = "--config needs a file name";
                return false;
            }
            cmd.config = *v;
        } else if (arg == "--user" && spec.takesUser) {
            auto v = value(arg);
            if (!v) return false;
            cmd.user = *v;
        } else if (arg == "--verbose" && isVersion && !inlineValue) {
            cmd.verbose = true;
        } else if (arg == "--json" && spec.takesJson && !inlineValue) {
            cmd.json = true;
        } else if (arg == "--timeout" && spec.takesTimeout) {
            auto v = value(arg);
            if (!v) return false;
            cmd.timeoutSeconds = parseTimeout(*v);
            if (!cmd.timeoutSeconds) {
                error = "--timeout needs a number of seconds (1 to 86400)";
                return false;
            }
        } else if (cmd.command == "status" && (arg == "--tunnels" || arg == "--sort" || arg == "--limit")) {
            if (!parseTunnelOption(arg, inlineValue.has_value(), value, cmd, error)) return false;
        } else {
            error = "unknown option \"" + args[i] + "\" for " + cmd.command;
            return false;
        }
    }
    if ((cmd.sort || cmd.limit) && !cmd.tunnels) {
        error = "--sort and --limit go with --tunnels";
        return false;
    }
    return true;
}

}  // namespace

ParsedCommandLine parseCommandLine(const std::vector<std::string>& args) {
    ParsedCommandLine out;
    if (args.empty()) {
        out.error = "missing command";
        return out;
    }
    CommandLine cmd;
    size_t i = 0;
    const std::string& first = args[0];
    if (first == "help" || first == "--help" || first == "-h") {
        cmd.command = "help";
        out.command = cmd;
        return out;
    }
    if (first == "ca") {
        if (args.size() < 2 || (args[1] != "init" && args[1] != "show")) {
            out.error =
                args.size() < 2 ? "ca needs a sub-command: init or show" : "unknown ca sub-command \"" + args[1] + "\"";
            if (args.size() >= 2 && (args[1] == "--help" || args[1] == "-h")) {
                out.error.clear();
                cmd.command = "ca init";
                cmd.help = true;
                out.command = cmd;
            }
            return out;
        }
        cmd.command = "ca " + args[1];
        i = 2;
    } else {
        cmd.command = first;
        i = 1;
    }
    const CommandSpec* spec = findCommand(cmd.command);
    if (spec == nullptr) {
        out.error = "unknown command \"" + cmd.command + "\"";
        return out;
    }
    if (parseOptions(args, i, *spec, cmd, out.error)) out.command = cmd;
    return out;
}

std::string configPathFor(const CommandLine& cmd) {
    if (cmd.config) return *cmd.config;
    const char* env = std::getenv("RELAYPRO_CONFIG");
    if (env != nullptr && *env != '\0') return env;
    return std::string(kDefaultConfigPath);
}

int runCli(int argc, char** argv) {
    processArguments().assign(argv, argv + argc);
    std::vector<std::string> args(argv + 1, argv + argc);
    ParsedCommandLine parsed = parseCommandLine(args);
    if (!parsed.command) {
        std::fprintf(stderr, "relaypro: %s\n\n%s", parsed.error.c_str(), kUsage);
        return kExitUsage;
    }
    const CommandLine& cmd = *parsed.command;
    if (cmd.command == "help") {
        std::fputs(kUsage, stdout);
        return kExitOk;
    }
    if (cmd.help) {
        const CommandSpec* spec = findCommand(cmd.command);
        std::fputs(spec->usage, stdout);
        if (cmd.command == "ca init") std::fputs(findCommand("ca show")->usage, stdout);
        return kExitOk;
    }
    if (cmd.command == "version") {
        std::printf("relaypro %s (%s)\n", std::string(versionString()).c_str(), std::string(gitDescribe()).c_str());
        if (cmd.verbose) std::fputs(describeComponents().c_str(), stdout);
        return kExitOk;
    }
    if (cmd.command == "check-config") return checkConfig(cmd);
    if (cmd.command == "install-config") return installConfigCommand(cmd);
    if (cmd.command == "run") return run(cmd);
    if (cmd.command == "status" || cmd.command == "upgrade") return talkToService(cmd);
    if (cmd.command == "ca init" || cmd.command == "ca show") return caCommand(cmd);
    std::fprintf(stderr, "relaypro: %s is not implemented yet\n", cmd.command.c_str());
    return kExitFailure;
}

}  // namespace relaypro
