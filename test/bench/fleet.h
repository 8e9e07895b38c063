// `loadgen fleet`: the load generator as a fleet of Responders. Each Responder gets a Bearer
// token from the relay's token endpoint and keeps it, refreshes it before it expires, holds one
// long-lived tunnel with NATS-like traffic (8 checked bytes every interval) and, when the tunnel
// ends, reconnects with exponential backoff and full jitter, resuming TLS with the newest ticket
// it was given. One process per share of the fleet, one event loop each (fleet.cc: the
// Responders); the parent reads their counters from shared memory and writes the timeline (the
// inline part of this header: the command line, the timeline, the processes).
//
//   loadgen fleet --proxy H:P --target H:P[,H:P...] --responders N [--processes P] [--source ADDRS]
//         [--cafile F] [--servername NAME] [--interval S] [--seconds S] [--refresh S] [--ramp PER_S]
//         [--backoff-min MS] [--backoff-max MS] [--timeout S] [--token-concurrency K]
//         [--connect-concurrency K]
//         [--id-prefix fleet-] [--credential-prefix cred-] [--timeline FILE] [--console-journal FILE]
//         [--groups LIST] [--source-port-low N --source-port-high N]
//
//   Responder i is `<id-prefix>i` with credential `<credential-prefix>i` (console_sim.py's
//   fleetPrefix accepts them all) and asks for targets[i % n]. --ramp: Responders started per
//   second, the whole fleet (default 1000). --refresh: a new token this many seconds before
//   `expiresIn` runs out (default 300; at least 1 s after the last one, less up to 10 % jitter).
//   --connect-concurrency: tunnels connecting (TCP, TLS, CONNECT) at once per process, the others
//   waiting their turn (default 0: no limit). One process plays thousands of Responders on a
//   share of a core: past what it processes within --timeout, its Responders would give up waiting
//   for their own process (a real one has a CPU of its own). The wait is not counted against
//   --timeout; it is in the time a storm takes.
//   --interval: 8 checked bytes each way per tunnel every S seconds (default 5). --timeout: for a
//   handshake, an answer or an echo (default 15). Reconnects wait uniform(0, min(max, min * 2^n))
//   ms (full jitter; n = failures since the last echo), or a 429/503's Retry-After plus up to half
//   of it again. --seconds: run length (default 60); SIGTERM or SIGINT ends the run earlier.
//   --groups: the TLS key exchange groups offered (default: OpenSSL 3.5's, X25519MLKEM768 first as in
//   current Responders' TLS stacks; "X25519" makes the generator lighter: ~23 instead of ~34 KiB
//   per idle Responder, as OpenSSL keeps the ML-KEM key share for the connection's life).
//   --source-port-low/-high (with --source): each connection binds a random port of the range
//   and connects at once, another port when that four-tuple is taken (what RelayPro's
//   limits.sourcePorts does: connect()'s own search walks every used port once half its range
//   towards one destination is in use); the range must lie outside ip_local_port_range.
//
// Timeline (--timeline FILE, else stderr), one JSON object a line, written when it happens:
//   {"second":S,"time":UNIX,"responders":N,"open":N,"tokensHeld":N,"established":d,"reconnects":d,
//    "tokenRequests":d,"tokens":d,"echoes":d,"resumed":d,"full":d,"connectsQueued":d,
//    "failures":{"closed":d,...},
//    "consoleCalls":d,"consoleVerify":d,"loopLagMaxMs":N}
//     every second: responders, open and tokensHeld are gauges, the rest counts of that second;
//     loopLagMaxMs: the longest any fleet process's 100 ms housekeeping tick ran late in that
//     second — how far the generator's own event loop is behind (beyond --timeout, its
//     Responders give up on its account, not the relay's); 0 also when no tick ran in that
//     second at all (a loop stuck longer: the tick that ends it reports the whole lag);
//     failures by kind (kCounterNames below): connect_refused, connect_error, tls, timeout,
//     closed_early, closed, echo_mismatch, 407, 429, 503, status_other (CONNECT answers),
//     token_401, token_429, token_503, token_other (token endpoint answers); consoleCalls and
//     consoleVerify: lines the console simulator's journal gained (--console-journal).
//   {"event":"allOpen","second":S}                      the first time every tunnel is open
//   {"event":"recovered","second":S,"downAt":S,"lowest":N,"to50":S,"to90":S,"to100":S}
//     after tunnels were lost, once all are open again: seconds from the first loss until 50, 90
//     and 100 % were open (sampled every 100 ms)
//   {"event":"status","second":S,"responders":N,"open":N,"allOpen":BOOL}    on SIGUSR1
//   and a last line like the per-second ones, "last":true, for the rest of the run (its tunnels
//   closed by then: open is 0)
// stdout: one JSON summary at the end (the totals, "openAtEnd", "allOpenAtEnd"). Exit status 0
// when every tunnel was open at the end and no echo came back wrong, 1 otherwise, 2 for usage.
#pragma once

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

