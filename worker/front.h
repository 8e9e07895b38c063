// What comes before a connection's first request (pgbouncer's pooler side): a trusted
// balancer's PROXY header, taken out of the socket exactly up to its end; a PROXY header from
// anyone else refused with a plain 400; then, on the TLS listener, the TLS handshake.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <string>

#include "common/relay_counters.h"
#include "common/worker_settings.h"

namespace relaypro {

class Connection;

// "ip:port" ("[v6]:port") of an address, for logs.
std::string peerText(const sockaddr_storage& a);
// Whether `a` is one of proxyProtocol.trustedSources (an IPv4-mapped IPv6 address counts as IPv4).
bool inTrustedSources(const WorkerSettings& s, const sockaddr_storage& a);

// One connection's front, run by Connection::step in states PeekProxy and Handshake. Each step
// returns true when the connection can step on at once (it has moved to its next state).
class Front {
public:
    explicit Front(Connection& connection) : c_(connection) {}

    bool peekProxy();
    bool handshake();
    // Resets the connection unserved, counted under `id` (ShedAtAccept, ShedAfterWaiting); closes it.
    void shed(counters::Id id);

private:
    bool startRequests();  // after the PROXY header: TLS, or the first request head
    // Up to `room` of the client's first bytes, left in the socket; 0 when none has come yet (a
    // read is wanted) or the client is gone (closed).
    size_t peekClient(char* buf, size_t room);

    Connection& c_;
    std::string proxyHead_;  // a trusted balancer's PROXY header, as far as it has arrived
};

}  // namespace relaypro
