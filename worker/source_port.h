// limits.sourcePorts: the source ports of the connections a worker makes, chosen by the worker.
//
// Left to connect(), Linux looks for a free source port towards the destination among those in
// use, checking each against the established connections; past about half of its range in use
// towards one address and port, every new connection walks thousands of them (in the
// 100,000-Responder run of issue 19, 40-44 % of the box's CPU, in the workers' loops: BENCHMARKS.md).
// Bound first to a random port of an operator-given range (SO_REUSEADDR, so that our connections
// to other places share ports; connect() then checks one four-tuple), a connection costs one
// lookup whatever the count. The range must lie outside net.ipv4.ip_local_port_range: connect()'s
// own search skips every port whose binding a bind() made, so a range inside it would take those
// ports from every other program on the host. HAProxy's `source addr:low-high` is the same idea.
#pragma once

#include <sys/socket.h>

#include <cstdint>

namespace relaypro {

struct PortRange {
    uint16_t low = 0;  // 0: no range, connect() chooses
    uint16_t high = 0;
};

// Binds `fd`, a TCP socket about to connect to `dst`, to the source address the routing table
// gives for `dst` and a random port of `range`. False when it could not (the socket is then
// unbound and connect() chooses): no range, no route, or `tries` ports all taken by sockets
// that do not share.
bool bindSourcePort(int fd, const sockaddr_storage& dst, const PortRange& range, int tries = 8);

}  // namespace relaypro