struct bufferevent;
struct evbuffer;
struct event;
struct event_base;
typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_session_st SSL_SESSION;

namespace loadgen {

// Defined in loadgen.cc, shared by every mode.
bool parseHostPort(const std::string& text, sockaddr_storage& ss, socklen_t& len, bool anyPort = false);
std::vector<std::string> splitCommas(const std::string& text);

// Runs `loadgen fleet ARGS` (argv[0] is "fleet"); the exit status.
int runFleet(int argc, char** argv);

namespace fleet {

struct Options {
    std::string proxy, cafile, servername;
    std::string groups;                // TLS key exchange groups offered; empty: the library's default
    std::vector<std::string> targets;  // Responder i asks for targets[i % n]
    std::vector<std::string> sources;  // process p binds to sources[p % n]
    std::string idPrefix = "fleet-", credentialPrefix = "cred-";
    std::string timeline;        // per-second JSON lines; empty: stderr
    std::string consoleJournal;  // the console simulator's journal.jsonl, counted per second
    uint64_t responders = 0;
    int processes = 1;
    double interval = 5;   // seconds between a tunnel's echoes
    double seconds = 60;   // run length
    double refresh = 300;  // ask for a new token this many seconds before it expires
    double ramp = 1000;    // Responders started per second, the whole fleet
    double backoffMinMs = 500, backoffMaxMs = 30000;
    double timeoutSeconds = 15;                    // for a handshake, an answer or an echo
    uint64_t tokenConcurrency = 64;                // token requests in flight per process
    uint64_t connectConcurrency = 0;               // tunnels connecting per process; 0: no limit
    double sourcePortLow = 0, sourcePortHigh = 0;  // 0: connect() chooses the port
};

// What every process counts, as one array of cumulative numbers (gauges marked): the parent
// prints per-second differences. The order is the report's.
enum Counter : unsigned {
    kStarted,     // gauge: Responders started by the ramp
    kOpen,        // gauge: tunnels open now
    kTokensHeld,  // gauge: Responders holding a token
    kEstablished,
    kReconnects,  // established by a Responder that had a tunnel before
    kTokenRequests,
    kTokens,  // granted
    kEchoes,  // echoes that came back as sent
    kResumed,
    kFull,            // TLS handshakes, resumed with a ticket or full
    kConnectsQueued,  // tunnels that waited their turn (--connect-concurrency)
    kFirstFailure,
    kConnectRefused = kFirstFailure,
    kConnectError,
    kTls,
    kTimeout,
    kClosedEarly,  // before the proxy's answer or the token endpoint's whole answer
    kClosed,       // an open tunnel ended by the other side
    kEchoMismatch,
    kStatus407,
    kStatus429,
    kStatus503,
    kStatusOther,
    kToken401,
    kToken429,
    kToken503,
    kTokenOther,
    kCounters
};
inline constexpr const char* kCounterNames[kCounters] = {
    "responders",    "open",       "tokensHeld", "established",  "reconnects",     "tokenRequests",
    "tokens",        "echoes",     "resumed",    "full",         "connectsQueued", "connect_refused",
    "connect_error", "tls",        "timeout",    "closed_early", "closed",         "echo_mismatch",
    "407",           "429",        "503",        "status_other", "token_401",      "token_429",
    "token_503",     "token_other"};
inline constexpr bool isGauge(unsigned c) {
    return c == kStarted || c == kOpen || c == kTokensHeld;
}

// One process's counters in memory shared with the parent (MAP_SHARED before fork): a single
// writer each, read at any time by the parent (lagMaxMs: which the parent also clears).
struct SharedCounters {
    std::atomic<uint64_t> v[kCounters];
    // The longest the process's housekeeping tick ran late (ms) since the parent last took it.
    std::atomic<uint64_t> lagMaxMs;
    void add(Counter c, int64_t n = 1) { v[c].fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed); }
    void lagged(uint64_t ms) {
        uint64_t seen = lagMaxMs.load(std::memory_order_relaxed);
        while (ms > seen && !lagMaxMs.compare_exchange_weak(seen, ms, std::memory_order_relaxed)) {
        }
    }
};
// The longest lag of any process since the last call (and the slate wiped for the next second).
inline uint64_t takeLagMax(SharedCounters* counters, int processes) {
    uint64_t most = 0;
    for (int p = 0; p < processes; ++p)
        most = std::max(most, counters[p].lagMaxMs.exchange(0, std::memory_order_relaxed));
    return most;
}
static_assert(std::atomic<uint64_t>::is_always_lock_free, "counters are shared between processes");

using Totals = std::array<uint64_t, kCounters>;

inline uint64_t nowMs() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000 + static_cast<uint64_t>(ts.tv_nsec) / 1000000;
}

