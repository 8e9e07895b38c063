#include "supervisor/metrics_endpoint.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/event_time.h"
#include "supervisor/metrics_text.h"

namespace relaypro {

struct MetricsEndpoint::Connection {
    MetricsEndpoint* owner = nullptr;
    bufferevent* bev = nullptr;
    event* deadline = nullptr;
    ~Connection() {
        if (deadline != nullptr) event_free(deadline);
        if (bev != nullptr) bufferevent_free(bev);  // closes the socket
    }
};

namespace {

std::string response(int status, std::string_view reason, std::string_view type, const std::string& body, bool withBody,
                     std::string_view extraHeader = {}) {
    std::string r = "HTTP/1.1 " + std::to_string(status) + " " + std::string(reason) + "\r\n";
    r += "Content-Type: " + std::string(type) + "\r\n";
    r += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    r += "Cache-Control: no-store\r\nConnection: close\r\n";
    if (!extraHeader.empty()) r += std::string(extraHeader) + "\r\n";
    r += "\r\n";
    if (withBody) r += body;
    return r;
}

constexpr std::string_view kText = "text/plain; charset=utf-8";

}  // namespace

MetricsEndpoint::Answer MetricsEndpoint::answer(std::string_view head, const Render& render) {
    // "METHOD SP request-target SP HTTP/1.x": the rest of the head is not needed.
    const std::string_view line = head.substr(0, head.find("\r\n"));
    const size_t sp1 = line.find(' ');
    const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
    const bool wellFormed = sp1 != std::string_view::npos && sp1 > 0 && sp2 != std::string_view::npos &&
                            sp2 > sp1 + 1 && line.substr(sp2 + 1).starts_with("HTTP/1.") && line.size() == sp2 + 9 &&
                            line.find(' ', sp2 + 1) == std::string_view::npos;
    if (!wellFormed) return {400, response(400, "Bad Request", kText, "bad request\n", true)};
    const std::string_view method = line.substr(0, sp1);
    std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    target = target.substr(0, target.find('?'));  // a query string is not part of the path
    const bool head_ = method == "HEAD";
    if (target != "/metrics") return {404, response(404, "Not Found", kText, "not found\n", !head_)};
    if (method != "GET" && !head_) {
        return {405, response(405, "Method Not Allowed", kText, "method not allowed\n", true, "Allow: GET, HEAD")};
    }
    return {200, response(200, "OK", kMetricsContentType, render(), !head_)};
}

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::create(event_base* base, int fd, Render render) {
    std::unique_ptr<MetricsEndpoint> e(new MetricsEndpoint(base, std::move(render)));
    int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (own < 0) return sysError("cannot serve metrics");
    e->listener_ = evconnlistener_new(base, &MetricsEndpoint::onAccept, e.get(),
                                      LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, own);
    if (e->listener_ == nullptr) {
        ::close(own);
        return Error{"cannot serve metrics on the metrics.listen socket"};
    }
    evconnlistener_set_error_cb(e->listener_, &MetricsEndpoint::onAcceptError);
    e->resume_ = evtimer_new(base, &MetricsEndpoint::onResume, e.get());
    return e;
}

MetricsEndpoint::~MetricsEndpoint() {
    for (Connection* c : connections_) delete c;  // NOLINT(cppcoreguidelines-owning-memory)
    connections_.clear();
    if (listener_ != nullptr) evconnlistener_free(listener_);
    if (resume_ != nullptr) event_free(resume_);
}

void MetricsEndpoint::onAccept(evconnlistener*, int fd, struct sockaddr*, int, void* arg) {
    auto* self = static_cast<MetricsEndpoint*>(arg);
    if (self->connections_.size() >= kMaxConnections) {
        ::close(fd);  // a scraper retries at its next interval; nothing here grows
        return;
    }
    auto c = std::make_unique<Connection>();
    c->owner = self;
    c->bev = bufferevent_socket_new(self->base_, fd, BEV_OPT_CLOSE_ON_FREE);
    c->deadline = evtimer_new(self->base_, &MetricsEndpoint::onDeadline, c.get());
    if (c->bev == nullptr || c->deadline == nullptr) {
        if (c->bev == nullptr) ::close(fd);
        return;
    }
    bufferevent_setcb(c->bev, &MetricsEndpoint::onRead, nullptr, &MetricsEndpoint::onEvent, c.get());
    bufferevent_setwatermark(c->bev, EV_READ, 0, kMaxHeadBytes + 1);
    bufferevent_enable(c->bev, EV_READ);
    timeval tv = toTimeval(kDeadline);
    evtimer_add(c->deadline, &tv);
    self->connections_.insert(c.release());
}

void MetricsEndpoint::onAcceptError(evconnlistener* l, void* arg) {
    // Out of descriptors (or memory): accepting again at once would find the same, in a loop.
    auto* self = static_cast<MetricsEndpoint*>(arg);
    evconnlistener_disable(l);
    timeval tv{1, 0};
    evtimer_add(self->resume_, &tv);
}

void MetricsEndpoint::onResume(int, short, void* arg) {
    evconnlistener_enable(static_cast<MetricsEndpoint*>(arg)->listener_);
}

void MetricsEndpoint::onRead(bufferevent* bev, void* arg) {
    auto* c = static_cast<Connection*>(arg);
    evbuffer* in = bufferevent_get_input(bev);
    evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, nullptr);
    if (end.pos < 0) {
        if (evbuffer_get_length(in) <= kMaxHeadBytes) return;  // more to come
        Answer tooLong{431, response(431, "Request Header Fields Too Large", kText, "request head too large\n", true)};
        bufferevent_disable(bev, EV_READ);
        bufferevent_write(bev, tooLong.text.data(), tooLong.text.size());
        bufferevent_setcb(bev, nullptr, &MetricsEndpoint::onWritten, &MetricsEndpoint::onEvent, c);
        return;
    }
    std::string head(static_cast<size_t>(end.pos), '\0');
    evbuffer_copyout(in, head.data(), head.size());
    Answer a = answer(head, c->owner->render_);
    bufferevent_disable(bev, EV_READ);  // one request per connection: whatever follows is not read
    bufferevent_write(bev, a.text.data(), a.text.size());
    bufferevent_setcb(bev, nullptr, &MetricsEndpoint::onWritten, &MetricsEndpoint::onEvent, c);
}

void MetricsEndpoint::onWritten(bufferevent*, void* arg) {
    auto* c = static_cast<Connection*>(arg);
    c->owner->close(c);  // all of the answer is in the kernel
}

void MetricsEndpoint::onEvent(bufferevent*, short, void* arg) {
    auto* c = static_cast<Connection*>(arg);
    c->owner->close(c);  // closed by the client, or an error
}

void MetricsEndpoint::onDeadline(int, short, void* arg) {
    auto* c = static_cast<Connection*>(arg);
    c->owner->close(c);
}

void MetricsEndpoint::close(Connection* c) {
    if (connections_.erase(c) == 1) delete c;  // NOLINT(cppcoreguidelines-owning-memory)
}

}  // namespace relaypro
