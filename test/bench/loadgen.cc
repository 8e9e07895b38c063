// relaypro-loadgen: RelayPro's own load generator (libevent + OpenSSL), loopback only, bounded by
// count and time. One process per core (--processes); each runs its share on one event loop and
// the parent merges the results (histograms are mergeable buckets, not samples).
//
//   loadgen rate  --proxy H:P --target H:P [--auth bearer:FILE | basic:USER:PASS] [--cafile F]
//                 [--servername N] [--concurrency C | --arrival PER_SECOND] [--count N]
//                 [--seconds S] [--resume] [--payload BYTES] [--direct] [--processes P]
//                 [--source ADDR[,ADDR...]]
//       --target may list several host:port, taken in turn by successive tunnels; with --source,
//       process i binds its sockets to the i-th address (mod the count) before connecting.
//       tunnels: TCP + TLS (full, or resumed with a ticket), CONNECT with the credential, PAYLOAD
//       bytes echoed through the tunnel and checked, close. Reports tunnels/s, errors by kind and
//       latency percentiles per phase (tls: TCP+TLS, connect: the CONNECT answer, first: the
//       first echoed byte, total). --direct skips TLS and CONNECT (the no-proxy baseline).
//   loadgen steady ... --arrival R --seconds S   the same at a fixed arrival rate, every failure
//       counted and listed (lifecycle tests run it across a reload or an upgrade).
//   loadgen bulk  ... --tunnels K --bytes X [--one-way]   K tunnels each move X bytes both ways,
//       every byte checked against the sender's pseudo-random stream; MB/s each way. --one-way:
//       upload only, the echo target checks the stream and answers "OK"; MB/s one way.
//   loadgen idle  ... --tunnels N --hold S [--interval S] [--measure PID]
//       opens and holds N tunnels (NATS-like: 8 bytes every INTERVAL seconds, echo checked) and
//       reports RSS and descriptors of PID and its children per tunnel (from /proc).
//   loadgen echo  --listen H:P [--processes P]   the upstream target: echoes what it receives.
//   loadgen fleet --proxy H:P --target H:P --responders N ...   a fleet of Responders, each with
//       its token (refreshed before it expires), one long-lived tunnel with a few checked bytes
//       every interval, reconnecting with backoff and TLS resumption; a per-second timeline
//       (test/bench/fleet.h has its options and output).
//   --tls-only (rate): TCP + TLS handshake to --proxy, then close: drives test/bench/tls_floor.
//   --timeout S (rate, steady, bulk): a tunnel that makes no progress for S seconds (connect,
//       handshake, answer, echo) fails as "timeout" (default 30): a client that gives up.
//
// Output: one JSON object on stdout. Exit status 0 when every tunnel succeeded, 1 otherwise,
// 2 for usage errors.
#include <arpa/inet.h>
#include <dirent.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "test/bench/fleet.h"

namespace loadgen {

std::vector<std::string> splitCommas(const std::string& text) {
    std::vector<std::string> out;
    size_t start = 0;
    while (start <= text.size()) {
        size_t comma = text.find(',', start);
        if (comma == std::string::npos) comma = text.size();
        if (comma > start) out.push_back(text.substr(start, comma - start));
        start = comma + 1;
    }
    return out;
}

bool parseHostPort(const std::string& text, sockaddr_storage& ss, socklen_t& len, bool anyPort) {
    auto colon = text.rfind(':');
    if (colon == std::string::npos) return false;
    std::string host = text.substr(0, colon), port = text.substr(colon + 1);
    if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
    char* end = nullptr;
    unsigned long p = std::strtoul(port.c_str(), &end, 10);
    if (*end != '\0' || port.empty() || (p == 0 && !anyPort) || p > 65535) return false;
    std::memset(&ss, 0, sizeof ss);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&ss);
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&ss);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(static_cast<uint16_t>(p));
        len = sizeof(sockaddr_in);
        return true;
    }
    if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(static_cast<uint16_t>(p));
        len = sizeof(sockaddr_in6);
        return true;
    }
    return false;  // loopback addresses only: no name resolution
}

}  // namespace loadgen