inline Totals sum(const SharedCounters* counters, int processes) {
    Totals t{};
    for (int p = 0; p < processes; ++p) {
        for (unsigned c = 0; c < kCounters; ++c) t[c] += counters[p].v[c].load(std::memory_order_relaxed);
    }
    return t;
}

struct Address {
    sockaddr_storage ss{};
    socklen_t len = 0;
};

class Share;

// One Responder. Small on purpose (100,000 of them): the token, the newest ticket, one timer
// (the backoff wait, then the echo ticks) and a connection only while one is open.
struct Responder {
    enum class Tunnel : uint8_t { Idle, NeedToken, Backoff, Connecting, Open };
    Share* share = nullptr;
    uint64_t index = 0;
    Tunnel tunnel = Tunnel::Idle;
    bool tunnelTls = false, tokenTls = false;  // the connection's handshake is done
    bool tokenQueued = false, everOpen = false, echoOutstanding = false;
    uint8_t echoGot = 0, tokenAttempts = 0;
    uint16_t attempts = 0;  // reconnects since the last echo
    uint32_t seq = 0;
    uint64_t tunnelDeadline = 0, tokenDeadline = 0, refreshAt = 0, tokenExpires = 0;  // ms; 0: none
    bufferevent* tunnelBev = nullptr;
    bufferevent* tokenBev = nullptr;
    event* timer = nullptr;
    SSL_SESSION* ticket = nullptr;
    std::string token;
};

// One process's share of the fleet on one event loop.
class Share {
public:
    Share(const Options& o, int processIndex, uint64_t first, uint64_t count, SharedCounters& c)
        : o_(o), processIndex_(processIndex), first_(first), count_(count), counters_(c) {}

