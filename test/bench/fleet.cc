#include "test/bench/fleet.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sodium.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <new>
#include <string>
#include <vector>

#include "worker/source_port.h"

namespace loadgen::fleet {
namespace {

timeval toTimeval(uint64_t ms) {
    return timeval{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
}

// An HTTP answer's head (and, with a Content-Length, its body) once all of it is buffered.
struct Answer {
    int status = 0;  // -1: malformed or too long
    uint64_t retryAfter = 0;
    size_t headBytes = 0, bodyBytes = 0;
};

uint64_t headerNumber(const std::string& lowerHead, const char* name) {
    size_t at = lowerHead.find(name);
    return at == std::string::npos ? 0 : std::strtoull(lowerHead.c_str() + at + std::strlen(name), nullptr, 10);
}

// False while incomplete; `withBody`: the body too must be there.
bool peekAnswer(evbuffer* in, Answer& a, bool withBody) {
    evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, nullptr);
    if (end.pos < 0) {
        if (evbuffer_get_length(in) > 16384) a.status = -1;
        return a.status != 0;
    }
    std::string head(static_cast<size_t>(end.pos) + 4, '\0');
    evbuffer_copyout(in, head.data(), head.size());
    for (char& c : head) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (std::sscanf(head.c_str(), "http/1.%*d %d", &a.status) != 1) a.status = -1;
    a.retryAfter = headerNumber(head, "\r\nretry-after:");
    a.headBytes = head.size();
    a.bodyBytes = withBody ? headerNumber(head, "\r\ncontent-length:") : 0;
    return a.status < 0 || evbuffer_get_length(in) >= a.headBytes + a.bodyBytes;
}

Counter statusFailure(int status, bool token) {
    switch (status) {
        case 401:
            return token ? kToken401 : kStatusOther;
        case 407:
            return token ? kTokenOther : kStatus407;
        case 429:
            return token ? kToken429 : kStatus429;
        case 503:
            return token ? kToken503 : kStatus503;
        default:
            return token ? kTokenOther : kStatusOther;
    }
}

}  // namespace

int Share::run() {
    if (!setUp()) return 2;
    event_base_dispatch(base_);
    tearDown();
    return 0;
}

bool Share::setUp() {
    if (!parseHostPort(o_.proxy, proxy_.ss, proxy_.len)) {
        std::fprintf(stderr, "loadgen: --proxy %s is not a numeric host:port\n", o_.proxy.c_str());
        return false;
    }
    if (!o_.sources.empty()) {
        const std::string& src = o_.sources[static_cast<size_t>(processIndex_) % o_.sources.size()];
        if (!parseHostPort(src + ":0", source_.ss, source_.len, true)) {
            std::fprintf(stderr, "loadgen: --source %s is not a numeric address\n", src.c_str());
            return false;
        }
        haveSource_ = true;
    }
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx_, SSL_OP_IGNORE_UNEXPECTED_EOF);
    // An idle tunnel gives its 2 x ~17 KiB of record buffers back.
    SSL_CTX_set_mode(ctx_, SSL_MODE_RELEASE_BUFFERS);
    if (!o_.groups.empty() && SSL_CTX_set1_groups_list(ctx_, o_.groups.c_str()) != 1) {
        std::fprintf(stderr, "loadgen: --groups %s: not a list of TLS groups\n", o_.groups.c_str());
        return false;
    }
    if (!o_.cafile.empty()) {
        if (SSL_CTX_load_verify_locations(ctx_, o_.cafile.c_str(), nullptr) != 1) {
            std::fprintf(stderr, "loadgen: cannot load %s\n", o_.cafile.c_str());
            return false;
        }
        SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
    }
    // Each Responder keeps its own newest ticket; OpenSSL's cache would share them.
    SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx_, &Share::onNewSession);
    base_ = event_base_new();
    timeval iv = toTimeval(static_cast<uint64_t>(o_.interval * 1000));
    tickTimeout_ = event_base_init_common_timeout(base_, &iv);
    responders_.resize(count_);
    for (uint64_t i = 0; i < count_; ++i) {
        responders_[i].share = this;
        responders_[i].index = first_ + i;
        responders_[i].timer = event_new(base_, -1, 0, &Share::onTimer, &responders_[i]);
    }
    rng_ = (static_cast<uint64_t>(getpid()) << 32) ^ nowMs() ^ 0x9E3779B97F4A7C15ull;
    start_ = nowMs();
    housekeeping_ = event_new(base_, -1, EV_PERSIST, &Share::onHousekeeping, this);
    timeval tenth{0, 100000};
    event_add(housekeeping_, &tenth);
    housekeepingDue_ = nowMs() + 100;
    stop_ = evsignal_new(base_, SIGTERM, &Share::onStop, this);
    interrupt_ = evsignal_new(base_, SIGINT, &Share::onStop, this);
    event_add(stop_, nullptr);
    event_add(interrupt_, nullptr);
    onHousekeeping(-1, 0, this);
    return true;
}