namespace {

using loadgen::parseHostPort;
using loadgen::splitCommas;

uint64_t nowNs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

// Latency histogram in microseconds: 64 linear sub-buckets per power of two (about 1.5 %
// resolution), mergeable by adding counts.
struct Histogram {
    static constexpr int kSub = 64;
    static constexpr int kExp = 32;
    std::array<uint64_t, kSub * kExp> counts{};
    uint64_t n = 0;
    static int bucket(uint64_t us) {
        if (us < kSub) return static_cast<int>(us);
        int e = 63 - __builtin_clzll(us) - 6;  // us >= 64: (us >> e) in [64, 128)
        int sub = static_cast<int>(us >> e) - kSub;
        return std::min(kSub * kExp - 1, e * kSub + sub + kSub);
    }
    static double value(int b) {
        if (b < kSub) return b;
        int e = b / kSub - 1;
        int sub = b % kSub;
        return std::ldexp(kSub + sub + 0.5, e);
    }
    void add(uint64_t us) {
        ++counts[static_cast<size_t>(bucket(us))];
        ++n;
    }
    void merge(const Histogram& o) {
        for (size_t i = 0; i < counts.size(); ++i) counts[i] += o.counts[i];
        n += o.n;
    }
    [[nodiscard]] double percentile(double p) const {
        if (n == 0) return 0;
        auto want = static_cast<uint64_t>(std::ceil(p / 100.0 * static_cast<double>(n)));
        uint64_t seen = 0;
        for (size_t i = 0; i < counts.size(); ++i) {
            seen += counts[i];
            if (seen >= want) return value(static_cast<int>(i));
        }
        return value(static_cast<int>(counts.size()) - 1);
    }
};

enum Error : int { kConnectFailed, kTlsFailed, kProxyRefused, kClosedEarly, kTimeout, kMismatch, kErrorKinds };
constexpr const char* kErrorNames[kErrorKinds] = {"connect_failed", "tls_failed", "proxy_refused",
                                                  "closed_early",   "timeout",    "mismatch"};

// What one process reports to the parent (same binary: sent as bytes over a pipe).
struct Result {
    uint64_t started = 0, succeeded = 0, resumed = 0, tickets = 0;
    uint64_t errors[kErrorKinds] = {};
    uint64_t statuses[600] = {};  // proxy answers other than 200, by status
    uint64_t bytesUp = 0, bytesDown = 0;
    uint64_t elapsedNs = 0;
    Histogram tls, connect, first, total;
    // idle mode
    int64_t rssBeforeKiB = 0, rssAfterKiB = 0, fdsBefore = 0, fdsAfter = 0, held = 0;
    void merge(const Result& o) {
        started += o.started;
        succeeded += o.succeeded;
        resumed += o.resumed;
        tickets += o.tickets;
        for (int i = 0; i < kErrorKinds; ++i) errors[i] += o.errors[i];
        for (int i = 0; i < 600; ++i) statuses[i] += o.statuses[i];
        bytesUp += o.bytesUp;
        bytesDown += o.bytesDown;
        elapsedNs = std::max(elapsedNs, o.elapsedNs);
        tls.merge(o.tls);
        connect.merge(o.connect);
        first.merge(o.first);
        total.merge(o.total);
        held += o.held;
    }
    [[nodiscard]] uint64_t failed() const {
        uint64_t f = 0;
        for (auto e : errors) f += e;
        return f;
    }
};

struct Options {
    std::string mode;
    std::string proxy, target, listen, cafile, servername, authHeader;
    bool direct = false, resume = false, tlsOnly = false, oneWay = false;
    uint64_t concurrency = 50, count = 0, payload = 64, tunnels = 100, bytes = 1 << 20;
    double arrival = 0, seconds = 10, hold = 10, interval = 5;
    double timeout = 30;  // --timeout: a tunnel making no progress this long fails (a client giving up)
    int processes = 1;
    int processIndex = 0;  // which of the processes this is (set in each child)
    int measurePid = 0;
    std::vector<std::string> targets;  // --target split at commas: tunnels take them in turn
    std::vector<std::string> sources;  // --source: process i binds to sources[i % n]
    int readyFd = -1, releaseFd = -1;  // idle: each process says when all its tunnels are open,
                                       // and holds them until the parent closes releaseFd
};

// A deterministic byte stream per tunnel: what the sender writes and the reader expects back.
// Every stream is a window on one 4 MiB pseudo-random pattern (xorshift64, made once), starting
// at an offset of the tunnel's own and wrapping around, so that sending is a reference to the
// pattern (no copy) and checking is a memcmp against it: a 1 GB tunnel costs the generator
// little besides TLS.
inline constexpr size_t kPatternBytes = 4 << 20;

// bulk --one-way: what a tunnel sends first, so that the echo target checks instead of echoing.
inline constexpr char kSinkMagic[8] = {'R', 'P', 'S', 'I', 'N', 'K', '0', '1'};
struct SinkHeader {
    char magic[8];
    uint64_t seed;
    uint64_t bytes;
};

const uint8_t* pattern() {
    static const std::vector<uint8_t> bytes = [] {
        std::vector<uint8_t> b(kPatternBytes);
        uint64_t state = 0x2545F4914F6CDD1Dull;
        for (size_t i = 0; i < b.size(); i += 8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            std::memcpy(b.data() + i, &state, 8);
        }
        return b;
    }();
    return bytes.data();
}

struct Stream {
    size_t pos;
    explicit Stream(uint64_t seed) : pos(static_cast<size_t>((seed * 0x9E3779B97F4A7C15ull) >> 20) % kPatternBytes) {}
    // The next bytes of the stream, at most `n` (fewer where the pattern wraps).
    const uint8_t* next(size_t& n) {
        n = std::min(n, kPatternBytes - pos);
        const uint8_t* p = pattern() + pos;
        pos = (pos + n) % kPatternBytes;
        return p;
    }
    // Whether `data` is what the stream holds next (consuming it either way).
    bool matches(const uint8_t* data, size_t n) {
        while (n > 0) {
            size_t k = n;
            const uint8_t* p = next(k);
            if (std::memcmp(data, p, k) != 0) return false;
            data += k;
            n -= k;
        }
        return true;
    }
};

// RSS (KiB) and open descriptors of `pid0` and its children, from /proc.
void sampleProcesses(int pid0, int64_t& rssKiB, int64_t& fds) {
    rssKiB = 0;
    fds = 0;
    if (pid0 == 0) return;
    std::vector<int> pids{pid0};
    if (DIR* d = opendir("/proc")) {
        while (dirent* e = readdir(d)) {
            int pid = std::atoi(e->d_name);
            if (pid <= 0) continue;
            std::ifstream st("/proc/" + std::to_string(pid) + "/stat");
            std::string line;
            std::getline(st, line);
            auto close = line.rfind(')');
            if (close == std::string::npos) continue;
            std::istringstream rest(line.substr(close + 2));
            char state = 0;
            int ppid = 0;
            rest >> state >> ppid;
            if (ppid == pid0) pids.push_back(pid);
        }
        closedir(d);
    }
    for (int pid : pids) {
        std::ifstream status("/proc/" + std::to_string(pid) + "/status");
        for (std::string line; std::getline(status, line);) {
            if (line.rfind("VmRSS:", 0) == 0) rssKiB += std::atoll(line.c_str() + 6);
        }
        if (DIR* d = opendir(("/proc/" + std::to_string(pid) + "/fd").c_str())) {
            while (dirent* e = readdir(d)) {
                if (e->d_name[0] != '.') ++fds;
            }
            closedir(d);
        }
    }
}

class Generator;

struct Tunnel {
    Generator* g = nullptr;
    bufferevent* bev = nullptr;
    uint64_t id = 0;
    size_t slot = 0;  // index in the generator's live list
    uint64_t t0 = 0, tTls = 0, tConnect = 0, tFirst = 0;
    enum class State { Connecting, AwaitingAnswer, AwaitingClose, Exchanging, Done } state = State::Connecting;
    uint64_t toSend = 0, toReceive = 0;
    Stream out{0}, in{0};
    event* tick = nullptr;                // idle mode: the periodic few bytes
    const std::string* target = nullptr;  // host:port this tunnel asks for
    bool expectOk = false;                // bulk --one-way: the target's verdict comes back
};

class Generator {
public:
    Generator(const Options& o, uint64_t share, double arrival, uint64_t concurrency, uint64_t seedBase)
        : o_(o), share_(share), arrival_(arrival), concurrency_(concurrency), seed_(seedBase) {}