    int run();

private:
    bool setUp();
    void tearDown();
    static void onHousekeeping(int, short, void* arg);
    static void onStop(int, short, void* arg);
    void scan();
    void beginAttempt(Responder& r);
    void scheduleBackoff(Responder& r, uint64_t ms);
    uint64_t backoffMs(uint16_t attempts);
    uint64_t retryAfterMs(uint64_t seconds);
    // A TLS bufferevent for `r`; `connecting`: its socket's connect() was already made (with a
    // source port of --source-port-low/-high), so bufferevent_socket_connect takes no address.
    bufferevent* dial(Responder& r, bool& connecting);
    int connectFromRandomPort();
    void closeBev(bufferevent*& bev);
    void countHandshake(bufferevent* bev);
    static Counter connectFailure(bufferevent* bev, short what);
    static int onNewSession(SSL* ssl, SSL_SESSION* s);
    // the token
    void requestToken(Responder& r);
    bool holdsToken(Responder& r);
    void startTunnel(Responder& r);
    void pumpConnects();
    void pumpTokens();
    void openTokenRequest(Responder& r);
    static void onTokenEvent(bufferevent* bev, short what, void* arg);
    static void onTokenRead(bufferevent* bev, void* arg);
    void tokenGranted(Responder& r, const char* token, int64_t expiresIn);
    void tokenFailed(Responder& r, Counter kind, uint64_t waitMs = 0);
    // the tunnel
    void openTunnel(Responder& r);
    static void onTunnelEvent(bufferevent* bev, short what, void* arg);
    static void onTunnelRead(bufferevent* bev, void* arg);
    void tunnelOpened(Responder& r);
    static void onTimer(int, short, void* arg);
    void tick(Responder& r);
    void checkEcho(Responder& r, evbuffer* in);
    void tunnelFailed(Responder& r, Counter kind, uint64_t waitMs = 0);

    uint64_t random() {  // xorshift64: jitter only
        rng_ ^= rng_ << 13;
        rng_ ^= rng_ >> 7;
        rng_ ^= rng_ << 17;
        return rng_;
    }
    double uniform() { return static_cast<double>(random() >> 11) * 0x1.0p-53; }
    static void message(const Responder& r, uint8_t out[8]) {
        auto index = static_cast<uint32_t>(r.index);
        std::memcpy(out, &index, 4);
        std::memcpy(out + 4, &r.seq, 4);
    }

    const Options& o_;
    int processIndex_;
    uint64_t first_, count_;
    SharedCounters& counters_;
    std::vector<Responder> responders_;
    std::deque<Responder*> tokenQueue_;
    std::deque<Responder*> connectQueue_;  // --connect-concurrency: waiting for a slot
    uint64_t connecting_ = 0;              // tunnels in Tunnel::Connecting
    uint64_t started_ = 0, tokensInFlight_ = 0, start_ = 0, nextScan_ = 0, rng_ = 0;
    uint64_t housekeepingDue_ = 0;  // ms: when the tick should run next (its lag: counters_.lagged)
    bool pumpingConnects_ = false;
    bool stopping_ = false, pumping_ = false;
    event_base* base_ = nullptr;
    event *housekeeping_ = nullptr, *stop_ = nullptr, *interrupt_ = nullptr;
    const timeval* tickTimeout_ = nullptr;  // a common timeout: every tick waits as long
    SSL_CTX* ctx_ = nullptr;
    Address proxy_, source_;
    bool haveSource_ = false;
};

// The parent's output (the format is above): a line per second from the processes'
// counters and the console journal's growth, the allOpen / recovered / status events, and the
// summary.
class Timeline {
public:
    Timeline(const Options& o, FILE* out) : o_(o), out_(out) {
        // Only what the console receives from now on counts.
        journalFd_ = o.consoleJournal.empty() ? -1 : ::open(o.consoleJournal.c_str(), O_RDONLY | O_CLOEXEC);
        if (journalFd_ >= 0) ::lseek(journalFd_, 0, SEEK_END);
    }
    ~Timeline() {
        if (journalFd_ >= 0) ::close(journalFd_);
    }
    Timeline(const Timeline&) = delete;
    Timeline& operator=(const Timeline&) = delete;

    // The line for the second that ends at `second` (since the start); `last`: the rest of the
    // run after the last whole second, once every process has ended.
    void second(double second, const Totals& now, uint64_t lagMaxMs, bool last = false) {
        readJournal();
        std::fprintf(out_, "{\"second\":%.*f,%s\"time\":%.3f", last ? 3 : 0, second, last ? "\"last\":true," : "",
                     unixTime());
        for (unsigned c = 0; c < kFirstFailure; ++c) {
            std::fprintf(out_, ",\"%s\":%" PRIu64, kCounterNames[c], isGauge(c) ? now[c] : now[c] - last_[c]);
        }
        std::fprintf(out_, ",\"failures\":{%s}", failures(now, last_).c_str());
        std::fprintf(out_,
                     ",\"consoleCalls\":%" PRIu64 ",\"consoleVerify\":%" PRIu64 ",\"loopLagMaxMs\":%" PRIu64 "}\n",
                     consoleCalls_ - lastCalls_, consoleVerify_ - lastVerify_, lagMaxMs);
        last_ = now;
        lastCalls_ = consoleCalls_;
        lastVerify_ = consoleVerify_;
    }

