#include "worker/server.h"

#include <event2/dns.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <sodium.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/test_hooks.h"
#include "common/trust_store.h"
#include "worker/connection.h"

namespace relaypro {
namespace {

constexpr unsigned char kAlpnHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};

int selectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
               void*) {
    unsigned char* selected = nullptr;
    if (SSL_select_next_proto(&selected, outlen, kAlpnHttp11, sizeof kAlpnHttp11, in, inlen) ==
        OPENSSL_NPN_NEGOTIATED) {
        *out = selected;
        return SSL_TLSEXT_ERR_OK;
    }
    return SSL_TLSEXT_ERR_NOACK;  // a client that offers only other protocols still gets HTTP/1.1
}

Result<SSL_CTX*> makeServerContext(const TlsMaterial& tls) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == nullptr) return Error{"cannot create the TLS context"};
    auto fail = [&](const char* what) {
        ERR_clear_error();
        SSL_CTX_free(ctx);
        return Error{what};
    };
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
    // Idle tunnels are the scale limit: OpenSSL frees its record buffers while a connection is quiet.
    SSL_CTX_set_mode(ctx,
                     SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // The chain sent is the one configured (the PEM's certificates after the leaf). Without this,
    // OpenSSL tries to build one from the context's (empty) store on every handshake.
    SSL_CTX_set_mode(ctx, SSL_MODE_NO_AUTO_CHAIN);
    // Read whole socket buffers instead of a record header and then its body: about half the
    // read() calls of a short tunnel. Safe here because every state that reads from the client
    // reads until OpenSSL wants more from the socket (records it already holds are consumed
    // first), and the async states resume by stepping, not by waiting for readability.
    SSL_CTX_set_read_ahead(ctx, 1);
    // ... up to four records per read (the buffer exists only while data is in flight).
    SSL_CTX_set_default_read_buffer_len(ctx, BufferPool::kBufferSize + SSL3_RT_MAX_ENCRYPTED_OVERHEAD);
    SSL_CTX_set_alpn_select_cb(ctx, &selectAlpn, nullptr);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);

    BIO* certBio = BIO_new_mem_buf(tls.certificateChainPem.data(), static_cast<int>(tls.certificateChainPem.size()));
    X509* leaf = PEM_read_bio_X509(certBio, nullptr, nullptr, nullptr);
    if (leaf == nullptr || SSL_CTX_use_certificate(ctx, leaf) != 1) {
        X509_free(leaf);
        BIO_free(certBio);
        return fail("the server certificate is not usable PEM");
    }
    X509_free(leaf);
    while (X509* chain = PEM_read_bio_X509(certBio, nullptr, nullptr, nullptr)) {
        if (SSL_CTX_add0_chain_cert(ctx, chain) != 1) {
            X509_free(chain);
            BIO_free(certBio);
            return fail("the certificate chain is not usable");
        }
    }
    BIO_free(certBio);
    BIO* keyBio = BIO_new_mem_buf(tls.privateKeyPem.data(), static_cast<int>(tls.privateKeyPem.size()));
    EVP_PKEY* key = PEM_read_bio_PrivateKey(keyBio, nullptr, nullptr, nullptr);
    BIO_free(keyBio);
    if (key == nullptr || SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        EVP_PKEY_free(key);
        return fail("the server key does not match its certificate");
    }
    EVP_PKEY_free(key);
    ERR_clear_error();
    return ctx;
}

}  // namespace

Server::Server(event_base* base, LogOutput* log) : base_(base), log_(log, "worker") {}

