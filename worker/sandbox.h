// A worker's confinement once it has everything it needs (lifecycle.md, "Privileges and
// isolation"): the account `nobody` when the supervisor stayed root, no capability, no new
// privileges, not dumpable, killed with its parent, Landlock with no file-system access where the
// kernel has it, and a seccomp allow-list that denies opening files, ptrace and
// process_vm_*, sockets other than AF_INET/AF_INET6, exec, and signals to other processes.
#pragma once

#include <string>
#include <vector>

namespace relaypro {

struct SandboxReport {
    bool ok = true;
    std::string error;                  // why it failed (the worker must not serve then)
    std::vector<std::string> warnings;  // features the kernel lacks (skipped)
    bool seccomp = false;
    bool landlock = false;
};

// Applies every step in order; any failure of a mandatory step is reported, not ignored.
SandboxReport enterSandbox();

}  // namespace relaypro
