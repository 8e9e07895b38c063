// Opens the upstream side of a request: resolves the name (the hosts table first, then DNS),
// tries every address in order until one connects, and — with proxyEnabled and no NO_PROXY
// match — goes through the system proxy instead (TLS to an https:// proxy, then CONNECT).
// One deadline (limits.connectTimeout) covers all of it. Asynchronous; reports once.
#pragma once

#include <event2/event.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "worker/stream.h"

namespace relaypro {

class Server;
struct WorkerSettings;

struct DialOutcome {
    bool ok = false;
    // Failure: 502 upstream_unreachable or 504 upstream_timeout, and what happened (for the log).
    int status = 0;
    std::string_view code;
    std::string detail;
    // Success: the connected stream (TLS only toward an https:// proxy), bytes the proxy sent
    // after its 200 (they belong to the tunnel), and whether a plain-HTTP request must be sent
    // to an HTTP proxy in absolute form.
    int fd = -1;
    SSL* ssl = nullptr;
    std::string leftover;
    bool viaHttpProxy = false;
    // With viaHttpProxy: "Basic …", the proxy's own credentials, or empty (a secret).
    std::string proxyAuthorization;
    std::string address;  // the address connected to ("proxy host:port" through a proxy)
};

enum class DialPurpose { Tunnel, PlainHttp };

class UpstreamDialer {
public:
    using Done = std::function<void(DialOutcome&&)>;
    UpstreamDialer(Server& server, Done done);
    ~UpstreamDialer();
    UpstreamDialer(const UpstreamDialer&) = delete;
    UpstreamDialer& operator=(const UpstreamDialer&) = delete;

    // `host` without brackets. `done` is called exactly once, never from inside start().
    void start(const WorkerSettings& settings, std::string host, uint16_t port, DialPurpose purpose);

private:
    enum class Phase { Idle, Resolving, Connecting, ProxyTls, ProxyRequest, ProxyResponse, Finished };

    void resolved(const std::vector<sockaddr_storage>& addresses, const std::string& error);
    void connectNext();
    void onSocketEvent(short what);
    void buildConnectRequest();
    void proxyStep();
    void fail(int status, std::string_view code, std::string detail);
    void succeed();
    void finish(DialOutcome&& outcome);
    void watch(short what);
    static void onEvent(int fd, short what, void* arg);
    static void onTimeout(int fd, short what, void* arg);
    static void onDeferred(int fd, short what, void* arg);

    Server& server_;
    Done done_;
    Phase phase_ = Phase::Idle;
    std::string targetHost_;  // what the client asked for
    uint16_t targetPort_ = 0;
    std::string dialHost_;  // what we connect to (the target, or the proxy)
    uint16_t dialPort_ = 0;
    bool viaProxy_ = false;
    bool proxyTls_ = false;
    bool sendConnect_ = false;
    std::string proxyAuthorization_;  // "Basic …" for the proxy, or empty (a secret)
    std::vector<sockaddr_storage> addresses_;
    size_t nextAddress_ = 0;
    std::string lastError_;
    Stream stream_;
    event* ev_ = nullptr;
    event* timer_ = nullptr;
    event* deferred_ = nullptr;
    uint64_t lookup_ = 0;  // the NameCache lookup under way (cancelled if this goes first)
    std::string io_;       // the CONNECT request being written, then the proxy's answer
    size_t ioOffset_ = 0;
    DialOutcome pending_;
};

}  // namespace relaypro
