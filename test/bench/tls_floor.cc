// The floors for BENCHMARKS.md: minimal event-driven TLS servers (libevent + the same OpenSSL,
// ECDSA P-256, TLS 1.3, session tickets off unless --tickets).
//  - By default it accepts, completes the handshake and closes — nothing else. Its CPU per
//    connection is what any TLS relay pays at least; `loadgen rate --tls-only` drives it.
//  - With --relay HOST:PORT it is the least a CONNECT relay can do: after the handshake it reads
//    a request head (any), connects to HOST:PORT (whatever the head asked for), answers 200 and
//    copies bytes both ways until one side closes. No parsing, authentication, policy, DNS,
//    timers or logs. `loadgen rate` drives it like a proxy.
//  - With --relay HOST:PORT --blocking it is the least a TLS relay does per byte: a thread per
//    connection, blocking sockets, no event loop; once the 200 is out it reads TLS records into a
//    64 KiB buffer (read_ahead: whole socket buffers; every record OpenSSL already holds) and sends
//    them on in one send(), and the other way round. `loadgen bulk` drives it like a proxy.
//
//   tls_floor --listen 127.0.0.1:0 --cert CERT.pem --key KEY.pem [--tickets] [--relay HOST:PORT
//             [--blocking]]
//   prints "listening HOST:PORT", serves until killed.
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <event2/util.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace {

SSL_CTX* gCtx = nullptr;
sockaddr_storage gUpstream{};
int gUpstreamLen = 0;

// --relay: one client connection and, once its head arrived, its upstream connection.
struct Pair {
    bufferevent* client = nullptr;
    bufferevent* upstream = nullptr;
};

void freePair(Pair* p) {
    if (p->client != nullptr) {
        SSL_set_shutdown(bufferevent_openssl_get_ssl(p->client), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        bufferevent_free(p->client);
    }
    if (p->upstream != nullptr) bufferevent_free(p->upstream);
    delete p;
}

void onFlushed(bufferevent* bev, void* arg) {
    if (evbuffer_get_length(bufferevent_get_output(bev)) == 0) freePair(static_cast<Pair*>(arg));
}

void onCopy(bufferevent* from, void* arg) {
    auto* p = static_cast<Pair*>(arg);
    bufferevent* to = from == p->client ? p->upstream : p->client;
    evbuffer_add_buffer(bufferevent_get_output(to), bufferevent_get_input(from));
}

void onPairEvent(bufferevent* bev, short what, void* arg) {
    auto* p = static_cast<Pair*>(arg);
    if ((what & BEV_EVENT_CONNECTED) != 0 && bev == p->client) return;  // the TLS handshake is done
    if ((what & BEV_EVENT_CONNECTED) != 0) {  // the upstream answered: 200, then copy both ways
        evbuffer_add(bufferevent_get_output(p->client), "HTTP/1.1 200 Connection established\r\n\r\n", 39);
        bufferevent_setcb(p->client, onCopy, nullptr, onPairEvent, p);
        bufferevent_setcb(p->upstream, onCopy, nullptr, onPairEvent, p);
        bufferevent_enable(p->upstream, EV_READ | EV_WRITE);
        onCopy(p->client, p);  // bytes that came after the head
        return;
    }
    // One side ended: let the other have what is still queued for it, then close both.
    bufferevent* other = bev == p->client ? p->upstream : p->client;
    if (other != nullptr && (what & BEV_EVENT_EOF) != 0 && evbuffer_get_length(bufferevent_get_output(other)) > 0) {
        bufferevent_disable(bev, EV_READ);
        bufferevent_disable(other, EV_READ);
        bufferevent_setcb(other, nullptr, onFlushed, onPairEvent, p);
        return;
    }
    freePair(p);
}

void onHead(bufferevent* bev, void* arg) {
    auto* p = static_cast<Pair*>(arg);
    evbuffer* in = bufferevent_get_input(bev);
    evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, nullptr);
    if (end.pos < 0) return;
    evbuffer_drain(in, static_cast<size_t>(end.pos) + 4);
    bufferevent_setcb(bev, nullptr, nullptr, onPairEvent, p);
    p->upstream = bufferevent_socket_new(bufferevent_get_base(bev), -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_setcb(p->upstream, nullptr, nullptr, onPairEvent, p);
    if (bufferevent_socket_connect(p->upstream, reinterpret_cast<sockaddr*>(&gUpstream), gUpstreamLen) != 0) {
        freePair(p);
    }
}

// --blocking: one connection, start to end, on its own thread.
bool sendAll(int fd, const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return false;
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

void pumpConnection(int fd) {
    constexpr size_t kBuf = 64 * 1024;
    static thread_local char buf[kBuf];
    SSL* ssl = SSL_new(gCtx);
    SSL_set_fd(ssl, fd);
    int up = -1;
    std::string head;
    if (SSL_accept(ssl) == 1) {
        while (head.find("\r\n\r\n") == std::string::npos) {
            int n = SSL_read(ssl, buf, static_cast<int>(kBuf));
            if (n <= 0) break;
            head.append(buf, static_cast<size_t>(n));
        }
    }
    auto end = head.find("\r\n\r\n");
    if (end != std::string::npos) up = ::socket(gUpstream.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (up >= 0 && ::connect(up, reinterpret_cast<sockaddr*>(&gUpstream), static_cast<socklen_t>(gUpstreamLen)) == 0) {
        int one = 1;
        setsockopt(up, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        const char ok[] = "HTTP/1.1 200 Connection established\r\n\r\n";
        bool open = SSL_write(ssl, ok, sizeof ok - 1) > 0 &&
                    sendAll(up, head.data() + end + 4, head.size() - end - 4);  // bytes after the head
        pollfd p[2] = {{fd, POLLIN, 0}, {up, POLLIN, 0}};
        while (open) {
            if (SSL_has_pending(ssl) == 0 && ::poll(p, 2, -1) < 0) break;
            if (SSL_has_pending(ssl) == 1 || (p[0].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
                size_t n = 0;
                if (SSL_read_ex(ssl, buf, kBuf, &n) != 1) break;
                while (n < kBuf && SSL_has_pending(ssl) == 1) {
                    size_t more = 0;
                    if (SSL_read_ex(ssl, buf + n, kBuf - n, &more) != 1) break;
                    n += more;
                }
                open = sendAll(up, buf, n);
            }
            if (open && (p[1].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
                ssize_t n = ::recv(up, buf, kBuf, 0);
                open = n > 0 && SSL_write(ssl, buf, static_cast<int>(n)) > 0;
            }
            p[0].revents = p[1].revents = 0;
        }
    }
    if (up >= 0) ::close(up);
    SSL_free(ssl);
    ::close(fd);
}

void onEvent(bufferevent* bev, short what, void*) {
    if ((what & BEV_EVENT_CONNECTED) != 0) {
        // Handshake done: close at once (without close_notify, as a dropped connection).
        SSL_set_shutdown(bufferevent_openssl_get_ssl(bev), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    }
    bufferevent_free(bev);
}

void onAccept(evconnlistener* l, evutil_socket_t fd, sockaddr*, int, void*) {
    SSL* ssl = SSL_new(gCtx);
    bufferevent* bev = bufferevent_openssl_socket_new(evconnlistener_get_base(l), fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                      BEV_OPT_CLOSE_ON_FREE);
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    if (gUpstreamLen > 0) {
        auto* p = new Pair;
        p->client = bev;
        bufferevent_setcb(bev, onHead, nullptr, onPairEvent, p);
    } else {
        bufferevent_setcb(bev, nullptr, nullptr, onEvent, nullptr);
    }
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

}  // namespace

int main(int argc, char** argv) {
    std::string listen = "127.0.0.1:0", cert, key;
    bool tickets = false, blocking = false;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        if (a == "--listen" && i + 1 < argc)
            listen = argv[++i];
        else if (a == "--cert" && i + 1 < argc)
            cert = argv[++i];
        else if (a == "--key" && i + 1 < argc)
            key = argv[++i];
        else if (a == "--tickets")
            tickets = true;
        else if (a == "--blocking")
            blocking = true;
        else if (a == "--relay" && i + 1 < argc) {
            gUpstreamLen = sizeof gUpstream;
            if (evutil_parse_sockaddr_port(argv[++i], reinterpret_cast<sockaddr*>(&gUpstream), &gUpstreamLen) != 0) {
                std::fprintf(stderr, "tls_floor: --relay wants an address literal HOST:PORT\n");
                return 2;
            }
        } else {
            std::fprintf(stderr,
                         "usage: tls_floor --listen H:P --cert F --key F [--tickets] [--relay H:P [--blocking]]\n");
            return 2;
        }
    }
    if (blocking && gUpstreamLen == 0) {
        std::fprintf(stderr, "tls_floor: --blocking goes with --relay\n");
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    gCtx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(gCtx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(gCtx, cert.c_str()) != 1 ||
        SSL_CTX_use_PrivateKey_file(gCtx, key.c_str(), SSL_FILETYPE_PEM) != 1) {
        std::fprintf(stderr, "tls_floor: cannot load %s / %s\n", cert.c_str(), key.c_str());
        return 1;
    }
    SSL_CTX_set_session_cache_mode(gCtx, SSL_SESS_CACHE_OFF);
    if (tickets) {
        SSL_CTX_set_num_tickets(gCtx, 1);
    } else {
        SSL_CTX_set_options(gCtx, SSL_OP_NO_TICKET);
        SSL_CTX_set_num_tickets(gCtx, 0);
    }
    if (blocking) {
        SSL_CTX_set_read_ahead(gCtx, 1);
        SSL_CTX_set_default_read_buffer_len(gCtx, 64 * 1024 + SSL3_RT_MAX_ENCRYPTED_OVERHEAD);
    }
    auto colon = listen.rfind(':');
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(static_cast<uint16_t>(std::atoi(listen.c_str() + colon + 1)));
    if (inet_pton(AF_INET, listen.substr(0, colon).c_str(), &sa.sin_addr) != 1) return 2;
    event_base* base = event_base_new();
    evconnlistener* l = evconnlistener_new_bind(base, onAccept, nullptr, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE,
                                                4096, reinterpret_cast<sockaddr*>(&sa), sizeof sa);
    if (l == nullptr) {
        std::perror("tls_floor: listen");
        return 1;
    }
    sockaddr_in bound{};
    socklen_t len = sizeof bound;
    getsockname(evconnlistener_get_fd(l), reinterpret_cast<sockaddr*>(&bound), &len);
    std::printf("listening %s:%u\n", listen.substr(0, colon).c_str(), ntohs(bound.sin_port));
    std::fflush(stdout);
    if (blocking) {
        int lfd = evconnlistener_get_fd(l);
        evutil_make_socket_nonblocking(lfd);  // stays non-blocking; poll() waits
        for (;;) {
            pollfd pl{lfd, POLLIN, 0};
            if (::poll(&pl, 1, -1) < 0) continue;
            int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            std::thread(pumpConnection, fd).detach();
        }
    }
    event_base_dispatch(base);
    return 0;
}