    int run(Result& r) {
        base_ = event_base_new();
        if (!o_.direct) {
            ctx_ = SSL_CTX_new(TLS_client_method());
            SSL_CTX_set_min_proto_version(ctx_, TLS1_2_VERSION);
            // A server that closes without close_notify (the TLS floor does) is not an error
            // here; as one, it would make OpenSSL mark the connection's ticket unusable.
            SSL_CTX_set_options(ctx_, SSL_OP_IGNORE_UNEXPECTED_EOF);
            if (!o_.cafile.empty()) {
                if (SSL_CTX_load_verify_locations(ctx_, o_.cafile.c_str(), nullptr) != 1) {
                    std::fprintf(stderr, "loadgen: cannot load %s\n", o_.cafile.c_str());
                    return 2;
                }
                SSL_CTX_set_verify(ctx_, SSL_VERIFY_PEER, nullptr);
            }
            SSL_CTX_set_session_cache_mode(ctx_, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
            SSL_CTX_set_ex_data(ctx_, 0, this);
            SSL_CTX_sess_set_new_cb(ctx_, &Generator::onNewSession);
        }
        for (const std::string& each : o_.direct ? o_.targets : std::vector<std::string>{o_.proxy}) {
            Address a;
            if (!parseHostPort(each, a.ss, a.len)) {
                std::fprintf(stderr, "loadgen: %s is not a numeric host:port\n", each.c_str());
                return 2;
            }
            addrs_.push_back(a);
        }
        if (!o_.sources.empty()) {
            const std::string& src = o_.sources[static_cast<size_t>(o_.processIndex) % o_.sources.size()];
            if (!parseHostPort(src + ":0", source_.ss, source_.len, true)) {
                std::fprintf(stderr, "loadgen: --source %s is not a numeric address\n", src.c_str());
                return 2;
            }
            haveSource_ = true;
        }
        result_ = &r;
        start_ = nowNs();
        deadline_ = start_ + static_cast<uint64_t>((o_.mode == "idle" ? o_.hold + 300 : o_.seconds) * 1e9);
        if (o_.releaseFd >= 0) {
            release_ = event_new(base_, o_.releaseFd, EV_READ, &Generator::onRelease, this);
            event_add(release_, nullptr);
        }
        timer_ = event_new(base_, -1, EV_PERSIST, &Generator::onTimer, this);
        timeval ms{0, 1000};
        event_add(timer_, &ms);
        fill();
        event_base_dispatch(base_);
        r.elapsedNs = (finishNs_ != 0 ? finishNs_ : nowNs()) - start_;
        event_free(timer_);
        if (release_ != nullptr) event_free(release_);
        event_base_free(base_);
        for (SSL_SESSION* t : tickets_) SSL_SESSION_free(t);
        if (lastTicket_ != nullptr) SSL_SESSION_free(lastTicket_);
        if (ctx_ != nullptr) SSL_CTX_free(ctx_);
        return 0;
    }

private:
    static int onNewSession(SSL* ssl, SSL_SESSION* s) {
        auto* g = static_cast<Generator*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), 0));
        // TLS 1.3 tickets are single-use: a pool, each taken by one connection.
        ++g->result_->tickets;
        g->tickets_.push_back(s);
        if (g->tickets_.size() > 256) {
            SSL_SESSION_free(g->tickets_.front());
            g->tickets_.pop_front();
        }
        return 1;  // ours now
    }

    [[nodiscard]] bool timeUp() const { return nowNs() >= deadline_; }
    [[nodiscard]] bool moreToStart() const {
        if (stopping_) return false;
        if (o_.mode == "bulk" || o_.mode == "idle") return started_ < share_;
        if (share_ != 0 && started_ >= share_) return false;
        return !timeUp();
    }

    // Keeps `concurrency` in flight (or, with an arrival rate, starts what is due).
    void fill() {
        if (arrival_ > 0) {
            auto due = static_cast<uint64_t>(static_cast<double>(nowNs() - start_) / 1e9 * arrival_) + 1;
            while (started_ < due && moreToStart()) startTunnel();
        } else {
            if (o_.mode == "idle") {
                // open at most `concurrency` at a time; the held ones do not count
                while (opening_ < concurrency_ && moreToStart()) startTunnel();
            } else {
                uint64_t limit = o_.mode == "bulk" ? share_ : concurrency_;
                while (inFlight_ < limit && moreToStart()) startTunnel();
            }
        }
        maybeFinish();
    }

    void maybeFinish() {
        if (o_.mode == "idle" && !holding_ && started_ >= share_ && opening_ == 0) {
            holding_ = true;
            result_->held = static_cast<int64_t>(inFlight_);
            if (o_.readyFd >= 0) {
                [[maybe_unused]] ssize_t n = write(o_.readyFd, "R", 1);
            }
        }
        if (inFlight_ == 0 && !moreToStart()) {
            if (finishNs_ == 0) finishNs_ = nowNs();
            event_base_loopexit(base_, nullptr);
        }
    }

    void closeAll() {
        std::vector<Tunnel*> all(live_.begin(), live_.end());
        for (Tunnel* t : all) finish(t, -1);
    }

    static void onTimer(evutil_socket_t, short, void* arg) {
        auto* g = static_cast<Generator*>(arg);
        if (g->timeUp() && !g->stopping_) {
            g->stopping_ = true;
            g->closeAll();
        }
        g->fill();
    }

    // Idle: the parent has measured; close everything.
    static void onRelease(evutil_socket_t, short, void* arg) {
        auto* g = static_cast<Generator*>(arg);
        g->stopping_ = true;
        g->finishNs_ = nowNs();
        g->closeAll();
        g->maybeFinish();
    }

    void startTunnel() {
        auto* t = new Tunnel;
        t->g = this;
        t->id = seed_ + started_;
        t->target = &o_.targets[started_ % o_.targets.size()];
        t->out = Stream(t->id);
        t->in = Stream(t->id);
        t->t0 = nowNs();
        ++started_;
        ++result_->started;
        ++inFlight_;
        ++opening_;
        t->slot = live_.size();
        live_.push_back(t);
        // With --source, the socket is bound to it first (the port is chosen at connect time, so
        // each source address has the whole ephemeral range towards every destination).
        int fd = -1;
        if (haveSource_) {
            fd = ::socket(source_.ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            int one = 1;
            if (fd < 0 || setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one) != 0 ||
                bind(fd, reinterpret_cast<sockaddr*>(&source_.ss), source_.len) != 0) {
                if (fd >= 0) ::close(fd);
                t->bev = bufferevent_socket_new(base_, -1, BEV_OPT_CLOSE_ON_FREE);
                return finish(t, kConnectFailed);
            }
        }
        const Address& to = addrs_[o_.direct ? (started_ - 1) % addrs_.size() : 0];
        if (o_.direct) {
            t->bev = bufferevent_socket_new(base_, fd, BEV_OPT_CLOSE_ON_FREE);
        } else {
            SSL* ssl = SSL_new(ctx_);
            if (!o_.servername.empty()) {
                // SSL_set_tlsext_host_name without its C cast (-Wold-style-cast)
                SSL_ctrl(ssl, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name,
                         const_cast<char*>(o_.servername.c_str()));
                if (!o_.cafile.empty()) SSL_set1_host(ssl, o_.servername.c_str());
            }
            if (o_.resume) {
                // A fresh ticket when there is one (single use, as TLS 1.3 recommends); else the
                // last one again (a server that sends no new ticket on resumption).
                if (!tickets_.empty()) {
                    if (lastTicket_ != nullptr) SSL_SESSION_free(lastTicket_);
                    lastTicket_ = tickets_.front();  // our reference moves there
                    tickets_.pop_front();
                }
                if (lastTicket_ != nullptr) SSL_set_session(ssl, lastTicket_);  // takes its own
            }
            t->bev = bufferevent_openssl_socket_new(base_, fd, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
            bufferevent_openssl_set_allow_dirty_shutdown(t->bev, 1);
        }
        bufferevent_setcb(t->bev, &Generator::onRead, &Generator::onWrite, &Generator::onEvent, t);
        if (o_.mode == "bulk") {
            bufferevent_set_max_single_read(t->bev, 256 * 1024);  // libevent's default is 16 KiB
            bufferevent_set_max_single_write(t->bev, 256 * 1024);
        }
        if (o_.mode != "idle") {
            auto micros = static_cast<int64_t>(o_.timeout * 1e6);
            timeval limit{static_cast<time_t>(micros / 1000000), static_cast<suseconds_t>(micros % 1000000)};
            bufferevent_set_timeouts(t->bev, &limit, &limit);
        }
        bufferevent_enable(t->bev, EV_READ | EV_WRITE);
        if (bufferevent_socket_connect(t->bev, reinterpret_cast<const sockaddr*>(&to.ss), static_cast<int>(to.len)) !=
            0) {
            finish(t, kConnectFailed);
        }
    }

    static void onEvent(bufferevent* bev, short what, void* arg) {
        auto* t = static_cast<Tunnel*>(arg);
        Generator* g = t->g;
        if ((what & BEV_EVENT_CONNECTED) != 0) {
            t->tTls = nowNs();
            if (!g->o_.direct) {
                SSL* ssl = bufferevent_openssl_get_ssl(bev);
                if (SSL_session_reused(ssl) == 1) ++g->result_->resumed;
                if (g->o_.tlsOnly) {
                    // The TLS floor: handshake, close. With --resume, read until the server
                    // closes, so the ticket it sent after the handshake is taken.
                    if (!g->o_.resume) return g->finish(t, -1);
                    t->state = Tunnel::State::AwaitingClose;
                    return;
                }
                int fd = static_cast<int>(bufferevent_getfd(bev));
                int one = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                std::string req =
                    "CONNECT " + *t->target + " HTTP/1.1\r\nHost: " + *t->target + "\r\n" + g->o_.authHeader + "\r\n";
                bufferevent_write(bev, req.data(), req.size());
                t->state = Tunnel::State::AwaitingAnswer;
            } else {
                t->tConnect = t->tTls;
                g->beginExchange(t);
            }
            return;
        }
        if ((what & BEV_EVENT_TIMEOUT) != 0) return g->finish(t, kTimeout);
        if (t->state == Tunnel::State::AwaitingClose) return g->finish(t, -1);
        if (t->state == Tunnel::State::Connecting) {
            bool tls = !g->o_.direct && bufferevent_get_openssl_error(bev) != 0;
            return g->finish(t, tls ? kTlsFailed : kConnectFailed);
        }
        g->finish(t, kClosedEarly);
    }

    void beginExchange(Tunnel* t) {
        t->state = Tunnel::State::Exchanging;
        if (o_.mode == "bulk" && o_.oneWay) {
            // Upload only: a header tells the target to check the stream instead of echoing it,
            // and it answers "OK\n" once all bytes arrived as they should.
            SinkHeader h{};
            std::memcpy(h.magic, kSinkMagic, sizeof h.magic);
            h.seed = t->id;
            h.bytes = o_.bytes;
            evbuffer_add(bufferevent_get_output(t->bev), &h, sizeof h);
            t->toSend = o_.bytes;
            t->toReceive = 3;
            t->expectOk = true;
        } else if (o_.mode == "bulk") {
            t->toSend = t->toReceive = o_.bytes;
        } else if (o_.mode == "idle") {
            t->toSend = t->toReceive = 8;
        } else {
            t->toSend = t->toReceive = o_.payload;
        }
        pump(t);
    }

    // Writes the tunnel's stream while the output buffer is short (back-pressure for bulk).
    void pump(Tunnel* t) {
        evbuffer* out = bufferevent_get_output(t->bev);
        while (t->toSend > 0 && evbuffer_get_length(out) < 1024 * 1024) {
            size_t n = static_cast<size_t>(std::min<uint64_t>(t->toSend, 256 * 1024));
            const uint8_t* p = t->out.next(n);
            evbuffer_add_reference(out, p, n, nullptr, nullptr);  // the pattern lives as long as we do
            t->toSend -= n;
            result_->bytesUp += n;
        }
    }

    static void onWrite(bufferevent*, void* arg) {
        auto* t = static_cast<Tunnel*>(arg);
        if (t->state == Tunnel::State::Exchanging) t->g->pump(t);
    }

    static void onRead(bufferevent* bev, void* arg) {
        auto* t = static_cast<Tunnel*>(arg);
        Generator* g = t->g;
        evbuffer* in = bufferevent_get_input(bev);
        if (t->state == Tunnel::State::AwaitingAnswer) {
            evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, nullptr);
            if (end.pos < 0) {
                if (evbuffer_get_length(in) > 16384) g->finish(t, kProxyRefused);
                return;
            }
            std::string head(static_cast<size_t>(end.pos) + 4, '\0');
            evbuffer_remove(in, head.data(), head.size());
            int status = 0;
            if (std::sscanf(head.c_str(), "HTTP/1.%*d %d", &status) != 1 || status != 200) {
                if (status > 0 && status < 600) ++g->result_->statuses[status];
                return g->finish(t, kProxyRefused);
            }
            t->tConnect = nowNs();
            g->beginExchange(t);
            if (evbuffer_get_length(in) == 0) return;
        }
        if (t->state != Tunnel::State::Exchanging) {
            evbuffer_drain(in, evbuffer_get_length(in));
            return;
        }
        if (t->expectOk) {
            if (evbuffer_get_length(in) < 3) return;
            char answer[3];
            evbuffer_remove(in, answer, 3);
            if (std::memcmp(answer, "OK\n", 3) != 0) return g->finish(t, kMismatch);
            t->toReceive = 0;
            if (t->tFirst == 0) t->tFirst = nowNs();
            return g->finish(t, t->toSend == 0 ? -1 : kMismatch);
        }
        // Checked where the bytes lie, one contiguous piece of the input buffer at a time.
        while (evbuffer_get_length(in) > 0) {
            auto un = static_cast<size_t>(evbuffer_get_contiguous_space(in));
            const auto* data = evbuffer_pullup(in, static_cast<ev_ssize_t>(un));
            if (t->tFirst == 0) t->tFirst = nowNs();
            if (un > t->toReceive || !t->in.matches(data, un)) return g->finish(t, kMismatch);
            evbuffer_drain(in, un);
            t->toReceive -= un;
            g->result_->bytesDown += un;
        }
        if (t->toReceive == 0 && t->toSend == 0) {
            if (g->o_.mode == "idle") return g->idleRound(t);
            g->finish(t, -1);
        }
    }

    // Idle mode: the tunnel is open and has echoed its first bytes; from now on a few bytes every
    // interval, until the hold ends.
    void idleRound(Tunnel* t) {
        if (t->tick == nullptr) {
            --opening_;
            ++result_->succeeded;
            result_->tls.add((t->tTls - t->t0) / 1000);
            result_->connect.add((t->tConnect - t->tTls) / 1000);
            t->tick = event_new(base_, -1, 0, &Generator::onIdleTick, t);
            fill();
        }
        timeval iv{static_cast<time_t>(o_.interval), static_cast<suseconds_t>(std::fmod(o_.interval, 1.0) * 1e6)};
        event_add(t->tick, &iv);
    }

    static void onIdleTick(evutil_socket_t, short, void* arg) {
        auto* t = static_cast<Tunnel*>(arg);
        t->toSend = t->toReceive = 8;
        t->g->pump(t);
        t->g->maybeFinish();
    }

    // Ends a tunnel: error < 0 is success (or a close at the end of a run).
    void finish(Tunnel* t, int error) {
        if (t->state == Tunnel::State::Done) return;
        bool wasOpening = t->tick == nullptr && o_.mode == "idle";
        if (error >= 0) {
            ++result_->errors[error];
        } else if (o_.mode != "idle") {
            uint64_t end = nowNs();
            if (stopping_ && (t->toReceive != 0 || t->toSend != 0 || (t->tTls == 0))) {
                // closed by the end of the run, not by a failure: not counted either way
                --result_->started;
            } else {
                ++result_->succeeded;
                result_->tls.add((t->tTls - t->t0) / 1000);
                if (t->tConnect != 0) result_->connect.add((t->tConnect - t->tTls) / 1000);
                if (t->tFirst != 0) result_->first.add((t->tFirst - t->tConnect) / 1000);
                result_->total.add((end - t->t0) / 1000);
            }
        }
        if (wasOpening) --opening_;
        t->state = Tunnel::State::Done;
        if (t->tick != nullptr) event_free(t->tick);
        if (!o_.direct && error < 0) {
            // Closing without close_notify (fast, like a Responder that drops the connection)
            // would make OpenSSL mark the connection's tickets "not resumable".
            SSL_set_shutdown(bufferevent_openssl_get_ssl(t->bev), SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
        }
        bufferevent_free(t->bev);
        // O(1): the last live tunnel takes this one's slot (100k tunnels end together in idle runs).
        live_[t->slot] = live_.back();
        live_[t->slot]->slot = t->slot;
        live_.pop_back();
        delete t;
        --inFlight_;
        if (!stopping_) fill();
        maybeFinish();
    }

    const Options& o_;
    uint64_t share_;
    double arrival_;
    uint64_t concurrency_;
    uint64_t seed_;
    event_base* base_ = nullptr;
    event* timer_ = nullptr;
    SSL_CTX* ctx_ = nullptr;
    std::deque<SSL_SESSION*> tickets_;
    SSL_SESSION* lastTicket_ = nullptr;
    struct Address {
        sockaddr_storage ss{};
        socklen_t len = 0;
    };
    std::vector<Address> addrs_;  // the proxy, or (direct) the targets
    Address source_;
    bool haveSource_ = false;
    Result* result_ = nullptr;
    uint64_t start_ = 0, deadline_ = 0, finishNs_ = 0;
    uint64_t started_ = 0, inFlight_ = 0, opening_ = 0;
    bool stopping_ = false, holding_ = false;
    event* release_ = nullptr;
    std::vector<Tunnel*> live_;
};

