#include "worker/connection.h"

#include <openssl/ssl.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <utility>

#include "common/event_time.h"
#include "common/token.h"
#include "worker/http_response.h"
#include "worker/quiet_limit.h"
#include "worker/server.h"
#include "worker/token_request.h"

namespace relaypro {

Connection::Connection(Server& server, uint64_t serial, ListenerKind kind, int fd, const sockaddr_storage& peer)
    : server_(server),
      serial_(serial),
      kind_(kind),
      state_(State::PeekProxy),
      peer_(peer),
      clientText_(peerText(peer)) {
    char id[40];
    static const auto pid = static_cast<unsigned>(::getpid());  // a worker never forks
    std::snprintf(id, sizeof id, "%x-%06llx", pid, static_cast<unsigned long long>(serial));
    id_ = id;
    client_.attach(fd);
    event_base* base = server_.base();
    clientEvents_.assign(base, fd, &Connection::onClientEvent, this);
    evtimer_assign(&timer_, base, &Connection::onTimer, this);
}

Connection::~Connection() {
    event_del(&timer_);
}

void Connection::start() {
    settings_ = server_.settings();
    // The PROXY header check comes first: a trusted balancer must send one, and anyone else
    // sending one to the TLS listener gets a readable 400 instead of a TLS alert.
    bool trusted = inTrustedSources(*settings_, peer_);
    if (!trusted && kind_ == ListenerKind::Http) {
        state_ = State::ReadHead;  // a PROXY header here fails the request-head parser: a 400
        handshakeFinished();
    }
    startHeadTimer();
    // A TLS connection's ClientHello waits its turn in the server's first-flight queue (issue 19).
    // With limits.maxHandshakes it is processed here, in the accept loop, as before: the loop
    // stops at the bound, which counts a handshake once its ClientHello is processed, and what
    // is beyond waits in the kernel's queue.
    if (kind_ == ListenerKind::Https && server_.maxHandshakes() == 0) {
        firstFlightDue_ = true;
        clientEvents_.arm({.read = true});
        return;
    }
    drive();
}

bool Connection::idleBetweenRequests() const {
    // With read_ahead, the next request may already sit in OpenSSL's buffer rather than the socket's.
    return state_ == State::ReadHead && headBuf_.empty() && handshakeDone_ && answeredOne_ &&
           (client_.ssl() == nullptr || SSL_has_pending(client_.ssl()) == 0);
}

void Connection::startHeadTimer() {
    timeval tv = toTimeval(server_.settings()->limits.headerTimeout);
    evtimer_add(&timer_, &tv);
}

// ---------------------------------------------------------------- event plumbing

void Connection::onClientEvent(int, short, void* arg) {
    static_cast<Connection*>(arg)->drive();
}
void Connection::onTimer(int, short, void* arg) {
    static_cast<Connection*>(arg)->timedOut();
}

void Connection::shedNow(counters::Id id) {
    front_.shed(id);
    server_.connectionClosed(this);  // deletes this
}

void Connection::firstFlightTurn(bool shed) {
    queued_ = false;
    if (shed) return shedNow(counters::Id::ShedAfterWaiting);  // deletes this
    drive(true);
}

void Connection::drive(bool firstFlightTurn) {
    if (firstFlightDue_ && !firstFlightTurn) {
        // Its bytes came: it waits for the CPU in the server's queue, not in libevent's.
        if (!queued_) {
            // Its first bytes: admitted now if it was not at the accept (it came in while the
            // worker was not limiting, silent), so that connections opened ahead and then all
            // sending at once cannot pass the admission by being open already.
            if (!admitted_ && !server_.admitFirstBytes()) return shedNow(counters::Id::ShedAtAccept);  // deletes this
            admitted_ = true;
            queued_ = true;
            clientEvents_.arm({});
            server_.queueFirstFlight(serial_);
        }
        return;
    }
    clientWants_ = {};
    while (state_ != State::Closed && step()) {
    }
    if (state_ == State::Closed) {
        server_.connectionClosed(this);  // deletes this
        return;
    }
    clientEvents_.arm(clientWants_);
}

bool Connection::step() {
    switch (state_) {
        case State::PeekProxy:
            return front_.peekProxy();
        case State::Handshake:
            return front_.handshake();
        case State::ReadHead:
            return exchange_.readHead();
        case State::ReadBody:
            return token_.readBody();
        case State::Respond:
            return stepRespond();
        case State::Tunnel:   // the tunnel runs on its own events
        case State::Forward:  // likewise
        case State::Verifying:
        case State::Authorizing:
        case State::Counting:
        case State::Dialing:
        case State::Closed:
            return false;
    }
    return false;
}

// ---------------------------------------------------------------- answers from elsewhere

void Connection::passwordChecked(bool ok) {
    if (auth_.passwordChecked(ok)) drive();
}

void Connection::failureCounted(uint64_t ticket) {
    if (auth_.failureCounted(ticket)) drive();
}

// ---------------------------------------------------------------- the supervisor's answers

void Connection::verified(uint64_t ticket, VerifyResult result, uint32_t retryAfterSeconds) {
    if (token_.verified(ticket, result, retryAfterSeconds)) drive();
}

uint64_t Connection::nextTicket() {
    // Unique per request, not per connection: an answer to an earlier request of this
    // connection (a late one, or one to a repeated ask) must never decide a later request.
    return (serial_ << kTicketRequestBits) | (++requests_ & ((uint64_t{1} << kTicketRequestBits) - 1));
}

void Connection::startDial(DialPurpose purpose) {
    dialer_ = std::make_unique<UpstreamDialer>(server_, [this](DialOutcome&& o) { dialed(std::move(o)); });
    uint16_t port = purpose == DialPurpose::Tunnel ? head_.port : (head_.portGiven ? head_.port : 80);
    dialer_->start(*settings_,
                   settings_->policy.dialName(head_.host, head_.hostIsIpv6, std::chrono::system_clock::now()), port,
                   purpose);
}

void Connection::dialed(DialOutcome&& o) {
    // Called from the dialer's own event: it is safe to drop the dialer after this function.
    std::unique_ptr<UpstreamDialer> dialer = std::move(dialer_);
    if (!o.ok) {
        logRefused(o.status, o.code, {{"target", target_}, {"auth", authScheme_}, {"detail", o.detail}});
        state_ = State::ReadHead;
        Response r = errorResponse(o.status, o.code);
        respond(std::move(r), head_.keepAlive() ? AfterResponse::NextRequest : AfterResponse::Close);
        drive();
        return;
    }
    upstream_.attach(o.fd, o.ssl);
    const bool forward = exchange_.forwarding();
    Tunnel::Plan plan;
    plan.mode = forward ? Tunnel::Mode::Forward : Tunnel::Mode::BothWays;
    plan.toClient = std::move(o.leftover);
    plan.quietLimit =
        relaypro::quietLimit(forward ? QuietPhase::Forward : QuietPhase::Tunnel, settings_->limits.idleTimeout);
    // The tunnel: early bytes the client sent after its CONNECT go up first.
    plan.toUpstream = forward ? exchange_.takeForwardRequest(o.viaHttpProxy, o.proxyAuthorization)
                              : headBuf_.substr(head_.headLength);
    sodium_memzero(o.proxyAuthorization.data(), o.proxyAuthorization.size());
    plan.byteTotals = server_.counters().slot(counters::Id::BytesToUpstream);
    tunnel_ = std::make_unique<Tunnel>(server_.base(), server_.buffers(), client_, upstream_, std::move(plan),
                                       [this](std::string_view result) { tunnelEnded(result); });
    if (!forward) {
        out_ = "HTTP/1.1 200 Connection established\r\n\r\n";
        server_.counters().observeConnect(Clock::now() - headAt_);
        outOffset_ = 0;
        after_ = AfterResponse::StartTunnel;
        state_ = State::Respond;
    } else {
        startTunnel(State::Forward);
    }
    drive();
}

// ---------------------------------------------------------------- responses

// Every refusal is logged once, the same way, and counted (the worker's Pong reports it).
void Connection::logRefused(int status, std::string_view reason, std::vector<LogField> more) {
    std::vector<LogField> fields{{"status", status}, {"reason", std::string(reason)}, {"client", clientText_}};
    for (auto& f : more) fields.push_back(std::move(f));
    server_.log().info("request refused", std::move(fields));
    server_.countRefused(reason);
}

void Connection::refuse(int status, std::string_view code, std::string_view allow) {
    Response r = errorResponse(status, code);
    if (!allow.empty()) r.headers.emplace_back("Allow", std::string(allow));
    bool malformed = status == 400 || status == 408 || status == 431 || status == 505;
    std::vector<LogField> fields;
    if (!target_.empty()) fields.emplace_back("target", target_);
    if (headComplete_) fields.emplace_back("auth", authSchemeOf(head_));
    logRefused(status, code, std::move(fields));
    // A body no route read leaves the connection out of step: close after the answer.
    bool unreadBody = headComplete_ && head_.hasBody();
    respond(std::move(r), malformed || !headComplete_ || !head_.keepAlive() || unreadBody ? AfterResponse::Close
                                                                                          : AfterResponse::NextRequest);
}

void Connection::respond(Response r, AfterResponse after) {
    // A client that asked to close (Connection: close, or HTTP/1.0 without keep-alive) gets
    // the connection closed after this answer, whatever the route.
    if (after == AfterResponse::NextRequest && headComplete_ && !head_.keepAlive()) after = AfterResponse::Close;
    if (server_.draining() || after == AfterResponse::Close) {
        r.close = true;
        after = AfterResponse::Close;
    }
    out_ = serialize(r);
    outOffset_ = 0;
    after_ = after;
    state_ = State::Respond;
    // Whatever timer the request had (its head's, the supervisor's answer): from here only the
    // send deadline counts, armed when the client stops taking the answer.
    evtimer_del(&timer_);
}

bool Connection::stepRespond() {
    while (outOffset_ < out_.size()) {
        size_t n = 0;
        Io io = client_.write(out_.data() + outOffset_, out_.size() - outOffset_, n);
        if (io == Io::WantRead || io == Io::WantWrite) {
            clientWants_.add(io);
            sendBlocked();
            return false;
        }
        if (io != Io::Done) {
            close("closed_by_client");
            return false;
        }
        sendProgressed();
        outOffset_ += n;
    }
    std::string().swap(out_);
    outOffset_ = 0;
    switch (after_) {
        case AfterResponse::Close:
            close("closed");
            return false;
        case AfterResponse::StartTunnel:
            std::string().swap(headBuf_);
            head_ = RequestHead{};
            return startTunnel(State::Tunnel);
        case AfterResponse::StartForward:
        case AfterResponse::NextRequest:
            finishRequest();
            return true;
    }
    return false;
}

void Connection::finishRequest() {
    answeredOne_ = true;
    // Keep what the client pipelined after this request; start the next head's clock.
    size_t used = headComplete_ ? head_.headLength + token_.bodyFromHead() : headBuf_.size();
    headBuf_.erase(0, std::min(used, headBuf_.size()));
    token_.finish();
    if (headBuf_.empty()) std::string().swap(headBuf_);
    headScanned_ = 0;
    head_ = RequestHead{};
    headComplete_ = false;
    target_.clear();
    identity_.clear();
    authScheme_.clear();
    state_ = State::ReadHead;
    if (server_.draining() && headBuf_.empty()) {
        close("drained");
        return;
    }
    startHeadTimer();
}

// ---------------------------------------------------------------- the tunnel

bool Connection::startTunnel(State state) {
    // From here the tunnel's own events and deadlines drive both sides.
    clientWants_ = {};
    clientEvents_.disarm();
    evtimer_del(&timer_);
    state_ = state;
    server_.tunnelOpened(targetPort());  // the request's head may be gone by now
    if (auto end = tunnel_->start()) close(*end);
    return false;
}

uint16_t Connection::targetPort() const {
    // target_ is "host:port" or "[v6]:port"; the port was parsed as a 16-bit number above 0.
    const size_t colon = target_.rfind(':');
    unsigned long port = colon == std::string::npos ? 0 : std::strtoul(target_.c_str() + colon + 1, nullptr, 10);
    return static_cast<uint16_t>(port <= 65535 ? port : 0);
}

std::optional<ipc::TunnelRow> Connection::tunnelRow(Clock::time_point now) const {
    if (state_ != State::Tunnel || !tunnel_) return std::nullopt;
    using Auth = ipc::TunnelRow::Auth;
    ipc::TunnelRow row;
    row.auth = authScheme_ == "Bearer" ? Auth::Bearer : authScheme_ == "Basic" ? Auth::Basic : Auth::None;
    if (row.auth != Auth::None) {
        row.identity = isPrintableResponderId(identity_) ? identity_ : ipc::wireIdentity(identity_);
        if (row.identity.empty()) row.auth = Auth::None;
    }
    const bool sourceFits = !clientText_.empty() && clientText_.size() <= ipc::TunnelRow::kMaxSourceBytes;
    row.source = sourceFits ? clientText_ : "unknown";
    row.targetPort = targetPort();
    if (row.targetPort == 0) return std::nullopt;  // cannot happen; the wire has no such tunnel
    const auto age = std::chrono::duration_cast<std::chrono::milliseconds>(now - tunnel_->startedAt()).count();
    row.ageMs = static_cast<uint64_t>(std::max<int64_t>(0, age));
    row.bytesUp = tunnel_->bytesUp();
    row.bytesDown = tunnel_->bytesDown();
    return row;
}

void Connection::tunnelEnded(std::string_view result) {
    closeNow(result);  // deletes this (and the tunnel)
}

// ---------------------------------------------------------------- ends

std::optional<std::chrono::nanoseconds> Connection::quietLimit() const {
    return relaypro::quietLimit(QuietPhase::Answer, settings_->limits.idleTimeout);
}

void Connection::sendBlocked() {
    if (clientBlockedSince_ != Clock::time_point{}) return;  // its deadline is armed already
    clientBlockedSince_ = Clock::now();
    if (evtimer_pending(&timer_, nullptr) == 0) armDeadline();
}

void Connection::sendProgressed() {
    // The armed deadline may fire for nothing; timedOut() then arms the next one.
    clientBlockedSince_ = Clock::time_point{};
}

// The timer while a request is answered: the send deadline of a client that takes nothing.
void Connection::armDeadline() {
    if (state_ != State::Respond) return;
    auto limit = quietLimit();
    if (!limit || clientBlockedSince_ == Clock::time_point{}) {
        evtimer_del(&timer_);
        return;
    }
    timeval tv =
        toTimeval(std::max<Clock::duration>(Clock::duration::zero(), clientBlockedSince_ + *limit - Clock::now()));
    evtimer_add(&timer_, &tv);
}

void Connection::timedOut() {
    if (state_ == State::Respond) {
        auto limit = quietLimit();
        if (limit && clientBlockedSince_ != Clock::time_point{} && Clock::now() - clientBlockedSince_ >= *limit) {
            // A client that takes nothing of what the relay holds for it (one that pipelines
            // requests and never reads) gives its buffers, descriptor and maxConnections slot back.
            server_.log().info("connection closed",
                               {{"conn", id_}, {"client", clientText_}, {"result", "send_timeout"}});
            closeNow("send_timeout");
            return;
        }
        armDeadline();
        return;
    }
    if (state_ == State::ReadHead && handshakeDone_ && !headBuf_.empty()) {
        return requestTimedOut({});  // part of a head arrived, the rest did not
    }
    if (state_ == State::ReadBody) return requestTimedOut({{"path", std::string(kTokenPath)}});
    if (state_ == State::Counting) {
        auth_.countTimedOut();
        drive();
        return;
    }
    if (state_ == State::Verifying) {
        if (token_.verifyTimerFired()) drive();
        return;
    }
    if (state_ == State::PeekProxy || state_ == State::Handshake || state_ == State::ReadHead) {
        closeNow(state_ == State::ReadHead && handshakeDone_ ? "idle" : "handshake_timeout");
    }
}

// A request whose head or body did not all come in time: a 408 (best effort), then the close.
void Connection::requestTimedOut(std::vector<LogField> more) {
    Response r = errorResponse(408, "request_timeout");
    r.close = true;
    std::string bytes = serialize(r);
    size_t n = 0;
    (void)client_.write(bytes.data(), bytes.size(), n);
    logRefused(408, "request_timeout", std::move(more));
    closeNow("request_timeout");
}

void Connection::closeNow(std::string_view result) {
    close(result);
    server_.connectionClosed(this);  // deletes this
}

void Connection::logTunnelClosed(std::string_view result) {
    auto now = std::chrono::steady_clock::now();
    std::vector<LogField> f{{"conn", id_}, {"client", clientText_}};
    if (!identity_.empty()) f.emplace_back(authScheme_ == "Bearer" ? "responder" : "user", identity_);
    f.emplace_back("target", target_);
    f.emplace_back("bytesUp", tunnel_->bytesUp());
    f.emplace_back("bytesDown", tunnel_->bytesDown());
    f.emplace_back("durationMs",
                   std::chrono::duration_cast<std::chrono::milliseconds>(now - tunnel_->startedAt()).count());
    f.emplace_back("result", std::string(result));
    server_.log().info(state_ == State::Forward ? "request forwarded" : "tunnel closed", std::move(f));
}

void Connection::handshakeStarted() {
    // Once: a handshake that stopped counting (Server::kStalledAfter) and whose client then sends a
    // byte now and then must not count again with a fresh start (the review of the ClientHello
    // rule: trickling clients re-counted so held the bound until headerTimeout).
    if (wasOpening_ || handshakeDone_) return;
    opening_ = wasOpening_ = true;
    server_.openingStarted(serial_);
}

bool Connection::forgetOpening() {
    bool was = opening_;
    opening_ = false;
    return was;
}

void Connection::handshakeFinished() {
    handshakeDone_ = true;
    if (opening_) {
        opening_ = false;
        server_.openingEnded();
    }
}

void Connection::close(std::string_view result) {
    if (state_ == State::Closed) return;
    queued_ = false;  // (an entry left in the server's queue is passed over)
    if (opening_) {
        opening_ = false;
        server_.openingEnded();
    }
    if (state_ == State::Tunnel || state_ == State::Forward) {
        logTunnelClosed(result);
        server_.tunnelClosed();
    }
    if (dialer_) dialer_.reset();
    tunnel_.reset();
    clientEvents_.disarm();
    event_del(&timer_);
    if (client_.tls() && handshakeDone_) {
        // Best effort, never waiting: tell the client we are done so it sees a clean end.
        SSL_set_quiet_shutdown(client_.ssl(), 0);
        (void)client_.shutdownWrite();
    }
    client_.reset();
    upstream_.reset();
    state_ = State::Closed;
}

}  // namespace relaypro
