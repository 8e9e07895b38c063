// What a supervisor hands to the next supervisor image when it re-executes in place during an
// upgrade (lifecycle.md, Upgrade step 4): its listening sockets, the control socket, the channel
// of every worker of every generation, and the state that must outlive the exec. The state goes
// through a memfd whose number is in RELAYPRO_HANDOVER_FD; the descriptors stay open across the
// exec (close-on-exec cleared just before it). Before Linux 3.17 the memfd is an unnamed file in
// the private folder instead. The format is versioned: the next image may be a
// newer build.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/result.h"

namespace relaypro {

inline constexpr const char* kHandoverEnv = "RELAYPRO_HANDOVER_FD";

struct HandoverListener {
    uint8_t kind = 0;  // 0 https, 1 http
    int fd = -1;
    std::string address;
};

struct HandoverWorker {
    pid_t pid = 0;
    uint32_t generation = 0;
    uint32_t slot = 0;
    uint8_t state = 0;  // 0 starting, 1 serving, 2 draining
    int channelFd = -1;
    uint64_t totalTunnels = 0;
};

struct HandoverState {
    uint32_t currentGeneration = 0;
    int64_t startedUnixMs = 0;
    std::vector<HandoverListener> listeners;
    int controlFd = -1;
    std::vector<HandoverWorker> workers;
    uint64_t exitedTunnels = 0;
    std::vector<std::string> everHeldEnv;
    std::string certificateChainPem;
    std::string privateKeyPem;  // a secret: the memfd is only ever ours
    std::string caPem;
};

// Writes the state into a new memfd (not close-on-exec) and returns its descriptor. On a kernel
// without memfd_create (before 3.17) the file is an unnamed one in `fallbackDir` (the private
// folder).
Result<int> writeHandover(const HandoverState& state, const std::string& fallbackDir);
// A readable and writable file that has no name and stays open across exec: a sealable memfd
// (Linux 3.17), else, or when `memfdFirst` is false, an unnamed 0600 file in `fallbackDir`
// (O_TMPFILE, Linux 3.11; else a unique name unlinked at once).
Result<int> unnamedFile(const std::string& fallbackDir, bool memfdFirst = true);
// Reads and closes the memfd; checks every field.
Result<HandoverState> readHandover(int fd);

// Every descriptor the state names, to clear (or set again) close-on-exec on.
std::vector<int> handoverDescriptors(const HandoverState& state);

}  // namespace relaypro
