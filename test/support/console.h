// The console simulator (test/tools/console_sim.py) as a test fixture: its files live in a
// folder of the test's (its test CA, state.json, journal.jsonl); it listens on `host`.
#pragma once

#include <jansson.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "test/support/process.h"
#include "test/support/test_files.h"

namespace relaypro::testing {

struct ConsoleCall {
    double time = 0;  // unix seconds when the simulator received it
    std::string path;
    std::string authorization;
    std::string userAgent;
    std::string body;  // JSON text, members sorted
};

class ConsoleSim {
public:
    struct Options {
        std::string host = "127.0.0.1";
        uint16_t port = 0;  // 0: any
        bool plainHttp = false;
        uint16_t httpPort = 0;  // with plainHttp; 0: any
    };
    // Starts it; files go under `dir`/console.
    explicit ConsoleSim(const std::filesystem::path& dir) : ConsoleSim(dir, Options{}) {}
    ConsoleSim(const std::filesystem::path& dir, Options options);

    [[nodiscard]] bool started() const { return port_ != 0; }
    [[nodiscard]] uint16_t port() const { return port_; }
    [[nodiscard]] uint16_t httpPort() const { return httpPort_; }
    [[nodiscard]] const std::string& host() const { return options_.host; }
    [[nodiscard]] std::string address() const { return options_.host + ":" + std::to_string(port_); }
    // The simulator's test CA: what consoleCACert must hold to trust it.
    [[nodiscard]] std::filesystem::path certFile() const { return dir_ / "ca.pem"; }
    [[nodiscard]] std::string certPem() const { return readText(certFile()); }
    [[nodiscard]] std::string output() const { return readText(dir_ / "out.txt") + readText(dir_ / "err.txt"); }

    // Replaces the state (see console_sim.py) with `json`.
    void setState(const std::string& json) const;
    // The requests received so far, in order.
    [[nodiscard]] std::vector<ConsoleCall> journal() const;
    [[nodiscard]] size_t count(const std::string& path) const;
    void stop() { process_.stop(SIGKILL); }

    // config.yml lines for a relay registered to this console (securityToken "st-9f3k2", relayId 3).
    [[nodiscard]] std::string registeredConfig(int64_t organizationId = 1) const;
    // consoleCACert as a YAML literal block.
    [[nodiscard]] std::string caYaml() const;

private:
    std::filesystem::path dir_;
    Options options_;
    ChildProcess process_;
    uint16_t port_ = 0;
    uint16_t httpPort_ = 0;
};

}  // namespace relaypro::testing
