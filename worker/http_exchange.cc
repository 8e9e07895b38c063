#include "worker/http_exchange.h"

#include <algorithm>
#include <chrono>
#include <utility>

#include "common/text.h"
#include "worker/connection.h"
#include "worker/router.h"
#include "worker/server.h"

namespace relaypro {
namespace {

constexpr size_t kHeadReadChunk = 4096;

}  // namespace

bool isHopByHop(std::string_view name, const RequestHead& h) {
    static constexpr std::string_view kNames[] = {"Connection",        "Keep-Alive", "TE",  "Trailer",
                                                  "Transfer-Encoding", "Upgrade",    "Host"};
    for (auto n : kNames) {
        if (equalsIgnoreCase(name, n)) return true;
    }
    if (name.size() >= 6 && equalsIgnoreCase(name.substr(0, 6), "Proxy-")) return true;
    // Fields the client listed in Connection are hop-by-hop too.
    if (auto conn = h.field("Connection")) {
        std::string_view v = *conn;
        while (!v.empty()) {
            size_t comma = v.find(',');
            if (equalsIgnoreCase(trimSpace(v.substr(0, comma)), name)) return true;
            if (comma == std::string_view::npos) break;
            v.remove_prefix(comma + 1);
        }
    }
    return false;
}

bool HttpExchange::readHead() {
    const auto& s = *c_.server_.settings();
    if (!c_.headBuf_.empty() && !c_.headComplete_) {
        // Bytes already here (pipelined after the previous request): parse them first.
        HeadResult r = parseRequestHead(c_.headBuf_, s.limits.maxHeaderBytes, c_.head_, c_.headScanned_);
        if (r.status != HeadStatus::Incomplete) return parsed(r);
    }
    size_t before = c_.headBuf_.size();
    size_t room = s.limits.maxHeaderBytes + 1 - std::min<size_t>(before, s.limits.maxHeaderBytes);
    c_.headBuf_.resize(before + std::min(kHeadReadChunk, room));
    size_t n = 0;
    Io io = c_.client_.read(c_.headBuf_.data() + before, c_.headBuf_.size() - before, n);
    c_.headBuf_.resize(before + n);
    if (io == Io::WantRead || io == Io::WantWrite) {
        c_.clientWants_.add(io);
        if (c_.headBuf_.empty()) std::string().swap(c_.headBuf_);  // an idle keep-alive connection holds no buffer
        return false;
    }
    if (io != Io::Done) {
        c_.close(io == Io::Eof ? "closed_by_client" : "error");
        return false;
    }
    HeadResult r = parseRequestHead(c_.headBuf_, s.limits.maxHeaderBytes, c_.head_, c_.headScanned_);
    if (r.status == HeadStatus::Incomplete) return true;  // read more
    return parsed(r);
}

bool HttpExchange::parsed(const HeadResult& r) {
    if (r.status == HeadStatus::Invalid) {
        c_.refuse(r.error.status, r.error.code);
    } else {
        c_.headComplete_ = true;
        c_.headAt_ = Connection::Clock::now();
        route();
    }
    return c_.state_ != Connection::State::Closed;
}

void HttpExchange::route() {
    evtimer_del(&c_.timer_);
    c_.settings_ = c_.server_.settings();
    const RequestHead& head = c_.head_;
    Route route = routeRequest(c_.kind_, head);
    // Only the token endpoint reads a body. Anywhere else one would stay in the buffer and be
    // read as the next request: two answers to one, which poisons the response queue of any
    // pooling intermediary (RFC 9112 section 6.3). The answer is a 400 (an error route keeps its
    // own status), and refuse() closes the connection after it.
    if (head.hasBody() && (route.kind == Route::Kind::Health || route.kind == Route::Kind::CaPem)) {
        return c_.refuse(400, "bad_request");
    }
    switch (route.kind) {
        case Route::Kind::Error:
            return c_.refuse(route.status, route.code, route.allow);
        case Route::Kind::Health: {
            Response r;
            r.status = c_.server_.draining() ? 503 : 200;
            r.body = c_.server_.draining() ? R"({"status":"draining"})" : R"({"status":"ok"})";
            return answerHere(std::move(r));
        }
        case Route::Kind::CaPem: {
            Response r;
            r.body = c_.settings_->caPem;
            r.contentType = "application/x-pem-file";
            return answerHere(std::move(r));
        }
        case Route::Kind::Token:
            return c_.token_.start();
        case Route::Kind::Connect:
            c_.target_ = targetText();
            return c_.auth_.check();
        case Route::Kind::Forward:
            return forward();
    }
}

void HttpExchange::answerHere(Response r) {
    r.headOnly = c_.head_.method == "HEAD";
    c_.respond(std::move(r), Connection::AfterResponse::NextRequest);
}

void HttpExchange::forward() {
    const RequestHead& head = c_.head_;
    uint16_t port = head.portGiven ? head.port : 80;
    std::string host = head.hostIsIpv6 ? "[" + std::string(head.host) + "]" : std::string(head.host);
    c_.target_ = host + ":" + std::to_string(port);
    if (head.hasBody()) return c_.refuse(400, "bad_request");
    if (!c_.settings_->policy.allowsPlainHttp(head.host, head.hostIsIpv6, port, std::chrono::system_clock::now())) {
        return c_.refuse(403, "target_not_allowed");
    }
    // The request as the console will see it: origin-form, no hop-by-hop or Proxy-*
    // fields, one Host, Connection: close.
    std::string hostField = host;
    if (head.portGiven && port != 80) hostField += ":" + std::to_string(port);
    std::string req =
        std::string(head.method) + " " + std::string(head.path) + " HTTP/1.1\r\nHost: " + hostField + "\r\n";
    for (const auto& f : head.fields) {
        if (isHopByHop(f.name, head)) continue;
        req += std::string(f.name) + ": " + std::string(f.value) + "\r\n";
    }
    req += "Connection: close\r\n\r\n";
    forwardRequest_ = std::move(req);
    c_.state_ = Connection::State::Dialing;
    c_.startDial(DialPurpose::PlainHttp);
}

std::string HttpExchange::takeForwardRequest(bool viaHttpProxy, std::string_view proxyAuthorization) {
    std::string req = std::move(forwardRequest_);
    forwardRequest_.clear();
    if (viaHttpProxy) {
        // An HTTP proxy takes the request in absolute form, and its credentials with it (config.md:
        // user:password@ is sent as Proxy-Authorization: Basic). The client's own Proxy-* fields
        // were dropped when the request was written.
        // Sized once, so that no reallocation leaves a copy of the credentials behind; the
        // tunnel wipes the request once it is sent.
        static constexpr std::string_view kField = "Proxy-Authorization: ";
        req.reserve(req.size() + 7 + c_.target_.size() + kField.size() + proxyAuthorization.size() + 2);
        size_t sp = req.find(' ');
        req.insert(sp + 1, "http://" + c_.target_);
        if (!proxyAuthorization.empty()) {
            const size_t at = req.find("\r\n") + 2;
            req.insert(at, "\r\n");
            req.insert(at, proxyAuthorization);
            req.insert(at, kField);
        }
    }
    return req;
}

std::string HttpExchange::targetText() const {
    std::string host(c_.head_.host);
    return (c_.head_.hostIsIpv6 ? "[" + host + "]" : host) + ":" + std::to_string(c_.head_.port);
}

}  // namespace relaypro
