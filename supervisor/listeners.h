// The service's listening sockets: bound by the supervisor, or adopted from systemd socket
// activation (LISTEN_FDS) when one of those sockets has the configured address.
#pragma once

#include <string>

#include "common/config_values.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace relaypro {

// A bound, listening, non-blocking, close-on-exec TCP socket for host:port.
Result<UniqueFd> bindListener(const HostPort& address);

// The socket systemd passed (LISTEN_FDS) that listens on `address`, if any. Taken once.
UniqueFd adoptActivatedListener(const HostPort& address);

// "ip:port" / "[v6]:port" of a bound socket.
std::string boundAddress(int fd);

}  // namespace relaypro