// ---- the echo target

// A target connection: echoes, unless it starts with a SinkHeader; then it checks that exactly
// the header's count of the header's stream arrives and answers "OK\n" (or "BAD\n").
// Plain recv()/send() on one scratch buffer per process, not a bufferevent: libevent 2.1 reads at
// most 4 KiB per wake-up (and asks FIONREAD first), which made the bulk figures measure this
// target's system calls. A connection holds memory of its own only while its peer is not reading
// (what send() did not take).
struct EchoConnection {
    enum class Mode { Deciding, Echo, Sink } mode = Mode::Deciding;
    int fd = -1;
    event* ev = nullptr;
    Stream expected{0};
    uint64_t left = 0;
    std::string head;     // the first bytes, until they say echo or sink
    std::string pending;  // echo: bytes send() did not take yet
    bool readEof = false;
    bool refused = false;  // a sink that said "BAD"
    int lowWater = 1;      // SO_RCVLOWAT

    ~EchoConnection() {
        event_free(ev);
        ::close(fd);
    }
};

std::array<uint8_t, 256 * 1024>& echoScratch() {
    static std::array<uint8_t, 256 * 1024> buf;
    return buf;
}

// Sends what it can of `data` (after anything pending); keeps the rest. False: the peer is gone.
bool echoSend(EchoConnection* c, const uint8_t* data, size_t n) {
    if (c->pending.empty()) {
        ssize_t w = ::send(c->fd, data, n, MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return false;
        size_t sent = w < 0 ? 0 : static_cast<size_t>(w);
        data += sent;
        n -= sent;
    }
    c->pending.append(reinterpret_cast<const char*>(data), n);
    return true;
}

// A sink is woken for a quarter MiB at a time, not for every segment (on loopback each wake-up
// of another CPU is an interrupt the sender pays for), and never for more than is still to come.
void sinkLowWater(EchoConnection* c) {
    int want = static_cast<int>(std::clamp<uint64_t>(c->left, 1, 256 * 1024));
    if (want == c->lowWater) return;
    c->lowWater = want;
    setsockopt(c->fd, SOL_SOCKET, SO_RCVLOWAT, &want, sizeof want);
}

// Decides from the first bytes; consumes the header of a sink. False: not decided yet.
bool echoDecide(EchoConnection* c, const uint8_t*& data, size_t& n) {
    size_t take = std::min(n, sizeof(SinkHeader) - c->head.size());
    c->head.append(reinterpret_cast<const char*>(data), take);
    size_t cmp = std::min(c->head.size(), sizeof kSinkMagic);
    if (std::memcmp(c->head.data(), kSinkMagic, cmp) != 0) {
        // Echo: everything seen so far goes back, the header's bytes included.
        c->mode = EchoConnection::Mode::Echo;
        std::string seen;
        seen.swap(c->head);
        seen.resize(seen.size() - take);  // `data` still holds the part just appended
        if (!seen.empty()) c->pending.append(seen);
        return true;
    }
    data += take;
    n -= take;
    if (c->head.size() < sizeof(SinkHeader)) return false;
    SinkHeader h{};
    std::memcpy(&h, c->head.data(), sizeof h);
    std::string().swap(c->head);
    c->mode = EchoConnection::Mode::Sink;
    c->expected = Stream(h.seed);
    c->left = h.bytes;
    sinkLowWater(c);
    return true;
}

void echoEvent(evutil_socket_t, short what, void* arg) {
    auto* c = static_cast<EchoConnection*>(arg);
    if ((what & EV_WRITE) != 0 && !c->pending.empty()) {
        ssize_t w = ::send(c->fd, c->pending.data(), c->pending.size(), MSG_NOSIGNAL);
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) return delete c;
        if (w > 0) c->pending.erase(0, static_cast<size_t>(w));
    }
    // Read only while nothing waits to go out: a peer that does not read stops its own echo.
    for (int turns = 0; c->pending.empty() && !c->readEof && turns < 16; ++turns) {
        auto& buf = echoScratch();
        ssize_t r = ::recv(c->fd, buf.data(), buf.size(), 0);
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
        if (r <= 0) {
            c->readEof = true;
            break;
        }
        const uint8_t* data = buf.data();
        auto n = static_cast<size_t>(r);
        if (c->mode == EchoConnection::Mode::Deciding && !echoDecide(c, data, n)) continue;
        if (c->mode == EchoConnection::Mode::Echo) {
            if (!echoSend(c, data, n)) return delete c;
            continue;
        }
        if (n == 0 || c->refused) continue;  // after "BAD", the rest is read and dropped until the end
        if (n > c->left || !c->expected.matches(data, n)) {
            c->refused = true;
            if (!echoSend(c, reinterpret_cast<const uint8_t*>("BAD\n"), 4)) return delete c;
            continue;
        }
        c->left -= n;
        sinkLowWater(c);
        if (c->left == 0 && !echoSend(c, reinterpret_cast<const uint8_t*>("OK\n"), 3)) return delete c;
    }
    if (c->readEof && c->pending.empty()) return delete c;
    short want = c->pending.empty() ? EV_READ : EV_WRITE;
    if (event_get_events(c->ev) != (want | EV_PERSIST)) {
        event_del(c->ev);
        event_assign(c->ev, event_get_base(c->ev), c->fd, want | EV_PERSIST, echoEvent, c);
        event_add(c->ev, nullptr);
    }
}

