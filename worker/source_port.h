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
// ports from every other program on the host. (HAProxy's `source addr:low-high` serves the same
// end with a pool of free ports; here the workers share the range and draw at random.)
#pragma once

#include <sys/socket.h>

#include <cstdint>

namespace relaypro {

struct PortRange {
    uint16_t low = 0;  // 0: no range, connect() chooses
    uint16_t high = 0;
};

// The source address the routing table gives for `dst` (a UDP socket connected there tells it).
bool sourceAddressFor(const sockaddr_storage& dst, sockaddr_storage& src);

// Binds `fd` to `src` and a random port of `range` (SO_REUSEADDR: shared with our other
// connections). False when it could not (the socket is then unbound): no range, or `tries`
// ports all held by sockets that do not share.
bool bindSourcePort(int fd, sockaddr_storage src, const PortRange& range, int tries = 8);

// A non-blocking TCP socket (TCP_NODELAY) connecting to `dst`: from a random port of `range`,
// drawn again when it is held or its four-tuple is in use (EADDRNOTAVAIL), up to kPortDraws
// times; then, or with no range, from the port connect() chooses. -1 with errno set.
inline constexpr int kPortDraws = 16;
// `fellBack`, when given: set when a range was given and connect() chose after all.
int connectFromRange(const sockaddr_storage& dst, const PortRange& range, bool* fellBack = nullptr);

}  // namespace relaypro