Result<std::unique_ptr<Server>> Server::create(event_base* base, std::vector<ListenerSocket> listeners,
                                               const WorkerSecrets& secrets,
                                               std::shared_ptr<const WorkerSettings> settings, LogOutput* log) {
    std::unique_ptr<Server> s(new Server(base, log));
    s->settings_ = std::move(settings);
    s->log_.setMinLevel(s->settings_->debugLogging ? LogLevel::Debug : LogLevel::Info);
    if (auto u = s->updateSecrets(secrets); !u) return u.error();
    s->dns_ = evdns_base_new(base, EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (s->dns_ == nullptr) return Error{"cannot create the DNS resolver"};
    s->names_ = std::make_unique<NameCache>(s->dns_);
    s->configureDns();
    Server* raw = s.get();
    auto verifier = HashVerifier::create(base, [raw](uint64_t ticket, bool ok) {
        if (Connection* c = raw->find(ticket)) c->passwordChecked(ok);
    });
    if (!verifier) return verifier.error();
    s->verifier_ = std::move(*verifier);
    s->resumeAccept_ = evtimer_new(base, &Server::onResumeAccept, raw);
    s->stalledTimer_ = evtimer_new(base, &Server::onStalledTick, raw);
    s->firstFlightTurn_ = evtimer_new(base, &Server::onFirstFlightTurn, raw);
    s->shedLog_ = evtimer_new(base, &Server::onShedLog, raw);
    if (s->firstFlightTurn_ == nullptr || s->shedLog_ == nullptr) return Error{"cannot make the worker's events"};
    // An https:// proxy's trust store is read before the sandbox closes the file system.
    if (s->settings_->proxyEnabled && s->settings_->proxy.https && s->settings_->proxy.https->tls)
        (void)s->proxyClientContext();
    for (const auto& l : listeners) {
        auto entry = std::make_unique<Acceptor>(Acceptor{raw, l.kind, nullptr});
        entry->listener = evconnlistener_new(base, &Server::onAccept, entry.get(),
                                             LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, l.fd);
        if (entry->listener == nullptr) {
            ::close(l.fd);
            return Error{"cannot watch a listening socket"};
        }
        evconnlistener_set_error_cb(entry->listener, &Server::onAcceptError);
        s->listeners_.push_back(std::move(entry));
    }
    return s;
}

Server::~Server() {
    std::vector<Connection*> all;
    for (auto& [serial, c] : live_) all.push_back(c);
    live_.clear();
    for (Connection* c : all) delete c;
    for (auto& l : listeners_) evconnlistener_free(l->listener);
    if (resumeAccept_ != nullptr) event_free(resumeAccept_);
    if (stalledTimer_ != nullptr) event_free(stalledTimer_);
    if (firstFlightTurn_ != nullptr) event_free(firstFlightTurn_);
    if (shedLog_ != nullptr) event_free(shedLog_);
    verifier_.reset();
    names_.reset();  // right before the base goes, without calling anyone back
    if (dns_ != nullptr) evdns_base_free(dns_, 0);
    if (tls_ != nullptr) SSL_CTX_free(tls_);
    if (proxyClient_ != nullptr) SSL_CTX_free(proxyClient_);
}

Status Server::updateSecrets(const WorkerSecrets& secrets) {
    if (secrets.tls.certificateChainPem != certificatePem_) {
        auto ctx = makeServerContext(secrets.tls);
        if (!ctx) return ctx.error();
        keys_.attach(*ctx);
        // Connections in their handshake hold a reference to the context they started with.
        if (tls_ != nullptr) SSL_CTX_free(tls_);
        tls_ = *ctx;
        certificatePem_ = secrets.tls.certificateChainPem;
    }
    keys_.update(secrets.ticketKeys, secrets.masters);
    return {};
}

BearerCheck Server::checkBearer(std::string_view token) {
    const auto now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    // A derived key is cached only once its token verified.
    std::optional<std::pair<int64_t, std::string>> derivedFor;
    TokenKey derived{};
    auto claims = verifyToken(
        token,
        [&](int64_t day, std::string_view responderId) -> std::optional<TokenKey> {
            if (auto k = keys_.cachedKey(day, responderId)) return k;
            auto k = keys_.derivedKey(day, responderId);
            if (k) {
                derivedFor.emplace(day, std::string(responderId));
                derived = *k;
            }
            return k;
        },
        settings_->organizationId, now, settings_->tokenClockSkew.count());
    if (claims && derivedFor) keys_.remember(derivedFor->first, derivedFor->second, derived);
    sodium_memzero(derived.data(), derived.size());
    if (!claims) return BearerCheck{false, "", claims.error().message};
    return BearerCheck{true, std::move(claims->responderId), ""};
}

Result<std::string> Server::issueToken(std::string_view responderId, int64_t now) {
    auto master = keys_.masterFor(utcDay(now));
    if (!master) return Error{"today's token master is not held"};
    auto token =
        relaypro::issueToken(*master, responderId, settings_->organizationId, now, settings_->tokenLifetime.count());
    sodium_memzero(master->data(), master->size());
    return token;
}

void Server::configureDns() {
    evdns_base_clear_nameservers_and_suspend(dns_);
    evdns_base_search_clear(dns_);
    const ResolverConfig& r = settings_->names.resolver;
    for (const auto& ns : r.nameservers) {
        std::string withPort = ns.find(':') != std::string::npos ? "[" + ns + "]:53" : ns + ":53";
        evdns_base_nameserver_ip_add(dns_, withPort.c_str());
    }
    for (const auto& domain : r.search) evdns_base_search_add(dns_, domain.c_str());
    evdns_base_search_ndots_set(dns_, r.ndots);
    evdns_base_set_option(dns_, "timeout:", std::to_string(r.timeoutSeconds).c_str());
    evdns_base_set_option(dns_, "attempts:", std::to_string(r.attempts).c_str());
    // 0x20: evdns randomises the case of each question and drops an answer that does not echo
    // it, so a spoofed answer must guess those bits as well as the 16-bit id (RFC 5452 and
    // draft-vixie-dnsext-dns0x20). On by default in evdns; set here so that no change of default
    // turns it off.
    evdns_base_set_option(dns_, "randomize-case:", "1");
    evdns_base_resume(dns_);
    if (names_) names_->clear();  // answers from the resolvers before
}

void Server::applySettings(std::shared_ptr<const WorkerSettings> settings) {
    bool dnsChanged = settings->names.resolver.nameservers != settings_->names.resolver.nameservers ||
                      settings->names.resolver.search != settings_->names.resolver.search;
    settings_ = std::move(settings);
    log_.setMinLevel(settings_->debugLogging ? LogLevel::Debug : LogLevel::Info);
    if (dnsChanged) configureDns();
}

SSL_CTX* Server::proxyClientContext() {
    if (proxyClient_ == nullptr) {
        proxyClient_ = SSL_CTX_new(TLS_client_method());
        SSL_CTX_set_min_proto_version(proxyClient_, TLS1_2_VERSION);
        // The system's trust store, read whole now: a sandboxed worker opens no file, so a hashed
        // folder (read lazily, certificate by certificate) is of no use here.
        TrustStorePaths store = systemTrustStore();
        if (store.file.empty() || SSL_CTX_load_verify_locations(proxyClient_, store.file.c_str(), nullptr) != 1) {
            log_.error("no trust store for the https:// proxy: its certificate cannot be checked",
                       {{"lookedAt", store.file.empty() ? trustStoreCandidates() : store.file}});
            ERR_clear_error();
        }
        SSL_CTX_set_verify(proxyClient_, SSL_VERIFY_PEER, nullptr);
        SSL_CTX_set_mode(proxyClient_, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_ENABLE_PARTIAL_WRITE |
                                           SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    }
    return proxyClient_;
}

Connection* Server::find(uint64_t serial) const {
    auto it = live_.find(serial);
    return it == live_.end() ? nullptr : it->second;
}

ipc::TunnelList Server::listTunnels(uint64_t after, uint16_t maxRows) const {
    ipc::TunnelList out;
    out.after = after;
    out.next = after;
    const auto now = std::chrono::steady_clock::now();
    size_t bytes = ipc::TunnelList::kFixedBytes;
    size_t visits = 4 * static_cast<size_t>(maxRows);
    auto it = live_.upper_bound(after);
    for (; it != live_.end() && visits > 0 && out.rows.size() < maxRows; ++it, --visits) {
        if (auto row = it->second->tunnelRow(now)) {
            if (bytes + row->encodedSize() > ipc::kMaxBodyBytes) break;  // the next chunk starts with it
            bytes += row->encodedSize();
            out.rows.push_back(std::move(*row));
        }
        out.next = it->first;
    }
    out.done = it == live_.end();
    if (!out.done && out.next <= after) out.next = after + 1;  // not reached: one row always fits
    return out;
}

void Server::onAccept(evconnlistener*, int fd, sockaddr* addr, int len, void* arg) {
    auto* l = static_cast<Acceptor*>(arg);
    l->server->accept(l->kind, fd, addr, static_cast<socklen_t>(len));
}

void Server::accept(ListenerKind kind, int fd, const sockaddr* addr, socklen_t len) {
    const auto& s = *settings_;
    if (draining_ || (s.maxConnections > 0 && live_.size() >= s.maxConnections)) {
        // Beyond maxConnections a new connection is closed at once (config.md).
        ::close(fd);
        return;
    }
    // Beyond the rate admitted while ClientHellos stand in the queue (kQueueTarget): refused
    // before any work is spent on it. Under overload that is most connections, so the refusal is
    // kept to accept4, one setsockopt and the close (about 11 µs here, most of it the kernel's).
    Admission::Verdict verdict = Admission::Verdict::Free;
    if (kind == ListenerKind::Https) {
        verdict = admitNow();
        if (verdict == Admission::Verdict::Refused) {
            resetConnection(fd);
            countShed(counters::Id::ShedAtAccept);
            return;
        }
    }
    // A client that gave up while its connection waited in the accept queue (a storm beyond
    // limits.maxHandshakes) has sent its FIN already: its handshake would be work for no one,
    // taken from the clients still waiting. One getsockopt against a handshake's ~350 µs. A
    // token it took goes back, so that one gone already takes no place that a live one could
    // have. (A TLS listener's only: a plain-HTTP client may send its request and half-close.)
    tcp_info info{};
    socklen_t infoLen = sizeof info;
    if (kind == ListenerKind::Https && ::getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &infoLen) == 0 &&
        info.tcpi_state == TCP_CLOSE_WAIT) {
        ::close(fd);
        counters_.add(counters::Id::AbandonedBeforeHandshake);
        if (verdict == Admission::Verdict::Admitted) admission_.giveBack();
        return;
    }
    // Small writes (handshake flights, answers) go out at once, not after a delayed ACK.
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    sockaddr_storage peer{};
    std::memcpy(&peer, addr, std::min(static_cast<size_t>(len), sizeof peer));
    uint64_t serial = nextSerial_++;
    auto* c = new Connection(*this, serial, kind, fd, peer);
    live_[serial] = c;
    stats_.connections = live_.size();
    if (verdict == Admission::Verdict::Admitted) c->admittedAtAccept();
    c->start();  // may close (and delete) it already
}

void resetOnClose(int fd) {
    linger reset{1, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
}

void resetConnection(int fd) {
    resetOnClose(fd);
    ::close(fd);
}

void Server::queueFirstFlight(uint64_t serial) {
    firstFlights_.push_back({serial, std::chrono::steady_clock::now()});
    if (evtimer_pending(firstFlightTurn_, nullptr) != 0) return;  // a turn is due already
    // (The test build may hold a turn that would start now, to make a wait on purpose.)
    timeval tv = toTimeval(testHooks().firstFlightHold);
    evtimer_add(firstFlightTurn_, &tv);
}

Admission::Verdict Server::admitNow() {
    const Admission::Verdict verdict = admission_.admit(std::chrono::steady_clock::now());
    traceAdmission();
    return verdict;
}

bool Server::admitFirstBytes() {
    return admitNow() != Admission::Verdict::Refused;
}

void Server::traceAdmission() {
    if (!testHooks().admissionTrace || admission_.judged().windows == tracedWindows_) return;
    const Admission::Judged& j = admission_.judged();
    tracedWindows_ = j.windows;
    const auto shortest = j.shortest == Admission::Clock::duration::max()
                              ? int64_t{-1}
                              : std::chrono::duration_cast<std::chrono::milliseconds>(j.shortest).count();
    log_.info("admission window", {{"reached", j.reached},
                                   {"served", j.served},
                                   {"refused", j.refused},
                                   {"shortestMs", shortest},
                                   {"drained", j.drained},
                                   {"stale", j.stale},
                                   {"limiting", j.limiting},
                                   {"rate", static_cast<int64_t>(j.rate)},
                                   {"queued", static_cast<uint64_t>(firstFlights_.size())}});
}

void Server::onFirstFlightTurn(int, short, void* arg) {
    auto* self = static_cast<Server*>(arg);
    const auto start = std::chrono::steady_clock::now();
    auto now = start;
    // At least one, then until the slice is used; those that closed while queued are passed over.
    while (!self->firstFlights_.empty() && (now == start || now - start < kFirstFlightSlice)) {
        const Queued q = self->firstFlights_.front();
        self->firstFlights_.pop_front();
        Connection* c = self->find(q.serial);
        if (c == nullptr || !c->queued()) continue;
        const auto wait = now - q.since;
        const bool shed = wait > kShedAfter;
        // Served: a ClientHello processed through our first flight (Front::handshake says so), not
        // a turn that found a partial one, a PROXY header, a close or a HelloRetryRequest to send.
        self->processedInTurn_ = false;
        c->firstFlightTurn(shed);  // may delete c
        // Once per ClientHello: when it is processed or shed, not for a turn that found only part
        // of it or a PROXY header (the connection queues again).
        if (self->processedInTurn_ || shed) self->counters_.observeFirstFlightWait(wait);
        self->admission_.reached(now, wait, self->processedInTurn_);
        self->traceAdmission();
        now = std::chrono::steady_clock::now();
    }
    if (!self->firstFlights_.empty()) {
        static const timeval kNext{0, 0};  // after what the next poll finds due
        evtimer_add(self->firstFlightTurn_, &kNext);
    } else {
        self->admission_.drained(now);
    }
}

void Server::countShed(counters::Id id) {
    counters_.add(id);
    ++(id == counters::Id::ShedAtAccept ? shedAtAccept_ : shedAfterWaiting_);
    // One line a minute at most (under overload this happens hundreds of times a second): the
    // first at once, then what came meanwhile when the minute is up.
    if (evtimer_pending(shedLog_, nullptr) == 0) logShed();
}

void Server::logShed() {
    if (shedAtAccept_ == 0 && shedAfterWaiting_ == 0) return;
    log_.warn("overloaded: connections reset before their handshake",
              {{"refusedAtAccept", shedAtAccept_},
               {"shedAfterWaiting", shedAfterWaiting_},
               {"detail",
                "refused while ClientHellos stood in this worker's queue, or shed after 1s in it; "
                "relaypro_connections_shed_total counts them all"}});
    shedAtAccept_ = shedAfterWaiting_ = 0;
    timeval minute = toTimeval(testHooks().shedLogInterval.value_or(std::chrono::minutes(1)));
    evtimer_add(shedLog_, &minute);
}

void Server::onShedLog(int, short, void* arg) {
    static_cast<Server*>(arg)->logShed();
}

void Server::openingStarted(uint64_t serial) {
    ++opening_;
    // Tracked with no bound too (the default), so that a reload that sets one finds the
    // handshakes under way forgettable. Entries older than kStalledAfter are dropped here, so
    // that the list stays as long as two seconds of handshakes.
    if (forgetStalledOpenings() > 0 && !accepting_) updateAccepting();
    openingSince_.emplace_back(std::chrono::steady_clock::now(), serial);
    // At the bound, libevent's accept loop stops after the current one (it checks the listener).
    if (maxHandshakes_ > 0 && opening_ >= maxHandshakes_) updateAccepting();
}

void Server::openingEnded() {
    --opening_;
    if (!accepting_) updateAccepting();
}

size_t Server::forgetStalledOpenings() {
    // A handshake still open kStalledAfter (2 s) after its ClientHello was processed waits for its
    // client's Finished (a slow link, or a client that stalls on purpose), not for this worker's
    // CPU: it stops counting towards the bound, so that stalling connections cannot hold the
    // accepts for longer. (Clients that trickle their ClientHello never count: Front::handshake.)
    const auto cutoff = std::chrono::steady_clock::now() - kStalledAfter;
    size_t forgotten = 0;
    while (!openingSince_.empty() && openingSince_.front().first <= cutoff) {
        Connection* c = find(openingSince_.front().second);
        openingSince_.pop_front();
        if (c != nullptr && c->forgetOpening()) {
            --opening_;
            ++forgotten;
        }
    }
    return forgotten;
}

void Server::onStalledTick(int, short, void* arg) {
    auto* self = static_cast<Server*>(arg);
    self->forgetStalledOpenings();
    self->updateAccepting();
}

void Server::updateAccepting() {
    bool atBound = maxHandshakes_ > 0 && opening_ >= maxHandshakes_;
    if (atBound && forgetStalledOpenings() > 0) atBound = opening_ >= maxHandshakes_;
    // At the bound, look again for stalled handshakes every 100 ms.
    if (atBound && !draining_) {
        if (evtimer_pending(stalledTimer_, nullptr) == 0) {
            timeval tv = toTimeval(std::chrono::milliseconds(100));
            evtimer_add(stalledTimer_, &tv);
        }
    }
    bool want = !draining_ && !paused_ && !atBound;
    // Applied every time (libevent's enable and disable are no-ops on a listener already so):
    // the plain-HTTP listener follows pauses even while the TLS ones stay held at the bound.
    accepting_ = want;
    for (auto& l : listeners_) {
        // The handshake bound holds the TLS listeners only: plain HTTP (health checks, forwards)
        // has no handshake to wait for. A pause or a drain holds both.
        if (l->kind == ListenerKind::Http && !draining_ && !paused_) {
            evconnlistener_enable(l->listener);
        } else if (want) {
            evconnlistener_enable(l->listener);
        } else {
            evconnlistener_disable(l->listener);
        }
    }
}

void Server::onAcceptError(evconnlistener*, void* arg) {
    auto* l = static_cast<Acceptor*>(arg);
    Server* self = l->server;
    int err = EVUTIL_SOCKET_ERROR();
    // Out of descriptors (or kernel memory): stop accepting briefly instead of spinning on a
    // listener that stays readable; closed connections free descriptors meanwhile.
    self->pauseAccepts(std::chrono::milliseconds(100));
    self->log_.warn("accept failed; pausing accepts for 100ms", {{"error", std::string(std::strerror(err))}});
}

void Server::pauseAccepts(std::chrono::milliseconds pause) {
    paused_ = true;
    updateAccepting();
    timeval tv = toTimeval(pause);
    evtimer_add(resumeAccept_, &tv);  // onResumeAccept
}

void Server::holdAccepts(std::chrono::milliseconds hold) {
    if (draining_) return;
    if (hold.count() > 0) return pauseAccepts(hold);  // the same pause as after an accept error
    event_del(resumeAccept_);
    paused_ = false;
    updateAccepting();
}

void Server::onResumeAccept(int, short, void* arg) {
    auto* self = static_cast<Server*>(arg);
    self->paused_ = false;
    self->updateAccepting();
}

void Server::connectionClosed(Connection* c) {
    live_.erase(c->serial());
    delete c;
    stats_.connections = live_.size();
    if (draining_ && live_.empty() && onEmpty_) onEmpty_();
}

void Server::blockSource(const std::string& source, std::chrono::milliseconds duration) {
    auto now = std::chrono::steady_clock::now();
    if (blocked_.size() > 100000) {
        std::erase_if(blocked_, [&](const auto& e) { return e.second <= now; });
        if (blocked_.size() > 100000) blocked_.clear();  // a flood of sources must not grow memory
    }
    blocked_[source] = now + duration;
}

uint32_t Server::blockedFor(const std::string& source) {
    if (blocked_.empty()) return 0;
    auto it = blocked_.find(source);
    if (it == blocked_.end()) return 0;
    auto left = it->second - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) {
        blocked_.erase(it);
        return 0;
    }
    return static_cast<uint32_t>(std::max<int64_t>(1, std::chrono::ceil<std::chrono::seconds>(left).count()));
}

void Server::tunnelOpened(uint16_t port) {
    counters_.add(counters::tunnelId(port));
    ++stats_.tunnels;
    ++stats_.totalTunnels;
}

void Server::tunnelClosed() {
    --stats_.tunnels;
}

void Server::beginDrain() {
    if (draining_) return;
    draining_ = true;
    logShed();  // what the last minute's line has not told yet
    // This worker's copies of the listening sockets are closed, not only unwatched: once every
    // process holding one has closed it (a stop), a new connection is refused at once instead
    // of waiting in a queue no one serves (issue 16). During an upgrade the other copies keep
    // the sockets open for the new generation.
    event_del(resumeAccept_);
    event_del(stalledTimer_);
    for (auto& l : listeners_) evconnlistener_free(l->listener);  // LEV_OPT_CLOSE_ON_FREE
    listeners_.clear();
    std::vector<Connection*> idle;
    for (auto& [serial, c] : live_) {
        if (c->idleBetweenRequests()) idle.push_back(c);
    }
    for (Connection* c : idle) c->closeNow("drained");
    if (live_.empty() && onEmpty_) onEmpty_();
}

void Server::closeAll() {
    closeOldest(live_.size(), "shutdown");
}

void Server::closeOldest(size_t n, std::string_view result) {
    // Taken first: each close erases its connection from live_ (and the last may end the loop).
    std::vector<Connection*> oldest;
    oldest.reserve(std::min(n, live_.size()));
    for (auto it = live_.begin(); it != live_.end() && oldest.size() < n; ++it) oldest.push_back(it->second);
    for (Connection* c : oldest) c->closeNow(result);
}

}  // namespace relaypro