void echoAccept(evconnlistener* l, evutil_socket_t fd, sockaddr*, int, void*) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    evutil_make_socket_nonblocking(fd);
    auto* c = new EchoConnection;
    c->fd = fd;
    c->ev = event_new(evconnlistener_get_base(l), fd, EV_READ | EV_PERSIST, echoEvent, c);
    event_add(c->ev, nullptr);
}

int runEcho(const Options& o) {
    sockaddr_storage ss{};
    socklen_t len = 0;
    if (!parseHostPort(o.listen, ss, len, true)) {
        std::fprintf(stderr, "loadgen: --listen needs a numeric host:port\n");
        return 2;
    }
    for (int i = 1; i < o.processes; ++i) {
        if (fork() == 0) {
            prctl(PR_SET_PDEATHSIG, SIGKILL);  // ends with the process the scripts started
            if (getppid() == 1) return 0;
            break;
        }
    }
    event_base* base = event_base_new();
    evconnlistener* l = evconnlistener_new_bind(base, echoAccept, nullptr,
                                                LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT,
                                                4096, reinterpret_cast<sockaddr*>(&ss), static_cast<int>(len));
    if (l == nullptr) {
        std::fprintf(stderr, "loadgen: cannot listen on %s: %s\n", o.listen.c_str(), std::strerror(errno));
        return 1;
    }
    sockaddr_storage bound{};
    socklen_t boundLen = sizeof bound;
    getsockname(evconnlistener_get_fd(l), reinterpret_cast<sockaddr*>(&bound), &boundLen);
    char host[INET6_ADDRSTRLEN] = {};
    uint16_t port = 0;
    if (bound.ss_family == AF_INET) {
        auto* a = reinterpret_cast<sockaddr_in*>(&bound);
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
    } else {
        auto* a = reinterpret_cast<sockaddr_in6*>(&bound);
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
    }
    std::printf("listening %s:%u\n", host, port);
    std::fflush(stdout);
    event_base_dispatch(base);
    return 0;
}