void Share::tearDown() {
    for (Responder& r : responders_) {
        event_free(r.timer);
        if (r.ticket != nullptr) SSL_SESSION_free(r.ticket);
    }
    event_free(housekeeping_);
    event_free(stop_);
    event_free(interrupt_);
    event_base_free(base_);
    SSL_CTX_free(ctx_);
}

// Every 100 ms: start what the ramp says is due, fill the token slots; every second, look at
// every Responder's deadlines and refresh time (a scan of 12,500 costs microseconds, less than a
// timer each would).
void Share::onHousekeeping(int, short what, void* arg) {
    auto* s = static_cast<Share*>(arg);
    if (s->stopping_) return;
    uint64_t now = nowMs();
    // Against the tick's schedule as libevent keeps it for a persistent timer: the last one's
    // plus 100 ms, or 100 ms from now once it has fallen a whole period behind.
    if (what != 0 && s->housekeepingDue_ != 0) {  // (not the first, direct call)
        if (now > s->housekeepingDue_) s->counters_.lagged(now - s->housekeepingDue_);
        s->housekeepingDue_ += 100;
        if (s->housekeepingDue_ <= now) s->housekeepingDue_ = now + 100;
    }
    double perSecond = s->o_.ramp / s->o_.processes;
    auto due = static_cast<uint64_t>(static_cast<double>(now - s->start_) / 1000.0 * perSecond) + 1;
    while (s->started_ < std::min(due, s->count_)) {
        s->counters_.add(kStarted);
        s->beginAttempt(s->responders_[s->started_++]);
    }
    s->pumpTokens();
    s->pumpConnects();
    if (now >= s->nextScan_) {
        s->nextScan_ = now + 1000;
        s->scan();
    }
}

void Share::scan() {
    uint64_t now = nowMs();
    for (uint64_t i = 0; i < started_; ++i) {
        Responder& r = responders_[i];
        if (r.tunnelDeadline != 0 && now >= r.tunnelDeadline) tunnelFailed(r, kTimeout);
        if (r.tokenBev != nullptr && now >= r.tokenDeadline) tokenFailed(r, kTimeout);
        if (!r.token.empty() && r.refreshAt != 0 && now >= r.refreshAt) {
            r.refreshAt = 0;
            requestToken(r);
        }
    }
}

// The end of the run: every connection closes (cleanly, so that no ticket is spoiled).
void Share::onStop(int, short, void* arg) {
    auto* s = static_cast<Share*>(arg);
    s->stopping_ = true;
    s->tokenQueue_.clear();
    s->connectQueue_.clear();
    for (Responder& r : s->responders_) {
        if (r.tunnel == Responder::Tunnel::Open) s->counters_.add(kOpen, -1);
        r.tunnel = Responder::Tunnel::Idle;
        s->closeBev(r.tunnelBev);
        s->closeBev(r.tokenBev);
        event_del(r.timer);
    }
    event_base_loopexit(s->base_, nullptr);
}

