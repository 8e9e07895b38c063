#include "supervisor/metrics_endpoint.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <fcntl.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstring>
#include <memory>

#include "supervisor/metrics_text.h"

namespace relaypro {

namespace {

void answer(evhttp_request* req, int status, const char* reason, const std::string& body, const char* type,
            bool head = false) {
    evkeyvalq* out = evhttp_request_get_output_headers(req);
    evhttp_add_header(out, "Content-Type", type);
    evhttp_add_header(out, "Cache-Control", "no-store");
    evbuffer* buf = evbuffer_new();
    if (buf == nullptr) return evhttp_send_error(req, 500, nullptr);
    if (!head) evbuffer_add(buf, body.data(), body.size());
    evhttp_send_reply(req, status, reason, buf);
    evbuffer_free(buf);
}

}  // namespace

Result<std::unique_ptr<MetricsEndpoint>> MetricsEndpoint::create(event_base* base, int fd, Render render) {
    std::unique_ptr<MetricsEndpoint> e(new MetricsEndpoint(std::move(render)));
    e->http_ = evhttp_new(base);
    if (e->http_ == nullptr) return Error{"cannot create the metrics endpoint"};
    // Every method reaches onRequest, which answers 405 itself (evhttp would say 501).
    evhttp_set_allowed_methods(e->http_, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT |
                                             EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE |
                                             EVHTTP_REQ_CONNECT | EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(e->http_, 8192);
    evhttp_set_max_body_size(e->http_, 0);
    evhttp_set_timeout(e->http_, 10);
    evhttp_set_gencb(e->http_, &MetricsEndpoint::onRequest, e.get());
    // evhttp closes what it was given when freed: it gets its own descriptor.
    int own = ::fcntl(fd, F_DUPFD_CLOEXEC, 3);
    if (own < 0) return sysError("cannot serve metrics");
    if (evhttp_accept_socket_with_handle(e->http_, own) == nullptr) {
        ::close(own);
        return Error{"cannot serve metrics on the metrics.listen socket"};
    }
    return e;
}

MetricsEndpoint::~MetricsEndpoint() {
    if (http_ != nullptr) evhttp_free(http_);
}

void MetricsEndpoint::onRequest(evhttp_request* req, void* arg) {
    auto* self = static_cast<MetricsEndpoint*>(arg);
    const char* uri = evhttp_request_get_uri(req);
    // The path, without a query string (Prometheus sends none; others may).
    std::string path = uri != nullptr ? uri : "";
    path = path.substr(0, path.find('?'));
    if (path != "/metrics") {
        return answer(req, 404, "Not Found", "not found\n", "text/plain; charset=utf-8");
    }
    const evhttp_cmd_type method = evhttp_request_get_command(req);
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
        return answer(req, 405, "Method Not Allowed", "method not allowed\n", "text/plain; charset=utf-8");
    }
    answer(req, 200, "OK", self->render_(), kMetricsContentType, method == EVHTTP_REQ_HEAD);
}

}  // namespace relaypro
