#include "worker/front.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "worker/connection.h"
#include "worker/http_response.h"
#include "worker/proxy_protocol.h"
#include "worker/server.h"

namespace relaypro {

std::string peerText(const sockaddr_storage& a) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
        const auto* s = reinterpret_cast<const sockaddr_in*>(&a);
        inet_ntop(AF_INET, &s->sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(ntohs(s->sin_port));
    }
    if (a.ss_family == AF_INET6) {
        const auto* s = reinterpret_cast<const sockaddr_in6*>(&a);
        inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof buf);
        return "[" + std::string(buf) + "]:" + std::to_string(ntohs(s->sin6_port));
    }
    return "unknown";
}

bool inTrustedSources(const WorkerSettings& s, const sockaddr_storage& a) {
    if (s.trustedSources.empty()) return false;
    if (a.ss_family == AF_INET) {
        const auto* v4 = reinterpret_cast<const sockaddr_in*>(&a);
        for (const auto& c : s.trustedSources) {
            if (c.contains(AF_INET, reinterpret_cast<const unsigned char*>(&v4->sin_addr))) return true;
        }
    } else if (a.ss_family == AF_INET6) {
        const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&a);
        const auto* bytes = reinterpret_cast<const unsigned char*>(&v6->sin6_addr);
        static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        for (const auto& c : s.trustedSources) {
            if (c.contains(AF_INET6, bytes)) return true;
            if (std::memcmp(bytes, kMapped, 12) == 0 && c.contains(AF_INET, bytes + 12)) return true;
        }
    }
    return false;
}

bool Front::peekProxy() {
    // Every way out of here either consumes what it looked at or decides: the read event is
    // level-triggered, so bytes peeked and left in the socket would wake this loop at once,
    // again and again (one byte "P" held a core until headerTimeout).
    if (!inTrustedSources(*c_.settings_, c_.peer_)) {
        // Only the TLS listener comes here (start()). A TLS client opens with a handshake record
        // (0x16); "P" ("PROXY ") or CR (the v2 signature) can only be a PROXY header. The first
        // byte decides; it is peeked so that OpenSSL still reads it.
        char first = 0;
        if (peekClient(&first, 1) == 0) return false;
        if (startsLikeProxyHeader(std::string_view(&first, 1))) {
            // A PROXY header from a source that is not trusted: a 400, in plain text even on the
            // TLS listener (the client is not speaking TLS yet).
            std::string answer = serialize(errorResponse(400, "bad_request"));
            [[maybe_unused]] ssize_t w = ::send(c_.client_.fd(), answer.data(), answer.size(), MSG_NOSIGNAL);
            c_.logRefused(400, "bad_request",
                          {{"detail", "PROXY header from a source not in proxyProtocol.trustedSources"}});
            c_.close("bad_proxy_header");
            return false;
        }
        return startRequests();
    }
    // A trusted balancer: its header is taken out of the socket as it arrives (proxyHead_), and
    // exactly up to its end, so that what follows is the client's own first byte.
    char buf[kMaxProxyHeaderBytes];
    size_t have = proxyHead_.size();
    size_t n = peekClient(buf, sizeof buf - have);
    if (n == 0) return false;
    proxyHead_.append(buf, n);
    ProxyHeader h = parseProxyHeader(proxyHead_);
    if (h.status == ProxyHeader::Status::Invalid) {
        c_.logRefused(
            400, "bad_request",
            {{"detail", std::string("a trusted source sent no valid PROXY header: ") + std::string(h.reason)}});
        c_.close("bad_proxy_header");
        return false;
    }
    // Incomplete: all of it belongs to the header. Complete: only the part up to its end.
    size_t take = h.status == ProxyHeader::Status::Complete ? h.length - have : n;
    if (::recv(c_.client_.fd(), buf, take, 0) != static_cast<ssize_t>(take)) {
        c_.close("error");
        return false;
    }
    if (h.status == ProxyHeader::Status::Incomplete) {
        proxyHead_.resize(have + take);
        c_.clientWants_.read = true;
        return false;
    }
    std::string().swap(proxyHead_);
    if (h.hasAddress) {
        c_.peer_ = h.source;
        c_.clientText_ = peerText(c_.peer_);
    }
    return startRequests();
}