void Share::beginAttempt(Responder& r) {
    if (stopping_) return;
    if (holdsToken(r)) startTunnel(r);
}

// True when `r` holds a token that has not expired; else it asks for one (and its tunnel starts
// once granted: tokenGranted).
bool Share::holdsToken(Responder& r) {
    if (!r.token.empty() && nowMs() >= r.tokenExpires) {
        r.token.clear();
        counters_.add(kTokensHeld, -1);
    }
    if (!r.token.empty()) return true;
    r.tunnel = Responder::Tunnel::NeedToken;
    requestToken(r);
    return false;
}

// --connect-concurrency: a tunnel starts now if a slot is free and no one waits before it, else
// it waits its turn (first come, first served).
void Share::startTunnel(Responder& r) {
    if (o_.connectConcurrency > 0 && (connecting_ >= o_.connectConcurrency || !connectQueue_.empty())) {
        r.tunnel = Responder::Tunnel::Backoff;  // no timer armed: pumpConnects takes it
        connectQueue_.push_back(&r);
        counters_.add(kConnectsQueued);
        return;
    }
    openTunnel(r);
}

// Called when a slot frees and from the housekeeping tick; not again from within itself (a
// tunnel that fails at once frees its slot inside openTunnel).
void Share::pumpConnects() {
    if (pumpingConnects_) return;
    pumpingConnects_ = true;
    while (!stopping_ && !connectQueue_.empty() && connecting_ < o_.connectConcurrency) {
        Responder* r = connectQueue_.front();
        connectQueue_.pop_front();
        if (holdsToken(*r)) openTunnel(*r);  // its turn: not to the back of the queue again
    }
    pumpingConnects_ = false;
}

void Share::scheduleBackoff(Responder& r, uint64_t ms) {
    r.tunnel = Responder::Tunnel::Backoff;
    timeval tv = toTimeval(ms);
    event_add(r.timer, &tv);
}

uint64_t Share::backoffMs(uint16_t attempts) {
    double ceiling = std::min(o_.backoffMaxMs, o_.backoffMinMs * std::ldexp(1.0, std::min<int>(attempts, 30)));
    return static_cast<uint64_t>(uniform() * ceiling);
}

uint64_t Share::retryAfterMs(uint64_t seconds) {
    double ms = static_cast<double>(std::max<uint64_t>(seconds, 1)) * 1000.0;
    return static_cast<uint64_t>(ms * (1.0 + uniform() / 2));
}

// A socket bound to the source address and a random port of the range (RelayPro's own
// bindSourcePort, worker/source_port.h), connecting to the relay; -1 when eight tries found no
// free four-tuple.
int Share::connectFromRandomPort() {
    const relaypro::PortRange range{static_cast<uint16_t>(o_.sourcePortLow), static_cast<uint16_t>(o_.sourcePortHigh)};
    for (int attempt = 0; attempt < 8; ++attempt) {
        int fd = ::socket(source_.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) return -1;
        if (relaypro::bindSourcePort(fd, source_.ss, range, 1) &&
            (::connect(fd, reinterpret_cast<const sockaddr*>(&proxy_.ss), proxy_.len) == 0 || errno == EINPROGRESS)) {
            return fd;
        }
        ::close(fd);  // the port is held by a socket that does not share, or the four-tuple is taken
    }
    return -1;
}

