// `relaypro run`: the service in the foreground (spec/cli.md, lifecycle.md). For now one
// serving loop runs inside this process; the process-model issue moves it into forked workers.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/environment.h"
#include "supervisor/privileges.h"

namespace relaypro {

// Runs until SIGTERM/SIGINT (graceful stop). `account`: switch to it once listeners are bound.
int runService(const std::string& configPath, const std::string& envFile, Environment env, Config config,
               std::vector<std::string> warnings, std::optional<Account> account);

}  // namespace relaypro
