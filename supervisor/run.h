// `relaypro run`: the service in the foreground (spec/cli.md, lifecycle.md).
#pragma once

#include "common/config.h"
#include "common/environment.h"
#include "supervisor/service.h"

namespace relaypro {

// Runs until SIGTERM/SIGINT (graceful stop); returns the exit code.
int runService(ServiceOptions options, Environment env, Config config);

}  // namespace relaypro