// ---- command line and report

int usage(const char* why) {
    std::fprintf(stderr,
                 "loadgen: %s\nusage: loadgen rate|steady|bulk|idle|echo|fleet [options] (see the file's head)\n", why);
    return 2;
}

std::string jsonHistogram(const Histogram& h) {
    char buf[256];
    std::snprintf(buf, sizeof buf, "{\"n\":%" PRIu64 ",\"p50\":%.0f,\"p90\":%.0f,\"p99\":%.0f,\"p999\":%.0f}", h.n,
                  h.percentile(50), h.percentile(90), h.percentile(99), h.percentile(99.9));
    return buf;
}

void report(const Options& o, const Result& r) {
    double seconds = static_cast<double>(r.elapsedNs) / 1e9;
    std::printf("{\"mode\":\"%s\",\"processes\":%d,\"seconds\":%.3f,\"started\":%" PRIu64 ",\"succeeded\":%" PRIu64
                ",\"failed\":%" PRIu64 ",\"resumed\":%" PRIu64 ",\"ticketsReceived\":%" PRIu64,
                o.mode.c_str(), o.processes, seconds, r.started, r.succeeded, r.failed(), r.resumed, r.tickets);
    std::printf(",\"tunnelsPerSecond\":%.1f", seconds > 0 ? static_cast<double>(r.succeeded) / seconds : 0.0);
    std::printf(",\"errors\":{");
    bool first = true;
    for (int i = 0; i < kErrorKinds; ++i) {
        if (r.errors[i] == 0) continue;
        std::printf("%s\"%s\":%" PRIu64, first ? "" : ",", kErrorNames[i], r.errors[i]);
        first = false;
    }
    std::printf("},\"statuses\":{");
    first = true;
    for (int i = 0; i < 600; ++i) {
        if (r.statuses[i] == 0) continue;
        std::printf("%s\"%d\":%" PRIu64, first ? "" : ",", i, r.statuses[i]);
        first = false;
    }
    std::printf("}");
    std::printf(",\"latencyUs\":{\"tls\":%s,\"connect\":%s,\"first\":%s,\"total\":%s}", jsonHistogram(r.tls).c_str(),
                jsonHistogram(r.connect).c_str(), jsonHistogram(r.first).c_str(), jsonHistogram(r.total).c_str());
    if (o.mode == "bulk" && o.oneWay) {
        std::printf(",\"bytesOneWay\":%" PRIu64 ",\"mbPerSecondOneWay\":%.1f", r.bytesUp,
                    seconds > 0 ? static_cast<double>(r.bytesUp) / seconds / 1e6 : 0.0);
    } else if (o.mode == "bulk") {
        std::printf(",\"bytesEachWay\":%" PRIu64 ",\"mbPerSecondEachWay\":%.1f", r.bytesDown,
                    seconds > 0 ? static_cast<double>(r.bytesDown) / seconds / 1e6 : 0.0);
    }
    if (o.mode == "idle") {
        double n = r.held > 0 ? static_cast<double>(r.held) : 1.0;
        std::printf(",\"held\":%" PRId64 ",\"rssKiBBefore\":%" PRId64 ",\"rssKiBAfter\":%" PRId64
                    ",\"rssKiBPerTunnel\":%.2f,\"fdsBefore\":%" PRId64 ",\"fdsAfter\":%" PRId64
                    ",\"fdsPerTunnel\":%.2f",
                    r.held, r.rssBeforeKiB, r.rssAfterKiB, static_cast<double>(r.rssAfterKiB - r.rssBeforeKiB) / n,
                    r.fdsBefore, r.fdsAfter, static_cast<double>(r.fdsAfter - r.fdsBefore) / n);
    }
    std::printf("}\n");
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2) return usage("missing mode");
    Options o;
    o.mode = argv[1];
    if (o.mode == "fleet") return loadgen::runFleet(argc - 1, argv + 1);
    if (o.mode != "rate" && o.mode != "steady" && o.mode != "bulk" && o.mode != "idle" && o.mode != "echo") {
        return usage("unknown mode");
    }
    std::string auth;
    for (int i = 2; i < argc; ++i) {
        std::string a = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "loadgen: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--proxy")
            o.proxy = value();
        else if (a == "--target")
            o.target = value();
        else if (a == "--source")
            o.sources = splitCommas(value());
        else if (a == "--listen")
            o.listen = value();
        else if (a == "--cafile")
            o.cafile = value();
        else if (a == "--servername")
            o.servername = value();
        else if (a == "--auth")
            auth = value();
        else if (a == "--direct")
            o.direct = true;
        else if (a == "--one-way")
            o.oneWay = true;
        else if (a == "--resume")
            o.resume = true;
        else if (a == "--tls-only")
            o.tlsOnly = true;
        else if (a == "--concurrency")
            o.concurrency = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--arrival")
            o.arrival = std::strtod(value().c_str(), nullptr);
        else if (a == "--count")
            o.count = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--seconds")
            o.seconds = std::strtod(value().c_str(), nullptr);
        else if (a == "--payload")
            o.payload = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--tunnels")
            o.tunnels = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--bytes")
            o.bytes = std::strtoull(value().c_str(), nullptr, 10);
        else if (a == "--hold")
            o.hold = std::strtod(value().c_str(), nullptr);
        else if (a == "--interval")
            o.interval = std::strtod(value().c_str(), nullptr);
        else if (a == "--timeout")
            o.timeout = std::strtod(value().c_str(), nullptr);
        else if (a == "--processes")
            o.processes = std::max(1, std::atoi(value().c_str()));
        else if (a == "--measure")
            o.measurePid = std::atoi(value().c_str());
        else
            return usage(("unknown option " + a).c_str());
    }
    signal(SIGPIPE, SIG_IGN);
    if (o.mode == "echo") return runEcho(o);
    if (o.tlsOnly && o.target.empty()) o.target = "-";  // no CONNECT: no target
    o.targets = splitCommas(o.target);
    if (o.target.empty() || (o.proxy.empty() && !o.direct))
        return usage("--target and --proxy (or --direct) are needed");
    if (o.seconds <= 0 || o.seconds > 3600) return usage("--seconds must be in (0, 3600]");
    if (o.timeout <= 0 || o.timeout > 3600) return usage("--timeout must be in (0, 3600]");
    if (o.mode == "steady" && o.arrival <= 0) return usage("steady needs --arrival");
    if (o.payload == 0) o.payload = 1;
    if (auth.rfind("bearer:", 0) == 0) {
        std::ifstream f(auth.substr(7));
        std::string token;
        std::getline(f, token);
        if (token.empty()) return usage("--auth bearer:FILE: no token in the file");
        o.authHeader = "Proxy-Authorization: Bearer " + token + "\r\n";
    } else if (auth.rfind("basic:", 0) == 0) {
        std::string cred = auth.substr(6);
        std::string b64(sodium_base64_ENCODED_LEN(cred.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
        sodium_bin2base64(b64.data(), b64.size(), reinterpret_cast<const unsigned char*>(cred.data()), cred.size(),
                          sodium_base64_VARIANT_ORIGINAL);
        b64.resize(std::strlen(b64.c_str()));
        o.authHeader = "Proxy-Authorization: Basic " + b64 + "\r\n";
    } else if (!auth.empty()) {
        return usage("--auth is bearer:FILE or basic:USER:PASS");
    }
    if (o.mode == "steady") o.count = 0;
    uint64_t share = (o.mode == "bulk" || o.mode == "idle") ? o.tunnels : o.count;

    // Idle: the parent measures the relay before any tunnel, and again once every process holds
    // all of its tunnels and they have ticked for --hold seconds; then it releases them.
    int ready[2] = {-1, -1}, release[2] = {-1, -1};
    int64_t rssBefore = 0, fdsBefore = 0;
    if (o.mode == "idle") {
        sampleProcesses(o.measurePid, rssBefore, fdsBefore);
        if (pipe(ready) != 0 || pipe(release) != 0) return 1;
        o.readyFd = ready[1];
        o.releaseFd = release[0];
    }

    // One process per share; each reports its Result over a pipe.
    std::vector<std::pair<pid_t, int>> children;
    for (int p = 0; p < o.processes; ++p) {
        int fds[2];
        if (pipe(fds) != 0) return 1;
        pid_t pid = fork();
        if (pid == 0) {
            o.processIndex = p;
            close(fds[0]);
            if (ready[0] >= 0) close(ready[0]);
            if (release[1] >= 0) close(release[1]);
            auto part = [&](uint64_t total) {
                return total / static_cast<uint64_t>(o.processes) +
                       (static_cast<uint64_t>(p) < total % static_cast<uint64_t>(o.processes) ? 1 : 0);
            };
            Result r;
            uint64_t concurrency = std::max<uint64_t>(1, part(o.concurrency));
            Generator g(o, share == 0 ? 0 : part(share), o.arrival / o.processes, concurrency,
                        static_cast<uint64_t>(p) << 40);
            int rc = g.run(r);
            const auto* bytes = reinterpret_cast<const char*>(&r);
            size_t left = sizeof r;
            while (left > 0) {
                ssize_t n = write(fds[1], bytes, left);
                if (n <= 0) break;
                bytes += n;
                left -= static_cast<size_t>(n);
            }
            _exit(rc);
        }
        close(fds[1]);
        children.emplace_back(pid, fds[0]);
    }
    int64_t rssAfter = 0, fdsAfter = 0;
    if (o.mode == "idle") {
        close(ready[1]);
        close(release[0]);
        int readyCount = 0;
        char c = 0;
        while (readyCount < o.processes && read(ready[0], &c, 1) == 1) ++readyCount;
        if (readyCount == o.processes) {
            usleep(static_cast<useconds_t>(o.hold * 1e6));
            sampleProcesses(o.measurePid, rssAfter, fdsAfter);
        }
        close(release[1]);  // EOF: every process closes its tunnels
        close(ready[0]);
    }
    Result total;
    int worst = 0;
    for (auto& [pid, fd] : children) {
        Result r;
        auto* bytes = reinterpret_cast<char*>(&r);
        size_t got = 0;
        while (got < sizeof r) {
            ssize_t n = read(fd, bytes + got, sizeof r - got);
            if (n <= 0) break;
            got += static_cast<size_t>(n);
        }
        close(fd);
        int status = 0;
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
            worst = std::max(worst, WIFEXITED(status) ? WEXITSTATUS(status) : 1);
        if (got == sizeof r) total.merge(r);
    }
    total.rssBeforeKiB = rssBefore;
    total.fdsBefore = fdsBefore;
    total.rssAfterKiB = rssAfter;
    total.fdsAfter = fdsAfter;
    report(o, total);
    if (worst != 0) return worst;
    return total.failed() == 0 && total.succeeded > 0 ? 0 : 1;
}