    // Every 100 ms: when all tunnels first open, and how fast they come back after a loss.
    void sample(double second, uint64_t open) {
        const uint64_t n = o_.responders;
        if (!down_) {
            if (open == n && !allOpen_) std::fprintf(out_, "{\"event\":\"allOpen\",\"second\":%.1f}\n", second);
            if (open < n && allOpen_) {
                down_ = true;
                downAt_ = second;
                lowest_ = open;
                to50_ = to90_ = -1;
            }
            allOpen_ = allOpen_ || open == n;
            return;
        }
        lowest_ = std::min(lowest_, open);
        if (to50_ < 0 && 2 * open >= n) to50_ = second - downAt_;
        if (to90_ < 0 && 10 * open >= 9 * n) to90_ = second - downAt_;
        if (open < n) return;
        down_ = false;
        ++recoveries_;
        std::fprintf(out_,
                     "{\"event\":\"recovered\",\"second\":%.1f,\"downAt\":%.1f,\"lowest\":%" PRIu64
                     ",\"to50\":%.1f,\"to90\":%.1f,\"to100\":%.1f}\n",
                     second, downAt_, lowest_, to50_, to90_, second - downAt_);
    }

    void status(double second, const Totals& now) const {
        std::fprintf(out_,
                     "{\"event\":\"status\",\"second\":%.1f,\"responders\":%" PRIu64 ",\"open\":%" PRIu64
                     ",\"allOpen\":%s}\n",
                     second, o_.responders, now[kOpen], now[kOpen] == o_.responders ? "true" : "false");
    }

    void summary(double seconds, const Totals& end, uint64_t openAtEnd) const {
        std::printf("{\"mode\":\"fleet\",\"processes\":%d,\"seconds\":%.3f,\"openAtEnd\":%" PRIu64
                    ",\"allOpenAtEnd\":%s,\"recoveries\":%" PRIu64,
                    o_.processes, seconds, openAtEnd, openAtEnd == o_.responders ? "true" : "false", recoveries_);
        uint64_t failed = 0;
        for (unsigned c = 0; c < kCounters; ++c) {
            if (c >= kFirstFailure) failed += end[c];
            if (c != kOpen && c < kFirstFailure) std::printf(",\"%s\":%" PRIu64, kCounterNames[c], end[c]);
        }
        std::printf(",\"failed\":%" PRIu64 ",\"failures\":{%s},\"consoleCalls\":%" PRIu64 ",\"consoleVerify\":%" PRIu64
                    "}\n",
                    failed, failures(end, Totals{}).c_str(), consoleCalls_, consoleVerify_);
    }

private:
    static double unixTime() {
        timespec ts{};
        clock_gettime(CLOCK_REALTIME, &ts);
        return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
    }

    static std::string failures(const Totals& now, const Totals& before) {
        std::string out;
        for (unsigned c = kFirstFailure; c < kCounters; ++c) {
            if (now[c] == before[c]) continue;
            out += (out.empty() ? "\"" : ",\"") + std::string(kCounterNames[c]) +
                   "\":" + std::to_string(now[c] - before[c]);
        }
        return out;
    }

    // The simulator appends a line per call it received; verify calls name their path.
    void readJournal() {
        if (journalFd_ < 0 && !o_.consoleJournal.empty()) {
            journalFd_ = ::open(o_.consoleJournal.c_str(), O_RDONLY | O_CLOEXEC);  // created since
        }
        char buf[65536];
        ssize_t n = 0;
        while (journalFd_ >= 0 && (n = ::read(journalFd_, buf, sizeof buf)) > 0) {
            partial_.append(buf, static_cast<size_t>(n));
            size_t start = 0;
            for (size_t nl; (nl = partial_.find('\n', start)) != std::string::npos; start = nl + 1) {
                ++consoleCalls_;
                std::string_view line(partial_.data() + start, nl - start);
                if (line.find("/responders/verify") != std::string_view::npos) ++consoleVerify_;
            }
            partial_.erase(0, start);
        }
    }

