// systemd's service protocols, written against their documentation instead of linking
// libsystemd (docs/operators-guide.md, "What is inside"): the notify socket (sd_notify(3):
// READY=1, RELOADING=1, STOPPING=1, WATCHDOG=1, STATUS=…), the watchdog variables
// (sd_watchdog_enabled(3)) and socket activation (sd_listen_fds(3)). systemd documents these as
// stable interfaces that a service may implement itself; owning them keeps the packaged binary
// free of libsystemd.so.0 and of the compression and crypto libraries it loads.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace relaypro::sd {

// Sends `state` (newline-separated KEY=VALUE assignments) as one datagram to $NOTIFY_SOCKET: a
// path, or an abstract name written with a leading '@'. Returns 1 when sent, 0 when the variable
// is unset (not under systemd), -errno when it is malformed or the send failed.
int notify(std::string_view state);

// The watchdog interval systemd asked for: $WATCHDOG_USEC when it is a positive number and
// $WATCHDOG_PID is unset or this process's pid; 0 otherwise.
uint64_t watchdogMicros();

// The first descriptor systemd passes (SD_LISTEN_FDS_START).
inline constexpr int kListenFdsStart = 3;

// The descriptors systemd passed to this process ($LISTEN_PID is this pid, $LISTEN_FDS of them
// from descriptor 3), each made close-on-exec. LISTEN_PID, LISTEN_FDS and LISTEN_FDNAMES are
// removed from the environment so that children never take them for their own. Empty when the
// variables are absent, name another process or are malformed.
std::vector<int> takeListenFds();

// A listening stream socket (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1)).
bool isListeningStreamSocket(int fd);

}  // namespace relaypro::sd
