// The HTTP side of a connection (pgbouncer's client.c): reading request heads (pipelined ones
// included), routing each (router.h), answering the relay's own routes (health, CA PEM), and the
// request of a plain-HTTP forward, then handing on to authentication, the token endpoint or a
// dial.
#pragma once

#include <string>
#include <string_view>

#include "worker/http_response.h"
#include "worker/request_head.h"

namespace relaypro {

class Connection;

class HttpExchange {
public:
    explicit HttpExchange(Connection& connection) : c_(connection) {}

    // State ReadHead: reads and parses the next head, then routes it. True when the
    // connection can step on at once.
    bool readHead();
    // Whether the dial under way is for a plain-HTTP forward (else for a tunnel).
    [[nodiscard]] bool forwarding() const { return !forwardRequest_.empty(); }
    // The forward's request, in absolute form toward an HTTP proxy, with the proxy's own
    // Proxy-Authorization (`proxyAuthorization`, "Basic …") when its URL has user:password@.
    std::string takeForwardRequest(bool viaHttpProxy, std::string_view proxyAuthorization);

private:
    // After a parse that ended (Complete or Invalid): route the head or refuse it.
    bool parsed(const HeadResult& r);
    void route();
    void answerHere(Response r);  // health, CA PEM: answered by the relay itself
    void forward();
    [[nodiscard]] std::string targetText() const;

    Connection& c_;
    std::string forwardRequest_;  // a plain-HTTP request as the console will see it
};

// Request fields that never travel to the console (RFC 9110 §7.6.1 hop-by-hop, and Proxy-*).
bool isHopByHop(std::string_view name, const RequestHead& h);

}  // namespace relaypro
