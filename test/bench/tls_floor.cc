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
//  - With --relay head the upstream is the HOST:PORT of the request line (an address literal, as
//    RelayPro's CONNECT to the console asks), and --source-ports LOW-HIGH draws the upstream
//    connections' source ports as RelayPro's limits.sourcePorts does (worker/source_port.h).
//  - With --ca-bundle FILE its session tickets are RelayPro's: the current and the previous hour's
//    ticket keys derived from that CA bundle (protocol.md) and the worker's own ticket callback, so
//    that a fleet holding RelayPro's tickets resumes here (the restart storm's floor:
//    run-lifecycle.sh, STORM_BACKLOGS with "floor"). The keys are those of the hour it started
//    in: it is for runs shorter than an hour. Its TLS settings are then the workers'
//    (worker/server.cc) but for read-ahead, which libevent's OpenSSL bufferevent cannot use (it
//    asks SSL_pending, which does not count bytes read ahead, and would stall), and accepted
//    connections get TCP_NODELAY as the relay's listener gives them (also with --relay head).
//    With --verify-tokens ORG as well, a request must carry "Proxy-Authorization: Bearer TOKEN"
//    with a token of that organization that RelayPro's verifier accepts (common/token.h, the
//    day's masters from the same CA bundle); other requests get a 407 and are closed.
//  - With --processes N it serves from N processes sharing one listening socket, as RelayPro's
//    workers do. Each raises its descriptor limit to the hard one and stops accepting while it
//    holds (limit − 64) / 2 connections (--max-pairs: fewer), which the others accept; an accept
//    that fails (EMFILE and the like) pauses its listener for 100 ms rather than spin. A SIGTERM
//    ends them all before the parent exits, so that the port is free when it has; the parent
//    exits 1 if any of them ended unasked (and then ends the others).
//
//   tls_floor --listen 127.0.0.1:0 --cert CERT.pem --key KEY.pem [--tickets | --ca-bundle FILE
//             [--verify-tokens ORG]] [--relay HOST:PORT [--blocking] | --relay head
//             [--source-ports LOW-HIGH]] [--processes N [--max-pairs N]]
//   prints "listening HOST:PORT", serves until killed (a forked process ends with its parent).
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
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "common/config.h"
#include "common/token.h"
#include "supervisor/ca_bundle.h"
#include "supervisor/trust.h"
#include "worker/key_store.h"
#include "worker/source_port.h"

