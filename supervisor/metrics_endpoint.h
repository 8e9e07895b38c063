// The metrics.listen endpoint: `GET /metrics` (and HEAD) answers the exposition, any other path
// 404, any other method on /metrics 405 with `Allow: GET, HEAD`. libevent's evhttp on the
// supervisor's loop, on a socket the supervisor bound (and an upgrade hands over). Heads are
// capped at 8 KiB, bodies are refused, and a connection that sends nothing for 10 s is closed.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "common/result.h"

struct event_base;
struct evhttp;
struct evhttp_request;

namespace relaypro {

class MetricsEndpoint {
public:
    using Render = std::function<std::string()>;

    // Serves on `fd` (a listening socket, which stays the caller's: it is neither closed nor
    // made close-on-exec here beyond what it is).
    static Result<std::unique_ptr<MetricsEndpoint>> create(event_base* base, int fd, Render render);
    ~MetricsEndpoint();
    MetricsEndpoint(const MetricsEndpoint&) = delete;
    MetricsEndpoint& operator=(const MetricsEndpoint&) = delete;

private:
    explicit MetricsEndpoint(Render render) : render_(std::move(render)) {}
    static void onRequest(evhttp_request* req, void* arg);

    Render render_;
    evhttp* http_ = nullptr;
};

}  // namespace relaypro
