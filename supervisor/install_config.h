// `relaypro install-config` (packaging.md, "Install"): config.yml from the AIR_* inputs where it
// lacks them, or the template when it does not exist, then whether the service is ready to start.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/environment.h"
#include "common/result.h"

namespace relaypro {

struct InstallInputs {
    // AIR_CONSOLE_CA_CERT as given, and the certificates it named read while still root (it may
    // name a file only root can read); unset when the input is.
    std::string consoleCaInput;
    std::optional<Result<std::string>> consoleCaFromRoot;
};

// Runs as the service user, with `env` already loaded. Prints what it did; returns the exit code
// (cli.md).
int installConfig(const std::string& path, const Environment& env, const InstallInputs& inputs,
                  std::vector<std::string>& warnings);

}  // namespace relaypro
