#include "supervisor/privileges.h"

#include <grp.h>
#include <linux/capability.h>
#include <pwd.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <vector>

namespace relaypro {

std::optional<Account> lookUpAccount(const std::string& name) {
    std::vector<char> buf(16384);
    struct passwd pw {};
    struct passwd* found = nullptr;
    if (::getpwnam_r(name.c_str(), &pw, buf.data(), buf.size(), &found) != 0 || found == nullptr) return std::nullopt;
    return Account{name, pw.pw_uid, pw.pw_gid};
}

std::string serviceUserName(const Environment& env) {
    auto v = env.get("RELAYPRO_USER");
    return v && !v->empty() ? *v : kDefaultServiceUser;
}

Status switchToAccount(const Account& a) {
    if (::initgroups(a.name.c_str(), a.gid) != 0) return sysError("cannot set the groups of " + a.name);
    if (::setresgid(a.gid, a.gid, a.gid) != 0) return sysError("cannot switch to the group of " + a.name);
    if (::setresuid(a.uid, a.uid, a.uid) != 0) return sysError("cannot switch to user " + a.name);
    uid_t ru = 0, eu = 0, su = 0;
    gid_t rg = 0, eg = 0, sg = 0;
    if (::getresuid(&ru, &eu, &su) != 0 || ::getresgid(&rg, &eg, &sg) != 0 || ru != a.uid || eu != a.uid ||
        su != a.uid || rg != a.gid || eg != a.gid || sg != a.gid) {
        return Error{"the switch to user " + a.name + " did not take"};
    }
    if (a.uid != 0 && ::setuid(0) == 0)
        return Error{"the switch to user " + a.name + " can be undone; refusing to go on"};
    return {};
}

Status dropCapabilitiesUnlessRoot() {
    if (::geteuid() == 0) return {};
    if (::prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0 && errno != EINVAL) {
        return sysError("cannot clear the ambient capabilities");
    }
    __user_cap_header_struct header{_LINUX_CAPABILITY_VERSION_3, 0};
    __user_cap_data_struct data[2] = {};
    if (::syscall(SYS_capset, &header, data) != 0) return sysError("cannot drop capabilities");
    return {};
}

Status switchToServiceUserIfPresent(const Environment& env) {
    if (::geteuid() != 0) return {};
    std::string name = serviceUserName(env);
    if (name == "root") return {};
    auto account = lookUpAccount(name);
    if (!account) return {};
    return switchToAccount(*account);
}

}  // namespace relaypro
