// The console simulator (console_sim.py) as a test fixture: its own TLS certificate (P-256,
// IP SAN 127.0.0.1, made with the openssl tool), its state file, its request journal.
#pragma once

#include <jansson.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "test/support/process.h"
#include "test/support/test_files.h"

namespace relaypro::testing {

class ConsoleSim {
public:
    // Starts on 127.0.0.1 with an ephemeral port; files go under `dir`.
    explicit ConsoleSim(const std::filesystem::path& dir);
    ~ConsoleSim() = default;

    [[nodiscard]] bool started() const { return port_ != 0; }
    [[nodiscard]] uint16_t port() const { return port_; }
    [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
    [[nodiscard]] std::filesystem::path certFile() const { return dir_ / "console-cert.pem"; }
    [[nodiscard]] std::string certPem() const { return readText(certFile()); }

    // Replaces the state (console_sim.py's STATE.json) with `json`.
    void setState(const std::string& json) const;
    // The requests received so far, as (path, body JSON text) pairs, in order.
    [[nodiscard]] std::vector<std::pair<std::string, std::string>> journal() const;
    [[nodiscard]] size_t count(const std::string& path) const;

    // config.yml lines for a relay registered to this console (securityToken "st-9f3k2", relayId 3).
    [[nodiscard]] std::string registeredConfig(int64_t organizationId = 1) const;

private:
    std::filesystem::path dir_;
    ChildProcess process_;
    uint16_t port_ = 0;
};

}  // namespace relaypro::testing
