// What a supervisor hands to the next supervisor image when it re-executes in place during an
// upgrade (lifecycle.md, Upgrade step 4): its listening sockets, the control socket, the channel
// of every worker of every generation, and the state that must outlive the exec. The state goes
// through a memfd whose number is in RELAYPRO_HANDOVER_FD; the descriptors stay open across the
// exec (close-on-exec cleared just before it). Before Linux 3.17 the memfd is an unnamed file in
// the private folder instead. The format is versioned: the next image may be a
// newer build. Format 2 adds the configuration snapshot the old image checked and runs with, so
// that the next image never has to validate its way into (or out of) a hand-over (issue 16);
// format 3 the metrics endpoint's socket and the metrics' totals (issue 18); format 4 each
// worker's IPC protocol version, so that the next image still balances the workers it adopts and
// knows what they understand (issue 19).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "common/config_writer.h"
#include "common/listener.h"
#include "common/result.h"

namespace relaypro {

inline constexpr const char* kHandoverEnv = "RELAYPRO_HANDOVER_FD";
// Set for the installed binary's check-config during an upgrade: it then says on stderr which
// hand-over format it reads ("hand-over format: N").
inline constexpr const char* kUpgradeCheckEnv = "RELAYPRO_UPGRADE_CHECK";

struct HandoverWorker {
    pid_t pid = 0;
    uint32_t generation = 0;
    uint32_t slot = 0;
    static constexpr uint8_t kStarting = 0, kServing = 1, kDraining = 2;  // the format's numbers
    uint8_t state = kStarting;
    int channelFd = -1;
    uint64_t totalTunnels = 0;
    uint16_t protocol = 0;  // format 4: from the worker's HelloAck; 0 = not known (an older image's)
};

struct HandoverState {
    uint32_t currentGeneration = 0;
    int64_t startedUnixMs = 0;
    std::vector<ListenerSocket> listeners;  // the descriptors cross the exec
    int controlFd = -1;
    std::vector<HandoverWorker> workers;
    uint64_t exitedTunnels = 0;
    std::vector<std::string> everHeldEnv;
    std::string certificateChainPem;
    std::string privateKeyPem;  // a secret: the memfd is only ever ours
    std::string caPem;

    // Format 2 (absent, i.e. empty or -1, when the previous image wrote format 1).
    uint32_t format = 2;
    std::string configText;                    // config.yml as the running configuration was parsed from it
    std::string envFileText;                   // the environment file as read with it (empty: none)
    std::string httpsListen;                   // the listeners as configured when they were bound
    std::string httpListen;                    // empty: none
    std::string settingsBytes;                 // the workers' settings snapshot (ipc/snapshot.h), as running
    std::string caBundlePem;                   // the CA in use, key included: a secret
    bool revoked = false;                      // the console revoked this relay's securityToken
    int upgradeReplyFd = -1;                   // the `relaypro upgrade` waiting for its answer, or -1
    uint64_t droppedLogLines = 0;              // not yet reported
    uint64_t droppedLogLinesTotal = 0;         // since start
    std::vector<ConfigUpdate> unsavedUpdates;  // RelayPro's writes config.yml could not take
    std::string unsavedBase;                   // config.yml when they failed (a secret: tokens)

    // Format 3 (absent, i.e. -1 or empty, from an older image): the metrics endpoint.
    int metricsFd = -1;          // its listening socket, or -1 when metrics.listen is off
    std::string metricsAddress;  // as bound
    std::string metricsState;    // MetricsRegistry::serialize(): the counters go on from there
};

// The newest format this build writes and reads.
inline constexpr uint32_t kHandoverFormat = 4;

// Writes the state into a new memfd (not close-on-exec) and returns its descriptor. On a kernel
// without memfd_create (before 3.17) the file is an unnamed one in `fallbackDir` (the private
// folder). `format` is the newest the next image reads (a downgrade may need an older one): the
// fields of the newer formats are left out.
Result<int> writeHandover(const HandoverState& state, const std::string& fallbackDir,
                          uint32_t format = kHandoverFormat);
// A readable and writable file that has no name and stays open across exec: a sealable memfd
// (Linux 3.17), else, or when `memfdFirst` is false, an unnamed 0600 file in `fallbackDir`
// (O_TMPFILE, Linux 3.11; else a unique name unlinked at once).
Result<int> unnamedFile(const std::string& fallbackDir, bool memfdFirst = true);
// Reads and closes the memfd; checks every field.
Result<HandoverState> readHandover(int fd);

// Every descriptor the state names, to clear (or set again) close-on-exec on.
std::vector<int> handoverDescriptors(const HandoverState& state);

// Wipes what a hand-over carries that is secret: the private keys, the configuration texts
// (tokens), RelayPro's unsaved writes and the workers' settings (the password file's entries).
void wipeHandoverSecrets(HandoverState& state);

}  // namespace relaypro
