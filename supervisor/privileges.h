// Switching from root to the service account (spec/cli.md, spec/lifecycle.md). Every step is
// checked and a failure is fatal to the caller: a half-dropped process must not go on.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "common/environment.h"
#include "common/result.h"

namespace relaypro {

inline constexpr const char* kDefaultServiceUser = "air-relaypro";

struct Account {
    std::string name;
    uid_t uid = 0;
    gid_t gid = 0;
};

// The account named `name`, or nullopt when it does not exist.
std::optional<Account> lookUpAccount(const std::string& name);

// The service account's name: RELAYPRO_USER (the environment file's value wins over the process
// environment's, config.md), else air-relaypro.
std::string serviceUserName(const Environment& env);

// As root: supplementary groups, gid, uid set to `account`'s, in that order, and verified.
Status switchToAccount(const Account& account);

// Not root (under systemd as the service user, perhaps with an ambient CAP_NET_BIND_SERVICE):
// clears every capability — ambient, inheritable, permitted, effective — once the listeners are
// bound (lifecycle.md). Root keeps its capabilities (an explicit `--user root`).
Status dropCapabilitiesUnlessRoot();

// The rule for sub-commands other than run: as root, switch to the service user when that
// account exists; otherwise carry on as we are.
Status switchToServiceUserIfPresent(const Environment& env);

}  // namespace relaypro