    const Options& o_;
    FILE* out_;
    int journalFd_ = -1;
    std::string partial_;  // a line the simulator has not finished writing
    uint64_t consoleCalls_ = 0, consoleVerify_ = 0, lastCalls_ = 0, lastVerify_ = 0;
    Totals last_{};
    bool allOpen_ = false, down_ = false;
    double downAt_ = 0, to50_ = -1, to90_ = -1;
    uint64_t lowest_ = 0, recoveries_ = 0;
};

// ---- the parent: the command line and the processes

inline int usage(const char* why) {
    std::fprintf(stderr, "loadgen fleet: %s (see test/bench/fleet.h's head)\n", why);
    return 2;
}

inline int parseOptions(int argc, char** argv, Options& o) {
    std::string target, source;
    double responders = 0, processes = 1, tokenConcurrency = 64, connectConcurrency = 0;
    const std::pair<const char*, std::string*> texts[] = {{"--proxy", &o.proxy},
                                                          {"--target", &target},
                                                          {"--source", &source},
                                                          {"--cafile", &o.cafile},
                                                          {"--servername", &o.servername},
                                                          {"--groups", &o.groups},
                                                          {"--timeline", &o.timeline},
                                                          {"--id-prefix", &o.idPrefix},
                                                          {"--credential-prefix", &o.credentialPrefix},
                                                          {"--console-journal", &o.consoleJournal}};
    const std::pair<const char*, double*> numbers[] = {{"--responders", &responders},
                                                       {"--processes", &processes},
                                                       {"--interval", &o.interval},
                                                       {"--seconds", &o.seconds},
                                                       {"--refresh", &o.refresh},
                                                       {"--ramp", &o.ramp},
                                                       {"--backoff-min", &o.backoffMinMs},
                                                       {"--backoff-max", &o.backoffMaxMs},
                                                       {"--timeout", &o.timeoutSeconds},
                                                       {"--token-concurrency", &tokenConcurrency},
                                                       {"--connect-concurrency", &connectConcurrency},
                                                       {"--source-port-low", &o.sourcePortLow},
                                                       {"--source-port-high", &o.sourcePortHigh}};
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 >= argc) return usage((std::string(argv[i]) + " needs a value").c_str());
        bool known = false;
        for (const auto& [flag, value] : texts) {
            if (std::strcmp(argv[i], flag) == 0) *value = argv[i + 1], known = true;
        }
        for (const auto& [flag, value] : numbers) {
            if (std::strcmp(argv[i], flag) != 0) continue;
            char* end = nullptr;
            *value = std::strtod(argv[i + 1], &end);
            if (*end != '\0' || !std::isfinite(*value)) return usage((std::string(flag) + " needs a number").c_str());
            known = true;
        }
        if (!known) return usage((std::string("unknown option ") + argv[i]).c_str());
    }
    o.targets = splitCommas(target);
    o.sources = splitCommas(source);
    o.responders = static_cast<uint64_t>(std::max(0.0, responders));
    o.processes = static_cast<int>(std::clamp(processes, 1.0, 256.0));
    o.tokenConcurrency = static_cast<uint64_t>(std::max(1.0, tokenConcurrency));
    o.connectConcurrency = static_cast<uint64_t>(std::max(0.0, connectConcurrency));
    if (o.proxy.empty() || o.targets.empty()) return usage("--proxy and --target are needed");
    if (o.responders == 0) return usage("--responders must be at least 1");
    if (o.interval <= 0 || o.seconds <= 0 || o.ramp <= 0 || o.timeoutSeconds <= 0 || o.refresh < 0)
        return usage("--interval, --seconds, --ramp and --timeout must be positive");
    if (o.sourcePortLow != 0 && (o.sourcePortLow < 1024 || o.sourcePortHigh < o.sourcePortLow + 1023 ||
                                 o.sourcePortHigh > 65535 || o.sources.empty()))
        return usage("--source-port-low/-high need --source and 1024 <= low, low + 1023 <= high <= 65535");
    if (o.backoffMinMs < 1 || o.backoffMaxMs < o.backoffMinMs) return usage("need 1 <= --backoff-min <= --backoff-max");
    return 0;
}

