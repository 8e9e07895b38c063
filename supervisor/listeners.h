// The service's listening sockets: bound by the supervisor, or adopted from systemd socket
// activation (LISTEN_FDS) when one of those sockets has the configured address.
#pragma once

#include <string>
#include <utility>

#include "common/config_values.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace relaypro {

// A bound, listening, non-blocking, close-on-exec TCP socket for host:port, with an accept queue
// of `backlog` connections (limits.listenBacklog; the kernel caps it at net.core.somaxconn).
Result<UniqueFd> bindListener(const HostPort& address, int backlog);

// net.core.somaxconn (0 when it cannot be read).
int somaxconn();
// net.ipv4.ip_local_port_range, the ports connect() chooses from; {0, 0} when unreadable.
std::pair<int, int> localPortRange();

// The socket systemd passed (LISTEN_FDS) that listens on `address`, if any. Taken once.
UniqueFd adoptActivatedListener(const HostPort& address);

// "ip:port" / "[v6]:port" of a bound socket.
std::string boundAddress(int fd);

}  // namespace relaypro
