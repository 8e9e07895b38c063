#include "worker/upstream_dialer.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/config_values.h"
#include "common/worker_settings.h"
#include "worker/server.h"
#include "worker/source_port.h"

namespace relaypro {

namespace {

constexpr size_t kMaxProxyAnswer = 16 * 1024;

std::string addressText(const sockaddr_storage& a) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
        const auto* s = reinterpret_cast<const sockaddr_in*>(&a);
        inet_ntop(AF_INET, &s->sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(ntohs(s->sin_port));
    }
    const auto* s = reinterpret_cast<const sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(s->sin6_port));
}

bool literalAddress(const std::string& host, uint16_t port, sockaddr_storage& out) {
    std::memset(&out, 0, sizeof out);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        return true;
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
    if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        return true;
    }
    return false;
}

std::string authority(const std::string& host, uint16_t port) {
    return (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string basicCredential(const std::string& user, const std::string& password) {
    std::string plain = user + ":" + password;
    std::string out(sodium_base64_ENCODED_LEN(plain.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(plain.data()), plain.size(),
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(plain.data(), plain.size());
    out.resize(std::strlen(out.c_str()));
    return "Basic " + out;
}

}  // namespace

UpstreamDialer::UpstreamDialer(Server& server, Done done) : server_(server), done_(std::move(done)) {}

UpstreamDialer::~UpstreamDialer() {
    server_.names().cancel(lookup_);
    if (ev_ != nullptr) event_free(ev_);
    if (timer_ != nullptr) event_free(timer_);
    if (deferred_ != nullptr) event_free(deferred_);
    sodium_memzero(proxyAuthorization_.data(), proxyAuthorization_.size());
    sodium_memzero(io_.data(), io_.size());
}

void UpstreamDialer::start(const WorkerSettings& s, std::string host, uint16_t port, DialPurpose purpose) {
    targetHost_ = std::move(host);
    targetPort_ = port;
    dialHost_ = targetHost_;
    dialPort_ = targetPort_;
    if (s.proxyEnabled && !s.proxy.noProxy.bypasses(targetHost_)) {
        const auto& proxy = purpose == DialPurpose::Tunnel ? s.proxy.https : s.proxy.http;
        if (proxy) {
            viaProxy_ = true;
            proxyTls_ = proxy->tls;
            sendConnect_ = purpose == DialPurpose::Tunnel;
            dialHost_ = proxy->host;
            dialPort_ = proxy->port;
            if (proxy->hasCredentials()) proxyAuthorization_ = basicCredential(proxy->user, proxy->password);
        }
    }
    timeval tv = toTimeval(std::chrono::duration_cast<std::chrono::milliseconds>(s.limits.connectTimeout));
    timer_ = evtimer_new(server_.base(), &UpstreamDialer::onTimeout, this);
    deferred_ = event_new(server_.base(), -1, 0, &UpstreamDialer::onDeferred, this);
    evtimer_add(timer_, &tv);
    phase_ = Phase::Resolving;

    sockaddr_storage literal{};
    if (literalAddress(dialHost_, dialPort_, literal)) {
        addresses_.push_back(literal);
        event_active(deferred_, EV_TIMEOUT, 0);  // connect from the loop, not from inside start()
        return;
    }
    if (const auto* listed = s.names.hosts.find(dialHost_)) {
        for (const auto& a : *listed) {
            sockaddr_storage addr{};
            if (literalAddress(a, dialPort_, addr)) addresses_.push_back(addr);
        }
        event_active(deferred_, EV_TIMEOUT, 0);
        return;
    }
    lookup_ = server_.names().lookup(dialHost_, [this](const NameCache::Answer& a) {
        lookup_ = 0;
        resolved(a.addresses, a.error);
    });
    // A cached answer comes inside lookup(): resolved() defers its own follow-up, so nothing is
    // reported from inside start().
}

void UpstreamDialer::resolved(const std::vector<sockaddr_storage>& addresses, const std::string& error) {
    if (phase_ != Phase::Resolving) return;
    lastError_ = error;
    for (sockaddr_storage a : addresses) {
        if (a.ss_family == AF_INET) reinterpret_cast<sockaddr_in*>(&a)->sin_port = htons(dialPort_);
        if (a.ss_family == AF_INET6) reinterpret_cast<sockaddr_in6*>(&a)->sin6_port = htons(dialPort_);
        addresses_.push_back(a);
    }
    event_active(deferred_, EV_TIMEOUT, 0);
}

void UpstreamDialer::onDeferred(int, short, void* arg) {
    auto* self = static_cast<UpstreamDialer*>(arg);
    if (self->phase_ == Phase::Resolving) {
        if (self->addresses_.empty()) {
            if (self->lastError_.empty()) self->lastError_ = "no address for " + self->dialHost_;
            self->fail(502, "upstream_unreachable", self->lastError_);
            return;
        }
        self->phase_ = Phase::Connecting;
        self->connectNext();
    }
}

void UpstreamDialer::connectNext() {
    while (nextAddress_ < addresses_.size()) {
        const sockaddr_storage& a = addresses_[nextAddress_++];
        bool fellBack = false;
        int fd = connectFromRange(a, server_.sourcePorts(), &fellBack);
        if (fellBack) server_.counters().add(counters::Id::SourcePortFallbacks);
        if (fd >= 0) {
            stream_.attach(fd);
            pending_.address = viaProxy_ ? "proxy " + addressText(a) : addressText(a);
            watch(EV_WRITE);
            return;
        }
        lastError_ = addressText(a) + ": " + std::strerror(errno);
    }
    fail(502, "upstream_unreachable", lastError_.empty() ? "no address to connect to" : lastError_);
}

void UpstreamDialer::watch(short what) {
    if (ev_ == nullptr) {
        ev_ = event_new(server_.base(), stream_.fd(), what, &UpstreamDialer::onEvent, this);
    } else {
        event_del(ev_);
        event_assign(ev_, server_.base(), stream_.fd(), what, &UpstreamDialer::onEvent, this);
    }
    event_add(ev_, nullptr);
}

void UpstreamDialer::onEvent(int, short what, void* arg) {
    static_cast<UpstreamDialer*>(arg)->onSocketEvent(what);
}

void UpstreamDialer::onSocketEvent(short) {
    if (phase_ == Phase::Connecting) {
        int err = 0;
        socklen_t len = sizeof err;
        ::getsockopt(stream_.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
        if (err != 0) {
            lastError_ = pending_.address + ": " + std::strerror(err);
            event_del(ev_);
            stream_.reset();
            connectNext();
            return;
        }
        if (!viaProxy_ || !sendConnect_) {
            if (proxyTls_) {
                phase_ = Phase::ProxyTls;
            } else {
                succeed();
                return;
            }
        } else {
            phase_ = proxyTls_ ? Phase::ProxyTls : Phase::ProxyRequest;
        }
        if (phase_ == Phase::ProxyTls) {
            SSL* ssl = SSL_new(server_.proxyClientContext());
            if (ssl == nullptr) {
                fail(502, "upstream_unreachable", "cannot start TLS to the proxy");
                return;
            }
            SSL_set_fd(ssl, stream_.fd());
            SSL_set_connect_state(ssl);
            SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                     const_cast<char*>(dialHost_.c_str()));
            SSL_set1_host(ssl, dialHost_.c_str());
            int fd = stream_.fd();
            stream_.release();
            stream_.attach(fd, ssl);
        }
        if (phase_ == Phase::ProxyRequest) buildConnectRequest();
    }
    proxyStep();
}

void UpstreamDialer::buildConnectRequest() {
    const std::string target = authority(targetHost_, targetPort_);
    io_ = "CONNECT " + target + " HTTP/1.1\r\nHost: " + target + "\r\n";
    if (!proxyAuthorization_.empty()) io_ += "Proxy-Authorization: " + proxyAuthorization_ + "\r\n";
    io_ += "\r\n";
    ioOffset_ = 0;
}

void UpstreamDialer::proxyStep() {
    while (true) {
        if (phase_ == Phase::ProxyTls) {
            Io io = stream_.handshake();
            if (io == Io::WantRead || io == Io::WantWrite) return watch(io == Io::WantRead ? EV_READ : EV_WRITE);
            if (io != Io::Done) return fail(502, "upstream_unreachable", "TLS handshake with the proxy failed");
            if (!sendConnect_) return succeed();
            phase_ = Phase::ProxyRequest;
            buildConnectRequest();
            continue;
        }
        if (phase_ == Phase::ProxyRequest) {
            size_t n = 0;
            Io io = stream_.write(io_.data() + ioOffset_, io_.size() - ioOffset_, n);
            if (io == Io::WantRead || io == Io::WantWrite) return watch(io == Io::WantRead ? EV_READ : EV_WRITE);
            if (io != Io::Done) return fail(502, "upstream_unreachable", "the proxy closed the connection");
            ioOffset_ += n;
            if (ioOffset_ < io_.size()) continue;
            sodium_memzero(io_.data(), io_.size());
            io_.clear();
            phase_ = Phase::ProxyResponse;
            continue;
        }
        if (phase_ == Phase::ProxyResponse) {
            char buf[4096];
            size_t n = 0;
            Io io = stream_.read(buf, sizeof buf, n);
            if (io == Io::WantRead || io == Io::WantWrite) return watch(io == Io::WantRead ? EV_READ : EV_WRITE);
            if (io != Io::Done)
                return fail(502, "upstream_unreachable", "the proxy closed the connection before answering CONNECT");
            io_.append(buf, n);
            size_t end = io_.find("\r\n\r\n");
            if (end == std::string::npos) {
                if (io_.size() > kMaxProxyAnswer)
                    return fail(502, "upstream_unreachable", "the proxy's answer is too large");
                continue;
            }
            // "HTTP/1.x NNN reason"
            int status = 0;
            if (io_.size() >= 12 && io_.compare(0, 7, "HTTP/1.") == 0 && io_[8] == ' ') {
                for (size_t i = 9; i < 12; ++i)
                    status = io_[i] >= '0' && io_[i] <= '9' ? status * 10 + (io_[i] - '0') : -1000;
            }
            if (status < 200 || status > 299) {
                std::string detail = status > 0 ? "the proxy refused CONNECT with status " + std::to_string(status)
                                                : std::string("the proxy sent a malformed answer to CONNECT");
                if (status == 407) detail += " (proxy authentication required: check the credentials in https_proxy)";
                return fail(502, "upstream_unreachable", detail);
            }
            pending_.leftover = io_.substr(end + 4);
            io_.clear();
            return succeed();
        }
        return;
    }
}

void UpstreamDialer::fail(int status, std::string_view code, std::string detail) {
    DialOutcome out;
    out.status = status;
    out.code = code;
    out.detail = std::move(detail);
    if (ev_ != nullptr) event_del(ev_);  // before the socket closes
    stream_.reset();
    finish(std::move(out));
}

void UpstreamDialer::succeed() {
    DialOutcome out;
    out.ok = true;
    out.fd = stream_.fd();
    out.ssl = stream_.ssl();
    out.leftover = std::move(pending_.leftover);
    out.viaHttpProxy = viaProxy_ && !sendConnect_;
    if (out.viaHttpProxy) out.proxyAuthorization = proxyAuthorization_;  // it goes in the request itself
    out.address = pending_.address;
    // The stream now belongs to the outcome.
    if (ev_ != nullptr) event_del(ev_);
    stream_.release();
    finish(std::move(out));
}

void UpstreamDialer::finish(DialOutcome&& outcome) {
    phase_ = Phase::Finished;
    if (ev_ != nullptr) event_del(ev_);
    if (timer_ != nullptr) evtimer_del(timer_);
    Done done = std::move(done_);
    done(std::move(outcome));  // may destroy this object: nothing after this line
}

void UpstreamDialer::onTimeout(int, short, void* arg) {
    auto* self = static_cast<UpstreamDialer*>(arg);
    std::string detail =
        "no connection to " + self->dialHost_ + ":" + std::to_string(self->dialPort_) + " within connectTimeout";
    if (!self->lastError_.empty()) detail += " (last error: " + self->lastError_ + ")";
    self->fail(504, "upstream_timeout", detail);
}

}  // namespace relaypro
