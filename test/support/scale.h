// Helpers of the lifecycle-at-scale tests (scale_test.cc, review19_test.cc).
#pragma once

#include <cstdio>
#include <string>
#include <utility>

#include "test/support/net.h"
#include "test/support/secrets.h"

namespace relaypro::testing {

// TLS, CONNECT to the echo target, one byte echoed: a tunnel the way a Responder holds one.
inline bool openTunnel(Client& c, uint16_t relayPort, uint16_t echoPort) {
    if (!c.connect("127.0.0.1", relayPort, true)) return false;
    if (!c.send("CONNECT localhost:" + std::to_string(echoPort) +
                " HTTP/1.1\r\nProxy-Authorization: " + basicCredential() + "\r\n\r\n")) {
        return false;
    }
    if (statusOf(c.readHead()) != 200) return false;
    return c.send("x") && c.readExactly(1) == "x";
}

// A listening socket on `port` as `ss -ltn` shows it: {connections waiting in its accept queue,
// the queue's length}; {-1, -1} when there is none.
inline std::pair<long, long> listenQueue(uint16_t port) {
    std::string cmd = "ss -ltnH 'sport = :" + std::to_string(port) + "' 2>/dev/null";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return {-1, -1};
    char line[512] = {};
    std::pair<long, long> q{-1, -1};
    if (std::fgets(line, sizeof line, p) != nullptr) {
        char state[32] = {};
        if (std::sscanf(line, "%31s %ld %ld", state, &q.first, &q.second) != 3) q = {-1, -1};
    }
    ::pclose(p);
    return q;
}

}  // namespace relaypro::testing