namespace {

SSL_CTX* gCtx = nullptr;
sockaddr_storage gUpstream{};
int gUpstreamLen = 0;
bool gUpstreamFromHead = false;  // --relay head
relaypro::PortRange gSourcePorts;
// --processes: connections this process holds, and its listener, paused while it holds
// gMaxPairs (0: no limit) or after a failed accept (gResume re-enables it).
long gMaxPairs = 0;
long gPairs = 0;
evconnlistener* gListener = nullptr;
event* gResume = nullptr;
// --verify-tokens: the keys (RelayPro's worker key store) and the organization tokens must name.
relaypro::KeyStore* gKeys = nullptr;
int64_t gOrganization = 0;

// --relay: one client connection and, once its head arrived, its upstream connection.
struct Pair {
    bufferevent* client = nullptr;
    bufferevent* upstream = nullptr;
};

void freePair(Pair* p) {
    if (--gPairs == gMaxPairs - 1 && gMaxPairs > 0) evconnlistener_enable(gListener);
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

// --verify-tokens: whether the head carries a Bearer token RelayPro would accept.
bool bearerValid(std::string_view head) {
    constexpr std::string_view kField = "\r\nProxy-Authorization: Bearer ";
    const size_t at = head.find(kField);
    if (at == std::string_view::npos) return false;
    std::string_view token = head.substr(at + kField.size());
    token = token.substr(0, token.find("\r\n"));
    const auto lookup = [](int64_t day, std::string_view responderId) {
        return gKeys->responderKeyFor(day, responderId);
    };
    const int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    return static_cast<bool>(relaypro::verifyToken(token, lookup, gOrganization, now, 60));
}

// The upstream of a head whose request line is "CONNECT HOST:PORT HTTP/1.1" (an address literal).
bool upstreamOf(std::string_view head, sockaddr_storage& dst) {
    const std::string_view line = head.substr(0, std::min<size_t>(head.find("\r\n"), 300));
    const size_t from = line.find(' ');
    const size_t to = from == std::string_view::npos ? from : line.find(' ', from + 1);
    if (to == std::string_view::npos) return false;
    const std::string target(line.substr(from + 1, to - from - 1));
    int len = sizeof dst;
    return evutil_parse_sockaddr_port(target.c_str(), reinterpret_cast<sockaddr*>(&dst), &len) == 0;
}

void onHead(bufferevent* bev, void* arg) {
    auto* p = static_cast<Pair*>(arg);
    evbuffer* in = bufferevent_get_input(bev);
    evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, nullptr);
    if (end.pos < 0) return;
    const size_t headLen = static_cast<size_t>(end.pos) + 4;
    sockaddr_storage dst{};
    if (gUpstreamFromHead || gKeys != nullptr) {
        const std::string_view head(
            reinterpret_cast<const char*>(evbuffer_pullup(in, static_cast<ev_ssize_t>(headLen))), headLen);
        if (gKeys != nullptr && !bearerValid(head)) {
            static constexpr std::string_view k407 =
                "HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
            bufferevent_disable(bev, EV_READ);
            bufferevent_setcb(bev, nullptr, onFlushed, onPairEvent, p);
            evbuffer_add(bufferevent_get_output(bev), k407.data(), k407.size());
            return;
        }
        if (gUpstreamFromHead && !upstreamOf(head, dst)) {
            freePair(p);
            return;
        }
    }
    evbuffer_drain(in, headLen);
    bufferevent_setcb(bev, nullptr, nullptr, onPairEvent, p);
    if (gUpstreamFromHead) {
        const int fd = relaypro::connectFromRange(dst, gSourcePorts);
        if (fd < 0) {
            freePair(p);
            return;
        }
        p->upstream = bufferevent_socket_new(bufferevent_get_base(bev), fd, BEV_OPT_CLOSE_ON_FREE);
        if (p->upstream == nullptr) {
            ::close(fd);
            freePair(p);
            return;
        }
        bufferevent_setcb(p->upstream, nullptr, nullptr, onPairEvent, p);
        // The socket is connecting already (connectFromRange): no address, wait for it.
        if (bufferevent_socket_connect(p->upstream, nullptr, 0) != 0) freePair(p);
        return;
    }
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
    if (gKeys != nullptr || gUpstreamFromHead) {  // as the relay's listener gives its connections
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    SSL* ssl = SSL_new(gCtx);
    bufferevent* bev = bufferevent_openssl_socket_new(evconnlistener_get_base(l), fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
                                                      BEV_OPT_CLOSE_ON_FREE);
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
    if (gUpstreamLen > 0 || gUpstreamFromHead) {
        if (++gPairs == gMaxPairs) evconnlistener_disable(l);
        auto* p = new Pair;
        p->client = bev;
        bufferevent_setcb(bev, onHead, nullptr, onPairEvent, p);
    } else {
        bufferevent_setcb(bev, nullptr, nullptr, onEvent, nullptr);
    }
    bufferevent_enable(bev, EV_READ | EV_WRITE);
}

// A failed accept (out of descriptors, buffers): the listener stays readable, so pause it.
void onResume(evutil_socket_t, short, void*) {
    if (gMaxPairs == 0 || gPairs < gMaxPairs) evconnlistener_enable(gListener);
}
void onAcceptError(evconnlistener* l, void*) {
    evconnlistener_disable(l);
    const timeval pause{0, 100 * 1000};
    evtimer_add(gResume, &pause);
}

// What the supervisor would hand a worker now (Trust::secrets): the current and the previous
// hour's ticket keys and today's and yesterday's token masters of RelayPro's CA bundle at `path`.
bool loadKeys(const std::string& path, relaypro::KeyStore& keys) {
    const auto now = std::chrono::system_clock::now();
    auto ca = relaypro::CaBundle::load(path, now);
    if (!ca) {
        std::fprintf(stderr, "tls_floor: %s\n", ca.error().message.c_str());
        return false;
    }
    const auto secrets = relaypro::Trust::adopt(std::move(*ca), relaypro::Config{}, {}).secrets(now);
    keys.update(secrets.ticketKeys, secrets.masters);
    return true;
}

// Forks N serving processes (true in each). The parent waits for them; a SIGTERM to it ends them
// all (SIGTERM each, then it exits once they have), and its death by any other means ends them too.
bool forkServers(int n) {
    sigset_t mask, old;
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGCHLD);
    sigprocmask(SIG_BLOCK, &mask, &old);
    const pid_t parent = getpid();
    std::vector<pid_t> children;
    for (int i = 0; i < n; ++i) {
        const pid_t pid = fork();
        if (pid < 0) {
            for (pid_t c : children) kill(c, SIGTERM);
            return false;
        }
        if (pid == 0) {
            sigprocmask(SIG_SETMASK, &old, nullptr);
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(0);
            return true;
        }
        children.push_back(pid);
    }
    bool stopping = false;
    int unasked = 0;
    while (!children.empty()) {
        int sig = 0;
        if (sigwait(&mask, &sig) != 0) continue;
        if (sig == SIGTERM) {
            stopping = true;
            for (pid_t c : children) kill(c, SIGTERM);
            continue;
        }
        int status = 0;
        for (pid_t pid; (pid = waitpid(-1, &status, WNOHANG)) > 0;) {
            children.erase(std::remove(children.begin(), children.end(), pid), children.end());
            if (stopping && WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) continue;
            // Ended unasked: its connections are gone, the figure is not a floor's. End the rest.
            ++unasked;
            std::fprintf(stderr, "tls_floor: serving process %d ended unasked (%s %d); ending the others\n",
                         static_cast<int>(pid), WIFSIGNALED(status) ? "signal" : "exit status",
                         WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
            stopping = true;
            for (pid_t c : children) kill(c, SIGTERM);
        }
    }
    std::exit(unasked == 0 ? 0 : 1);
}

}  // namespace

int main(int argc, char** argv) {
    std::string listen = "127.0.0.1:0", cert, key, caBundle;
    bool tickets = false, blocking = false;
    int processes = 0;
    long maxPairs = 0;
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
        else if (a == "--ca-bundle" && i + 1 < argc)
            caBundle = argv[++i];
        else if (a == "--blocking")
            blocking = true;
        else if (a == "--processes" && i + 1 < argc)
            processes = std::atoi(argv[++i]);
        else if (a == "--max-pairs" && i + 1 < argc)
            maxPairs = std::atol(argv[++i]);
        else if (a == "--verify-tokens" && i + 1 < argc)
            gOrganization = std::atoll(argv[++i]);
        else if (a == "--source-ports" && i + 1 < argc) {
            unsigned low = 0, high = 0;
            if (std::sscanf(argv[++i], "%u-%u", &low, &high) != 2 || low == 0 || low > high || high > 65535) {
                std::fprintf(stderr, "tls_floor: --source-ports wants LOW-HIGH\n");
                return 2;
            }
            gSourcePorts = {static_cast<uint16_t>(low), static_cast<uint16_t>(high)};
        } else if (a == "--relay" && i + 1 < argc && std::string(argv[i + 1]) == "head") {
            gUpstreamFromHead = true;
            ++i;
        } else if (a == "--relay" && i + 1 < argc) {
            gUpstreamLen = sizeof gUpstream;
            if (evutil_parse_sockaddr_port(argv[++i], reinterpret_cast<sockaddr*>(&gUpstream), &gUpstreamLen) != 0) {
                std::fprintf(stderr, "tls_floor: --relay wants an address literal HOST:PORT or head\n");
                return 2;
            }
        } else {
            std::fprintf(
                stderr,
                "usage: tls_floor --listen H:P --cert F --key F [--tickets | --ca-bundle F [--verify-tokens ORG]] "
                "[--relay H:P [--blocking] | --relay head [--source-ports LOW-HIGH]] [--processes N "
                "[--max-pairs N]]\n");
            return 2;
        }
    }
    if (blocking && gUpstreamLen == 0) {
        std::fprintf(stderr, "tls_floor: --blocking goes with --relay HOST:PORT\n");
        return 2;
    }
    if (blocking && processes > 0) {
        std::fprintf(stderr, "tls_floor: --blocking is one process\n");
        return 2;
    }
    if (gSourcePorts.low != 0 && !gUpstreamFromHead) {
        std::fprintf(stderr, "tls_floor: --source-ports goes with --relay head\n");
        return 2;
    }
    if (gOrganization != 0 && (caBundle.empty() || (gUpstreamLen == 0 && !gUpstreamFromHead))) {
        std::fprintf(stderr, "tls_floor: --verify-tokens goes with --ca-bundle and --relay\n");
        return 2;
    }
    if (processes < 0 || maxPairs < 0 || (maxPairs > 0 && processes == 0)) {
        std::fprintf(stderr, "tls_floor: --max-pairs goes with --processes; both are counts\n");
        return 2;
    }
    if (processes > 0) {  // the hard limit of descriptors, two a connection, some to spare
        rlimit nofile{};
        getrlimit(RLIMIT_NOFILE, &nofile);
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
        const long share = (static_cast<long>(std::min<rlim_t>(nofile.rlim_cur, 1 << 20)) - 64) / 2;
        gMaxPairs = maxPairs > 0 ? std::min(maxPairs, share) : share;
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
    relaypro::KeyStore keys;
    if (!caBundle.empty()) {
        if (!loadKeys(caBundle, keys)) return 1;
        keys.attach(gCtx);  // RelayPro's ticket callback, one ticket a handshake
        if (gOrganization != 0) gKeys = &keys;
        // The workers' settings (worker/server.cc) but read-ahead (see the top of this file) and
        // the modes for large partial writes, which libevent's bufferevent handles its own way.
        SSL_CTX_set_options(gCtx, SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                      SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
        SSL_CTX_set_mode(gCtx, SSL_MODE_RELEASE_BUFFERS | SSL_MODE_NO_AUTO_CHAIN);
    } else if (tickets) {
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
    const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int one = 1;
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        ::bind(lfd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 || ::listen(lfd, 4096) != 0) {
        std::perror("tls_floor: listen");
        return 1;
    }
    sockaddr_in bound{};
    socklen_t len = sizeof bound;
    getsockname(lfd, reinterpret_cast<sockaddr*>(&bound), &len);
    std::printf("listening %s:%u\n", listen.substr(0, colon).c_str(), ntohs(bound.sin_port));
    std::fflush(stdout);
    if (blocking) {
        for (;;) {
            pollfd pl{lfd, POLLIN, 0};
            if (::poll(&pl, 1, -1) < 0) continue;
            int fd = ::accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
            if (fd < 0) continue;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            std::thread(pumpConnection, fd).detach();
        }
    }
    if (processes > 0 && !forkServers(processes)) {
        std::perror("tls_floor: fork");
        return 1;
    }
    event_base* base = event_base_new();
    gListener = evconnlistener_new(base, onAccept, nullptr, LEV_OPT_CLOSE_ON_FREE, 0, lfd);  // 0: listening
    if (gListener == nullptr) {
        std::perror("tls_floor: evconnlistener_new");
        return 1;
    }
    gResume = evtimer_new(base, onResume, nullptr);
    evconnlistener_set_error_cb(gListener, onAcceptError);
    event_base_dispatch(base);
    return 0;
}
