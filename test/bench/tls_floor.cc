// The floor for BENCHMARKS.md: a minimal event-driven TLS server (libevent + the same OpenSSL,
// ECDSA P-256, TLS 1.3, session tickets off unless --tickets) that accepts, completes the
// handshake and closes — nothing else. Its CPU per connection is what any TLS relay pays at
// least; `loadgen rate --tls-only` drives it.
//
//   tls_floor --listen 127.0.0.1:0 --cert CERT.pem --key KEY.pem [--tickets]
//   prints "listening HOST:PORT", serves until killed.
#include <arpa/inet.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <signal.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

SSL_CTX* gCtx = nullptr;

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
    bufferevent_setcb(bev, nullptr, nullptr, onEvent, nullptr);
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

}  // namespace

int main(int argc, char** argv) {
    std::string listen = "127.0.0.1:0", cert, key;
    bool tickets = false;
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
        else {
            std::fprintf(stderr, "usage: tls_floor --listen H:P --cert F --key F [--tickets]\n");
            return 2;
        }
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
    event_base_dispatch(base);
    return 0;
}
