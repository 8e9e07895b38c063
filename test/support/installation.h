// RelayPro installed the way a package does it, in a test's folder: the binary at a path of its
// own that an upgrade replaces (a new file renamed over the old one: the running image keeps its
// deleted file), config.yml and passwords.txt beside it, the hosts file the relay resolves
// with, and the command line run with that installed binary.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "test/support/relay.h"
#include "test/support/test_files.h"

namespace relaypro::testing {

class Installation {
public:
    // Installs `build` (a test's RELAYPRO_BINARY) into `dir`.
    Installation(const TempDir& dir, const std::string& build);

    // Puts `build` in place of the installed binary (what the package's unpack does).
    void install(const std::string& build) const;
    [[nodiscard]] std::filesystem::path binary() const { return dir_.path() / "relaypro"; }
    [[nodiscard]] std::filesystem::path config() const { return dir_.path() / "config.yml"; }
    // The environment the service and the command line run with (plus `extra`).
    [[nodiscard]] std::map<std::string, std::string> env(const std::map<std::string, std::string>& extra = {}) const;
    // Starts the installed binary on `yaml` (config.yml); EXPECTs it ready.
    [[nodiscard]] std::unique_ptr<Relay> start(const std::string& yaml,
                                               const std::map<std::string, std::string>& extraEnv = {}) const;
    // `relaypro ARGS --config config.yml` with the installed binary: its exit code and output.
    [[nodiscard]] std::pair<int, std::string> cli(const std::vector<std::string>& args) const;

private:
    const TempDir& dir_;
};

}  // namespace relaypro::testing