// Forks the processes, each with its share of the fleet and its counters.
inline std::vector<pid_t> startShares(const Options& o, SharedCounters* counters) {
    std::vector<pid_t> pids;
    const pid_t parent = getpid();
    const auto n = static_cast<uint64_t>(o.processes);
    for (uint64_t p = 0, first = 0; p < n; ++p) {
        uint64_t count = o.responders / n + (p < o.responders % n ? 1 : 0);
        pid_t pid = fork();
        if (pid == 0) {
            // Gone with the parent at once when it is killed (its SIGTERM to us is the orderly
            // stop: stopShares); SIGTERM here left 12,000-connection children draining for minutes.
            prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (getppid() != parent) _exit(1);  // the parent died before prctl
            sigset_t none;
            sigemptyset(&none);
            sigprocmask(SIG_SETMASK, &none, nullptr);
            _exit(Share(o, static_cast<int>(p), first, count, counters[p]).run());
        }
        if (pid > 0) pids.push_back(pid);
        first += count;
    }
    return pids;
}

// Reaps the processes that ended; true when one has (the run cannot go on without it).
inline bool reaped(std::vector<pid_t>& pids, int& worst) {
    bool any = false;
    for (pid_t& pid : pids) {
        int status = 0;
        if (pid <= 0 || waitpid(pid, &status, WNOHANG) != pid) continue;
        worst = std::max(worst, WIFEXITED(status) ? WEXITSTATUS(status) : 1);
        pid = -1;
        any = true;
    }
    return any;
}

// The parent's loop: signals are taken with sigtimedwait (blocked, never handled), the counters
// sampled every 100 ms and written every second, until --seconds, SIGTERM/SIGINT or a process
// that ended. Returns the tunnels open then.
inline uint64_t watch(const Options& o, SharedCounters* counters, std::vector<pid_t>& pids, Timeline& timeline,
                      const sigset_t& signals, int& worst) {
    const uint64_t start = nowMs(), deadline = start + static_cast<uint64_t>(o.seconds * 1000);
    uint64_t nextSecond = start + 1000;
    for (uint64_t now = start; now < deadline; now = nowMs()) {
        uint64_t waitMs = std::min<uint64_t>({100, nextSecond - std::min(now, nextSecond), deadline - now});
        timespec ts{static_cast<time_t>(waitMs / 1000), static_cast<long>(waitMs % 1000) * 1000000};
        int sig = sigtimedwait(&signals, nullptr, &ts);
        now = nowMs();
        Totals t = sum(counters, o.processes);
        if (sig == SIGTERM || sig == SIGINT || reaped(pids, worst)) break;
        if (sig == SIGUSR1) timeline.status(static_cast<double>(now - start) / 1000, t);
        timeline.sample(static_cast<double>(now - start) / 1000, t[kOpen]);
        if (now >= nextSecond) {
            timeline.second(static_cast<double>(nextSecond - start) / 1000, t, takeLagMax(counters, o.processes));
            nextSecond += 1000;
        }
    }
    return sum(counters, o.processes)[kOpen];
}

// SIGTERM to each, a bounded wait, SIGKILL for what is left.
inline void stopShares(std::vector<pid_t>& pids, int& worst) {
    for (pid_t pid : pids) {
        if (pid > 0) kill(pid, SIGTERM);
    }
    auto live = [&] { return std::any_of(pids.begin(), pids.end(), [](pid_t p) { return p > 0; }); };
    for (uint64_t until = nowMs() + 10000; live() && nowMs() < until; usleep(10000)) reaped(pids, worst);
    for (pid_t& pid : pids) {
        if (pid <= 0) continue;
        kill(pid, SIGKILL);
        waitpid(pid, nullptr, 0);
        pid = -1;
        worst = std::max(worst, 1);
    }
}
}  // namespace fleet
}  // namespace loadgen
