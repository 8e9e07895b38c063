// The `relaypro` command line (spec/cli.md): sub-commands, flags, exit codes.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace relaypro {

// Exit codes of spec/cli.md.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitConfig = 78;  // EX_CONFIG

struct CommandLine {
    std::string command;  // "run", "check-config", "ca init", ...
    bool help = false;    // --help given to the sub-command
    std::optional<std::string> config;
    std::optional<std::string> user;
    bool json = false;
    bool verbose = false;  // version --verbose
    std::optional<unsigned> timeoutSeconds;
    bool tunnels = false;             // status --tunnels
    std::optional<std::string> sort;  // status --tunnels --sort age|bytes
    std::optional<uint64_t> limit;    // status --tunnels --limit N
};

struct ParsedCommandLine {
    std::optional<CommandLine> command;  // set on success
    std::string error;                   // usage error message otherwise
};

// Parses argv (without the program name). Pure: no I/O.
ParsedCommandLine parseCommandLine(const std::vector<std::string>& args);

// The config path for a command: --config, else $RELAYPRO_CONFIG, else the production path.
std::string configPathFor(const CommandLine& cmd);

// Runs the program; returns the exit code.
int runCli(int argc, char** argv);

}  // namespace relaypro
