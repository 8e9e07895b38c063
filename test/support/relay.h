// A real relaypro process for integration tests: config written to a temporary folder, started
// with an explicit environment (never the machine's environment file), ready when its log says
// so, listener ports read from the log, stopped by PID.
#pragma once

#include <jansson.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "test/support/process.h"
#include "test/support/test_files.h"

namespace relaypro::testing {

struct LogLine {
    std::string text;
    std::map<std::string, std::string> fields;  // every member as text (numbers as digits)
    [[nodiscard]] std::string operator[](const std::string& k) const {
        auto it = fields.find(k);
        return it == fields.end() ? "" : it->second;
    }
};

// The relaypro this test runs by default: the shipped build, or relaypro-test (the same with the
// test hooks, common/test_hooks.h) for the suites that use hooks (test/CMakeLists.txt). Defined per
// test executable by support/relay_binary.cc.
extern const char* const kRelayProBinary;

class Relay {
public:
    // `configYaml` is written as config.yml in `dir`; `env` adds to a minimal environment.
    // `binary`: the relaypro executable to run (an upgrade test runs an installed copy).
    // `configDir`: where config.yml (and so logs/) lives when not in `dir`; an empty
    // `configYaml` runs the config.yml that is there, untouched (a read-only folder).
    Relay(const TempDir& dir, const std::string& configYaml, std::map<std::string, std::string> env = {},
          std::vector<std::string> extraArgs = {}, const std::string& binary = kRelayProBinary,
          const std::filesystem::path& configDir = {});
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    [[nodiscard]] bool ready() const { return ready_; }
    [[nodiscard]] uint16_t httpsPort() const { return httpsPort_; }
    [[nodiscard]] uint16_t httpPort() const { return httpPort_; }
    [[nodiscard]] uint16_t metricsPort() const { return metricsPort_; }
    [[nodiscard]] pid_t pid() const { return process_.pid(); }
    [[nodiscard]] std::filesystem::path logFile() const { return configDir_ / "logs" / "relaypro.log.txt"; }
    [[nodiscard]] std::string stderrText() const { return readText(dir_ / "stderr.txt"); }

    std::vector<LogLine> log() const;
    // Waits until a log line with msg == `msg` (and all `match` fields equal) appears.
    bool waitForLog(const std::string& msg, const std::map<std::string, std::string>& match = {},
                    std::chrono::milliseconds timeout = std::chrono::seconds(20)) const;
    void signal(int sig) const { process_.signal(sig); }
    int stop(int sig = SIGTERM) { return process_.stop(sig); }
    ChildProcess& process() { return process_; }

    // Every worker that has logged "worker ready", in order (a replaced one stays listed).
    [[nodiscard]] std::vector<pid_t> workerPids() const;
    // The RSS of the relay process in KiB (from /proc).
    [[nodiscard]] long rssKiB() const;

private:
    std::filesystem::path dir_;
    std::filesystem::path configDir_;
    ChildProcess process_;
    bool ready_ = false;
    uint16_t httpsPort_ = 0;
    uint16_t httpPort_ = 0;
    uint16_t metricsPort_ = 0;
};

}  // namespace relaypro::testing
