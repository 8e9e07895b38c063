// The sandbox's self-test, run by a test build's worker when the supervisor sends SelfTest: tries
// what the sandbox forbids and reports one "check=outcome" line each.
#pragma once

#include <string>
#include <vector>

namespace relaypro {

std::string sandboxSelfTest(const std::vector<std::string>& paths, const std::string& controlSocket, int supervisorPid);

}  // namespace relaypro