size_t Front::peekClient(char* buf, size_t room) {
    ssize_t n = ::recv(c_.client_.fd(), buf, room, MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        c_.clientWants_.read = true;
        return 0;
    }
    if (n <= 0) {
        c_.close("closed_by_client");
        return 0;
    }
    return static_cast<size_t>(n);
}

bool Front::startRequests() {
    if (c_.kind_ == ListenerKind::Https) {
        SSL* ssl = SSL_new(c_.server_.tlsContext());
        if (ssl == nullptr) {
            c_.close("error");
            return false;
        }
        SSL_set_fd(ssl, c_.client_.fd());
        SSL_set_accept_state(ssl);
        int fd = c_.client_.fd();
        c_.client_.release();
        c_.client_.attach(fd, ssl);
        c_.state_ = Connection::State::Handshake;
    } else {
        c_.handshakeFinished();
        c_.state_ = Connection::State::ReadHead;
    }
    return true;
}

// limits.maxHandshakes counts a handshake from the moment its ClientHello has been processed: the
// key exchange and the signature, the CPU a handshake costs, are then done or under way, and
// what is left is waiting for the client's Finished. Before that the server has spent nothing,
// so a client that trickles its ClientHello a byte at a time (or sends a record header and
// stops) never counts and cannot hold the accepts; one that sends whole ClientHellos and then
// stalls pays a handshake of the relay's CPU per connection, and stops counting after
// Server::kStalledAfter. (SSL_get_state moves to TLS_ST_SR_CLNT_HELLO as soon as the message's
// four-byte header is in, before its body: that state alone is not "processed".)
static bool clientHelloProcessed(SSL* ssl) {
    OSSL_HANDSHAKE_STATE st = SSL_get_state(ssl);
    return st != TLS_ST_BEFORE && st != TLS_ST_SR_CLNT_HELLO;
}

// Whether our Finished has gone out: the first flight's key exchange and signature are done. (After
// a HelloRetryRequest the state is past the ClientHello too, but nothing costly has been done.)
static bool ourFinishedSent(SSL* ssl) {
    unsigned char first = 0;
    return SSL_get_finished(ssl, &first, sizeof first) > 0;
}

void Front::shed(counters::Id id) {
    resetOnClose(c_.client_.fd());
    c_.server_.countShed(id);
    c_.close("shed");
}

bool Front::handshake() {
    SSL* ssl = c_.client_.ssl();
    Io io = c_.client_.handshake();
    // Its first flight is served once our own Finished is out (TLS 1.3; a TLS 1.2 resumption):
    // the rest runs as its bytes come, with everything else. Not after a HelloRetryRequest (no
    // key exchange yet: the second ClientHello is the costly one, and waits its turn like the
    // first), nor after a TLS 1.2 full handshake's first flight (its client's key exchange is
    // work too).
    if (c_.firstFlightDue_ && (io == Io::Done || ourFinishedSent(ssl))) {
        c_.firstFlightDue_ = false;
        c_.server_.firstFlightProcessed();
    }
    if ((io == Io::WantRead || io == Io::WantWrite) && clientHelloProcessed(ssl)) c_.handshakeStarted();
    if (io == Io::Done) {
        c_.handshakeFinished();
        c_.server_.counters().add(SSL_session_reused(c_.client_.ssl()) == 1 ? counters::Id::HandshakesResumed
                                                                            : counters::Id::HandshakesFull);
        c_.state_ = Connection::State::ReadHead;
        return true;
    }
    if (io == Io::WantRead)
        c_.clientWants_.read = true;
    else if (io == Io::WantWrite)
        c_.clientWants_.write = true;
    else
        c_.close(io == Io::Eof ? "closed_by_client" : "tls_handshake_failed");
    return false;
}

}  // namespace relaypro