// A TLS connection to the relay for `r`, resuming with its ticket; not yet connecting unless
// `connecting` says so.
bufferevent* Share::dial(Responder& r, bool& connecting) {
    int fd = -1;
    connecting = false;
    if (haveSource_ && o_.sourcePortLow != 0) {
        fd = connectFromRandomPort();
        if (fd < 0) return nullptr;
        connecting = true;
    } else if (haveSource_) {
        // Bound to the source first; the port is chosen at connect time (see loadgen.cc).
        fd = ::socket(source_.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int one = 1;
        if (fd < 0 || setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0 ||
            bind(fd, reinterpret_cast<sockaddr*>(&source_.ss), source_.len) != 0) {
            if (fd >= 0) ::close(fd);
            return nullptr;
        }
    }
    SSL* ssl = SSL_new(ctx_);
    SSL_set_app_data(ssl, &r);
    if (!o_.servername.empty()) {
        // SSL_set_tlsext_host_name without its C cast
        SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                 const_cast<char*>(o_.servername.c_str()));
        if (!o_.cafile.empty()) SSL_set1_host(ssl, o_.servername.c_str());
    }
    if (r.ticket != nullptr) SSL_set_session(ssl, r.ticket);
    bufferevent* bev =
        bufferevent_openssl_socket_new(base_, fd, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev == nullptr) {
        SSL_free(ssl);
        if (fd >= 0) ::close(fd);
        return nullptr;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    return bev;
}

// Closes as if close_notify had been exchanged: otherwise OpenSSL marks the session, which is
// the Responder's ticket, not resumable.
void Share::closeBev(bufferevent*& bev) {
    if (bev == nullptr) return;
    if (SSL* ssl = bufferevent_openssl_get_ssl(bev)) SSL_set_shutdown(ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    bufferevent_free(bev);
    bev = nullptr;
}

void Share::countHandshake(bufferevent* bev) {
    SSL* ssl = bufferevent_openssl_get_ssl(bev);
    counters_.add(SSL_session_reused(ssl) == 1 ? kResumed : kFull);
    int one = 1;
    setsockopt(static_cast<int>(bufferevent_getfd(bev)), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

// Why a connection ended before its handshake did. A refused connect shows as an SSL_ERROR_SYSCALL
// (and a dirty EOF) with errno set: errno decides, as nothing ran since the handshake failed.
Counter Share::connectFailure(bufferevent* bev, short what) {
    int err = EVUTIL_SOCKET_ERROR();
    bool tls = false;
    while (bufferevent_get_openssl_error(bev) != 0) tls = true;
    if (err == ECONNREFUSED) return kConnectRefused;
    return tls || (what & BEV_EVENT_EOF) != 0 ? kTls : kConnectError;
}

// TLS 1.3 tickets arrive after the handshake; the newest is the one to use next.
int Share::onNewSession(SSL* ssl, SSL_SESSION* s) {
    auto* r = static_cast<Responder*>(SSL_get_app_data(ssl));
    if (r->ticket != nullptr) SSL_SESSION_free(r->ticket);
    r->ticket = s;
    return 1;  // ours now
}

// ---- the token

void Share::requestToken(Responder& r) {
    if (r.tokenBev != nullptr || r.tokenQueued) return;
    r.tokenQueued = true;
    tokenQueue_.push_back(&r);
    pumpTokens();
}

// At most --token-concurrency requests at a time. Not re-entered: a request that fails at once
// (tokenFailed calls this) leaves the loop to go on.
void Share::pumpTokens() {
    if (pumping_) return;
    pumping_ = true;
    while (!stopping_ && tokensInFlight_ < o_.tokenConcurrency && !tokenQueue_.empty()) {
        Responder* r = tokenQueue_.front();
        tokenQueue_.pop_front();
        r->tokenQueued = false;
        openTokenRequest(*r);
    }
    pumping_ = false;
}

void Share::openTokenRequest(Responder& r) {
    counters_.add(kTokenRequests);
    bool connecting = false;
    r.tokenBev = dial(r, connecting);
    if (r.tokenBev == nullptr) return tokenFailed(r, kConnectError);
    ++tokensInFlight_;
    r.tokenTls = false;
    r.tokenDeadline = nowMs() + static_cast<uint64_t>(o_.timeoutSeconds * 1000);
    bufferevent_setcb(r.tokenBev, &Share::onTokenRead, nullptr, &Share::onTokenEvent, &r);
    bufferevent_enable(r.tokenBev, EV_READ | EV_WRITE);
    std::string id = std::to_string(r.index);
    std::string body =
        R"({"responderId":")" + o_.idPrefix + id + R"(","credential":")" + o_.credentialPrefix + id + "\"}";
    std::string host = o_.servername.empty() ? o_.proxy : o_.servername;
    std::string req =
        "POST /relaypro/v1/token HTTP/1.1\r\nHost: " + host +
        "\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    bufferevent_write(r.tokenBev, req.data(), req.size());  // sent once the handshake is done
    if (bufferevent_socket_connect(r.tokenBev, connecting ? nullptr : reinterpret_cast<const sockaddr*>(&proxy_.ss),
                                   connecting ? 0 : static_cast<int>(proxy_.len)) != 0) {
        tokenFailed(r, kConnectError);
    }
}

void Share::onTokenEvent(bufferevent* bev, short what, void* arg) {
    auto* r = static_cast<Responder*>(arg);
    if ((what & BEV_EVENT_CONNECTED) != 0) {
        r->tokenTls = true;
        return r->share->countHandshake(bev);
    }
    r->share->tokenFailed(*r, r->tokenTls ? kClosedEarly : connectFailure(bev, what));
}

void Share::onTokenRead(bufferevent* bev, void* arg) {
    auto* r = static_cast<Responder*>(arg);
    Share* s = r->share;
    evbuffer* in = bufferevent_get_input(bev);
    Answer a;
    if (!peekAnswer(in, a, true)) return;
    if (a.status != 200) {
        bool wait = a.status == 429 || a.status == 503;  // Retry-After; otherwise the backoff
        return s->tokenFailed(*r, statusFailure(a.status, true), wait ? s->retryAfterMs(a.retryAfter) : 0);
    }
    evbuffer_drain(in, a.headBytes);
    std::string body(a.bodyBytes, '\0');
    evbuffer_remove(in, body.data(), body.size());
    json_error_t error;
    json_t* j = json_loadb(body.data(), body.size(), 0, &error);
    const char* token = json_string_value(json_object_get(j, "token"));
    json_int_t expiresIn = json_integer_value(json_object_get(j, "expiresIn"));
    if (token == nullptr || *token == '\0' || expiresIn <= 0) {
        s->tokenFailed(*r, kTokenOther);
    } else {
        s->tokenGranted(*r, token, expiresIn);
    }
    json_decref(j);
}

void Share::tokenGranted(Responder& r, const char* token, int64_t expiresIn) {
    closeBev(r.tokenBev);
    --tokensInFlight_;
    if (r.token.empty()) counters_.add(kTokensHeld);
    r.token = token;
    counters_.add(kTokens);
    r.tokenAttempts = 0;
    uint64_t now = nowMs();
    r.tokenExpires = now + static_cast<uint64_t>(expiresIn) * 1000;
    double lead = std::max(1.0, static_cast<double>(expiresIn) - o_.refresh) * 1000.0;
    r.refreshAt = now + static_cast<uint64_t>(lead * (1.0 - uniform() / 10));
    if (r.tunnel == Responder::Tunnel::NeedToken) startTunnel(r);
    pumpTokens();
}

// Without a token the tunnel waits (the backoff timer retries); with one, the refresh does.
void Share::tokenFailed(Responder& r, Counter kind, uint64_t waitMs) {
    counters_.add(kind);
    if (r.tokenBev != nullptr) {
        closeBev(r.tokenBev);
        --tokensInFlight_;
    }
    if (stopping_) return;
    uint64_t wait = waitMs != 0 ? waitMs : backoffMs(r.tokenAttempts);
    r.tokenAttempts = static_cast<uint8_t>(std::min(r.tokenAttempts + 1, 30));
    if (r.tunnel == Responder::Tunnel::NeedToken) {
        scheduleBackoff(r, wait);
    } else {
        r.refreshAt = nowMs() + std::max<uint64_t>(wait, 1);
    }
    pumpTokens();
}

// ---- the tunnel

void Share::openTunnel(Responder& r) {
    r.tunnel = Responder::Tunnel::Connecting;
    ++connecting_;
    bool connecting = false;
    r.tunnelBev = dial(r, connecting);
    if (r.tunnelBev == nullptr) return tunnelFailed(r, kConnectError);
    r.tunnelTls = false;
    r.tunnelDeadline = nowMs() + static_cast<uint64_t>(o_.timeoutSeconds * 1000);
    bufferevent_setcb(r.tunnelBev, &Share::onTunnelRead, nullptr, &Share::onTunnelEvent, &r);
    bufferevent_enable(r.tunnelBev, EV_READ | EV_WRITE);
    const std::string& target = o_.targets[r.index % o_.targets.size()];
    std::string req = "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\nProxy-Authorization: Bearer " +
                      r.token + "\r\n\r\n";
    bufferevent_write(r.tunnelBev, req.data(), req.size());
    if (bufferevent_socket_connect(r.tunnelBev, connecting ? nullptr : reinterpret_cast<const sockaddr*>(&proxy_.ss),
                                   connecting ? 0 : static_cast<int>(proxy_.len)) != 0) {
        tunnelFailed(r, kConnectError);
    }
}

void Share::onTunnelEvent(bufferevent* bev, short what, void* arg) {
    auto* r = static_cast<Responder*>(arg);
    if ((what & BEV_EVENT_CONNECTED) != 0) {
        r->tunnelTls = true;
        return r->share->countHandshake(bev);
    }
    Counter kind = r->tunnel == Responder::Tunnel::Open ? kClosed
                   : r->tunnelTls                       ? kClosedEarly
                                                        : connectFailure(bev, what);
    r->share->tunnelFailed(*r, kind);
}

void Share::onTunnelRead(bufferevent* bev, void* arg) {
    auto* r = static_cast<Responder*>(arg);
    Share* s = r->share;
    evbuffer* in = bufferevent_get_input(bev);
    if (r->tunnel == Responder::Tunnel::Connecting) {
        Answer a;
        if (!peekAnswer(in, a, false)) return;
        if (a.status != 200) {
            if (a.status == 407 && !r->token.empty()) {  // a token the relay no longer takes: a new one
                r->token.clear();
                s->counters_.add(kTokensHeld, -1);
            }
            return s->tunnelFailed(*r, statusFailure(a.status, false),
                                   a.status == 429 || a.status == 503 ? s->retryAfterMs(a.retryAfter) : 0);
        }
        evbuffer_drain(in, a.headBytes);
        s->tunnelOpened(*r);
    }
    if (r->tunnel == Responder::Tunnel::Open && evbuffer_get_length(in) > 0) s->checkEcho(*r, in);
}

void Share::tunnelOpened(Responder& r) {
    --connecting_;
    pumpConnects();
    r.tunnel = Responder::Tunnel::Open;
    r.tunnelDeadline = 0;
    r.echoOutstanding = false;
    counters_.add(kEstablished);
    counters_.add(kOpen);
    if (r.everOpen) counters_.add(kReconnects);
    r.everOpen = true;
    // The first echo at a random point of the interval: the fleet's ticks spread evenly.
    timeval first = toTimeval(static_cast<uint64_t>(uniform() * o_.interval * 1000));
    event_add(r.timer, &first);
}

void Share::onTimer(int, short, void* arg) {
    auto* r = static_cast<Responder*>(arg);
    if (r->tunnel == Responder::Tunnel::Backoff) return r->share->beginAttempt(*r);
    if (r->tunnel == Responder::Tunnel::Open) r->share->tick(*r);
}

// A few bytes each way; one echo outstanding at a time (a late one is the deadline's business).
void Share::tick(Responder& r) {
    if (!r.echoOutstanding) {
        uint8_t bytes[8];
        message(r, bytes);
        bufferevent_write(r.tunnelBev, bytes, sizeof bytes);
        r.echoOutstanding = true;
        r.echoGot = 0;
        r.tunnelDeadline = nowMs() + static_cast<uint64_t>(o_.timeoutSeconds * 1000);
    }
    event_add(r.timer, tickTimeout_);
}

void Share::checkEcho(Responder& r, evbuffer* in) {
    while (evbuffer_get_length(in) > 0) {
        if (!r.echoOutstanding) return tunnelFailed(r, kEchoMismatch);  // bytes nobody sent
        uint8_t expected[8], got[8];
        message(r, expected);
        size_t n = std::min<size_t>(evbuffer_get_length(in), 8 - r.echoGot);
        evbuffer_remove(in, got, n);
        if (std::memcmp(got, expected + r.echoGot, n) != 0) return tunnelFailed(r, kEchoMismatch);
        r.echoGot = static_cast<uint8_t>(r.echoGot + n);
        if (r.echoGot < 8) continue;
        r.echoOutstanding = false;
        ++r.seq;
        r.tunnelDeadline = 0;
        r.attempts = 0;  // a tunnel that carried traffic: the next reconnect starts from the bottom
        counters_.add(kEchoes);
    }
}

void Share::tunnelFailed(Responder& r, Counter kind, uint64_t waitMs) {
    counters_.add(kind);
    if (r.tunnel == Responder::Tunnel::Open) counters_.add(kOpen, -1);
    const bool wasConnecting = r.tunnel == Responder::Tunnel::Connecting;
    if (wasConnecting) --connecting_;
    closeBev(r.tunnelBev);
    event_del(r.timer);
    r.tunnelDeadline = 0;
    r.echoOutstanding = false;
    if (stopping_) {
        r.tunnel = Responder::Tunnel::Idle;
        return;
    }
    uint64_t wait = waitMs != 0 ? waitMs : backoffMs(r.attempts);
    r.attempts = static_cast<uint16_t>(std::min(r.attempts + 1, 30));
    scheduleBackoff(r, wait);
    if (wasConnecting) pumpConnects();
}

}  // namespace loadgen::fleet

int loadgen::runFleet(int argc, char** argv) {
    using namespace loadgen::fleet;
    Options o;
    if (int rc = parseOptions(argc, argv, o); rc != 0) return rc;
    if (sodium_init() < 0) return usage("libsodium does not start");
    FILE* out = o.timeline.empty() ? stderr : std::fopen(o.timeline.c_str(), "w");
    if (out == nullptr) return usage(("cannot write " + o.timeline).c_str());
    setvbuf(out, nullptr, _IOLBF, 0);  // a reader polls the file line by line
    const size_t bytes = sizeof(SharedCounters) * static_cast<size_t>(o.processes);
    void* shared = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (shared == MAP_FAILED) return 1;
    auto* counters = static_cast<SharedCounters*>(shared);
    for (int p = 0; p < o.processes; ++p) new (&counters[p]) SharedCounters{};
    signal(SIGPIPE, SIG_IGN);
    sigset_t signals;
    sigemptyset(&signals);
    for (int sig : {SIGTERM, SIGINT, SIGUSR1}) sigaddset(&signals, sig);
    sigprocmask(SIG_BLOCK, &signals, nullptr);
    Timeline timeline(o, out);
    const uint64_t start = nowMs();
    std::vector<pid_t> pids = startShares(o, counters);
    int worst = 0;
    uint64_t openAtEnd = watch(o, counters, pids, timeline, signals, worst);
    stopShares(pids, worst);
    const double seconds = static_cast<double>(nowMs() - start) / 1000;
    const Totals end = sum(counters, o.processes);
    timeline.second(seconds, end, takeLagMax(counters, o.processes), true);
    timeline.summary(seconds, end, openAtEnd);
    if (out != stderr) std::fclose(out);
    munmap(shared, bytes);
    if (worst != 0) return worst;
    return openAtEnd == o.responders && end[kEchoMismatch] == 0 ? 0 : 1;
}
