// The metrics.listen endpoint: `GET /metrics` (and HEAD) answers the exposition, any other path
// 404, any other method on /metrics 405 with `Allow: GET, HEAD`; a request line that is not
// HTTP/1.x is 400. One request per connection (`Connection: close`). It runs on the supervisor's
// loop, on a socket the supervisor bound (and an upgrade hands over), so it is bounded the way the
// supervisor must be: at most kMaxConnections at once (more are closed as they are accepted), a
// request head of at most kMaxHeadBytes, kDeadline from accept to the end of the answer whatever
// the client does (a slow or silent one is cut), and an accept error (out of descriptors) pauses
// accepting for a second instead of spinning the loop. libevent's evhttp has none of the first
// three in 2.1 (its timeouts restart with every byte), hence this small server.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <unordered_set>

#include "common/result.h"

struct bufferevent;
struct event;
struct event_base;
struct evconnlistener;

namespace relaypro {

class MetricsEndpoint {
public:
    using Render = std::function<std::string()>;
    static constexpr size_t kMaxConnections = 64;
    static constexpr size_t kMaxHeadBytes = 8192;
    static constexpr std::chrono::seconds kDeadline{10};

    // Serves on `fd` (a listening socket, which stays the caller's: this serves a duplicate).
    static Result<std::unique_ptr<MetricsEndpoint>> create(event_base* base, int fd, Render render);
    ~MetricsEndpoint();
    MetricsEndpoint(const MetricsEndpoint&) = delete;
    MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

    [[nodiscard]] size_t connections() const { return connections_.size(); }

    // The answer to a request head (status line, headers, body), without the loop: tests use it.
    struct Answer {
        int status = 200;
        std::string text;  // the whole response
    };
    static Answer answer(std::string_view head, const Render& render);

private:
    struct Connection;
    MetricsEndpoint(event_base* base, Render render) : base_(base), render_(std::move(render)) {}
    static void onAccept(evconnlistener* l, int fd, struct sockaddr* addr, int len, void* arg);
    static void onAcceptError(evconnlistener* l, void* arg);
    static void onResume(int, short, void* arg);
    static void onRead(bufferevent* bev, void* arg);
    static void onWritten(bufferevent* bev, void* arg);
    static void onEvent(bufferevent* bev, short what, void* arg);
    static void onDeadline(int, short, void* arg);
    void close(Connection* c);

    event_base* base_;
    Render render_;
    evconnlistener* listener_ = nullptr;
    event* resume_ = nullptr;
    std::unordered_set<Connection*> connections_;  // owned: deleted by close() or the destructor
};

}  // namespace relaypro
