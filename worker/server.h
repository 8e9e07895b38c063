// The serving loop of one worker: listeners given as sockets, the TLS context, the live
// connections, and what they share (settings snapshot, DNS, buffer pool, password-check
// thread, failure rate limits). Runs on the caller's libevent base; never opens a file.
#pragma once

#include <event2/event.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "common/listener.h"
#include "common/log_record.h"
#include "common/relay_counters.h"
#include "common/result.h"
#include "common/worker_settings.h"
#include "ipc/tunnel_list.h"
#include "worker/admission.h"
#include "worker/buffer_pool.h"
#include "worker/hash_verifier.h"
#include "worker/key_store.h"
#include "worker/name_cache.h"
#include "worker/router.h"
#include "worker/server_types.h"
#include "worker/source_port.h"

struct evconnlistener;
struct evdns_base;

namespace relaypro {

class Connection;

// Makes the socket's close a TCP reset: the client learns at once that it was refused (and backs
// off), and the socket leaves no TIME_WAIT here.
void resetOnClose(int fd);
// Closes an accepted socket with a TCP reset.
void resetConnection(int fd);

// The outcome of checking a Bearer token from Proxy-Authorization.
struct BearerCheck {
    bool valid = false;
    std::string responderId;
    std::string reason;  // why it failed, for debug logs only
};

struct ServerStats {
    uint64_t connections = 0;   // open client connections
    uint64_t tunnels = 0;       // open tunnels
    uint64_t totalTunnels = 0;  // tunnels established since start
    uint64_t refused = 0;       // requests answered with an error
};

class Server {
public:
    // The first-flight queue's turn: a zero-timeout timer, so that it runs after the events
    // the loop's last poll found due (a handshake's next step, a tunnel's bytes), serves queued
    // ClientHellos for up to this long, and lets the loop poll again before the next turn. (Not
    // a libevent priority: a lower one runs only in a turn where nothing else is due, which a
    // single busy tunnel, or steady traffic on many, would never leave.)
    static constexpr std::chrono::milliseconds kFirstFlightSlice{5};
    // A ClientHello that has waited longer than this in the first-flight queue (from the moment
    // its bytes were seen: neither the accept queue nor a slow client counts) is not served: the
    // connection is reset (relaypro_connections_shed_total{at="queue"}). Serving it would cost a
    // handshake's CPU for a client that has been waiting for seconds and may give up, while
    // newer ones wait behind it: the overload collapse of issue 19.
    static constexpr std::chrono::seconds kShedAfter{1};
    // New TLS connections while the ClientHellos stand in the queue (worker/admission.h): when
    // every one served in a kQueueWindow (at least kMinReached of them) had waited more than
    // kQueueTarget, new connections are admitted at a measured rate and the rest reset as they
    // are accepted (at="accept"), before any work is spent on them, so that what is taken is
    // served well within kShedAfter.
    static constexpr std::chrono::milliseconds kQueueTarget{250};
    static constexpr std::chrono::milliseconds kQueueWindow{100};
    static constexpr uint64_t kMinReached = 4;

    static Result<std::unique_ptr<Server>> create(event_base* base, std::vector<ListenerSocket> listeners,
                                                  const WorkerSecrets& secrets,
                                                  std::shared_ptr<const WorkerSettings> settings, LogOutput* log);
    ~Server();
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // New requests use the new snapshot; requests in flight keep theirs.
    void applySettings(std::shared_ptr<const WorkerSettings> settings);
    // Stop accepting, answer health with 503, close idle keep-alive connections; tunnels stay.
    void beginDrain();
    // Close every connection now (the end of a grace period).
    void closeAll();
    // Close the `n` oldest connections (a drain's spread), TLS close_notify first.
    void closeOldest(size_t n, std::string_view result);
    [[nodiscard]] bool draining() const { return draining_; }
    // The supervisor's Balance: leave new connections to the other workers for `hold` (zero:
    // accept again now). Connections already accepted are not affected.
    void holdAccepts(std::chrono::milliseconds hold);
    [[nodiscard]] ServerStats stats() const { return stats_; }
    // Called when the last connection of a draining server closed.
    void onEmpty(std::function<void()> callback) { onEmpty_ = std::move(callback); }
    // New keys from the supervisor; a new certificate serves new handshakes.
    Status updateSecrets(const WorkerSecrets& secrets);
    // Verifies a Responder token with the masters held (protocol.md, "Token format").
    BearerCheck checkBearer(std::string_view token);
    // Issues a token for a Responder the console vouched for, with today's master.
    Result<std::string> issueToken(std::string_view responderId, int64_t now);
    [[nodiscard]] KeyStore& keys() { return keys_; }
    // Token requests go to the supervisor, which counts the rate and asks the console; its
    // answer comes back through Connection::verified. Without a supervisor (unit tests) the
    // relay is not registered.
    using VerifySender = std::function<bool(uint64_t ticket, const std::string& responderId,
                                            const std::string& credential, const std::string& source)>;
    void onVerify(VerifySender sender) { verify_ = std::move(sender); }
    bool requestVerify(uint64_t ticket, const std::string& responderId, const std::string& credential,
                       const std::string& source) {
        return verify_ ? verify_(ticket, responderId, credential, source) : false;
    }

    // For connections.
    [[nodiscard]] event_base* base() const { return base_; }
    [[nodiscard]] const std::shared_ptr<const WorkerSettings>& settings() const { return settings_; }
    [[nodiscard]] SSL_CTX* tlsContext() const { return tls_; }
    [[nodiscard]] SSL_CTX* proxyClientContext();
    [[nodiscard]] NameCache& names() { return *names_; }
    [[nodiscard]] BufferPool& buffers() { return buffers_; }
    [[nodiscard]] HashVerifier& hashVerifier() { return *verifier_; }
    // Authentication failures are counted by the supervisor across all workers; it tells every
    // worker which sources are over their limit. Without a supervisor (unit tests), nothing blocks.
    // reportAuthFailure is true when the request `ticket` must wait for Connection::failureCounted.
    void onAuthFailure(std::function<bool(uint64_t ticket, const std::string& source)> report) {
        reportFailure_ = std::move(report);
    }
    bool reportAuthFailure(uint64_t ticket, const std::string& source) {
        return reportFailure_ && reportFailure_(ticket, source);
    }
    void blockSource(const std::string& source, std::chrono::milliseconds duration);
    // Seconds until `source` may try again (0: it may now).
    [[nodiscard]] uint32_t blockedFor(const std::string& source);
    [[nodiscard]] const Logger& log() const { return log_; }
    Connection* find(uint64_t serial) const;
    // One chunk of `status --tunnels` (ipc/tunnel_list.h): the tunnels of the connections after
    // serial `after`, up to `maxRows` and one frame's body, looking at 4 × maxRows connections
    // at most (a loop turn stays short however many are only handshaking).
    [[nodiscard]] ipc::TunnelList listTunnels(uint64_t after, uint16_t maxRows) const;
    void connectionClosed(Connection* c);
    // limits.maxHandshakes: a TLS connection is opening from the processing of its ClientHello
    // (Front::handshake: a silent or trickling socket costs no CPU and does not count) until its
    // TLS handshake is done (or it closes). At the bound the TLS listeners are not watched: new
    // connections wait in the kernel's accept queue instead of sharing the CPU with the
    // handshakes already started, so that those finish before their clients give up (issue 19).
    void openingStarted(uint64_t serial);
    void openingEnded();
    // Handshakes open longer than this after their ClientHello wait for their client (its Finished
    // is one round trip away), not for the CPU: not counted.
    static constexpr std::chrono::seconds kStalledAfter{2};
    [[nodiscard]] size_t opening() const { return opening_; }
    // limits.sourcePorts: UpstreamDialer binds its connections to a random port of it.
    void setSourcePorts(PortRange r) { sourcePorts_ = r; }
    [[nodiscard]] const PortRange& sourcePorts() const { return sourcePorts_; }
    [[nodiscard]] uint32_t maxHandshakes() const { return maxHandshakes_; }
    void setMaxHandshakes(uint32_t bound) {
        maxHandshakes_ = bound;
        updateAccepting();
    }
    void tunnelOpened(uint16_t port);
    void tunnelClosed();
    // A TLS connection reset unserved by an overloaded worker (`id`: ShedAtAccept or
    // ShedAfterWaiting); logged at most once a minute with the counts (onShedLog).
    void countShed(counters::Id id);
    // The first-flight queue (issue 19): a TLS connection whose bytes came before its ClientHello
    // was processed waits here, in arrival order, for the CPU. Its wait is known to the
    // microsecond (so a client that trickles cannot make it look short, and one silent until it
    // closes has waited for nothing), and the queue is served in turns (kFirstFlightSlice) after
    // everything else that is due.
    void queueFirstFlight(uint64_t serial);
    // Whether a connection that came in silent (not limited then) may join the queue now that its
    // first bytes came; false: reset it (worker/admission.h).
    bool admitFirstBytes();
    // Front::handshake: the connection whose turn it is had its ClientHello processed.
    void firstFlightProcessed() { processedInTurn_ = true; }
    void countRefused(std::string_view code) {
        ++stats_.refused;
        counters_.add(counters::refusedId(code));
    }
    // What this worker counted since it started (ipc::Counters).
    [[nodiscard]] counters::Set& counters() { return counters_; }

private:
    // The admission's verdict on a connection arriving now (traced, as every call to it is).
    Admission::Verdict admitNow();
    // The test build logs each admission window judged (RELAYPRO_TEST_ADMISSION_TRACE).
    void traceAdmission();
    Server(event_base* base, LogOutput* log);
    static void onAccept(evconnlistener* l, int fd, sockaddr* addr, int len, void* arg);
    static void onAcceptError(evconnlistener* l, void* arg);
    // Disables every listener until resumeAccept_ fires after `pause`.
    void pauseAccepts(std::chrono::milliseconds pause);
    static void onResumeAccept(int, short, void* arg);
    void accept(ListenerKind kind, int fd, const sockaddr* addr, socklen_t len);
    // Watches the listeners when nothing holds accepts (a drain, a pause, the handshake bound).
    void updateAccepting();
    size_t forgetStalledOpenings();
    static void onStalledTick(int, short, void* arg);
    static void onFirstFlightTurn(int, short, void* arg);
    static void onShedLog(int, short, void* arg);
    void logShed();
    void configureDns();

    event_base* base_;
    Logger log_;
    std::shared_ptr<const WorkerSettings> settings_;
    SSL_CTX* tls_ = nullptr;
    SSL_CTX* proxyClient_ = nullptr;
    evdns_base* dns_ = nullptr;
    std::unique_ptr<NameCache> names_;  // on dns_
    // One listening socket's accepting (the server owns the socket: it takes the descriptors).
    struct Acceptor {
        Server* server;
        ListenerKind kind;
        evconnlistener* listener;
    };
    std::vector<std::unique_ptr<Acceptor>> listeners_;
    event* resumeAccept_ = nullptr;
    bool paused_ = false;    // until resumeAccept_ fires (a Balance hold, an accept error)
    bool accepting_ = true;  // the listeners are watched
    PortRange sourcePorts_;
    size_t opening_ = 0;  // connections not yet through their handshake
    std::deque<std::pair<std::chrono::steady_clock::time_point, uint64_t>> openingSince_;  // oldest first
    event* stalledTimer_ = nullptr;               // every 100 ms while at the bound
    uint32_t maxHandshakes_ = kHandshakesPerCpu;  // until the supervisor's HandshakeBound
    // By serial, in accept order: a tunnel listing goes on from a serial, whatever closed meanwhile.
    std::map<uint64_t, Connection*> live_;
    uint64_t nextSerial_ = 1;
    BufferPool buffers_;
    std::unique_ptr<HashVerifier> verifier_;
    std::function<bool(uint64_t, const std::string&)> reportFailure_;
    std::unordered_map<std::string, std::chrono::steady_clock::time_point> blocked_;
    ServerStats stats_;
    counters::Set counters_;
    bool draining_ = false;
    Admission admission_{kQueueTarget, kQueueWindow, kMinReached};
    struct Queued {
        uint64_t serial;
        std::chrono::steady_clock::time_point since;
    };
    std::deque<Queued> firstFlights_;                   // oldest first; a connection that closed is skipped
    bool processedInTurn_ = false;                      // onFirstFlightTurn, for Admission::reached
    uint64_t tracedWindows_ = 0;                        // traceAdmission (test build)
    event* firstFlightTurn_ = nullptr;                  // a zero-timeout timer, added while any is queued
    uint64_t shedAtAccept_ = 0, shedAfterWaiting_ = 0;  // since the last log line
    event* shedLog_ = nullptr;                          // a minute after a line: the next one
    std::function<void()> onEmpty_;
    KeyStore keys_;
    std::string certificatePem_;
    VerifySender verify_;  // the one tls_ serves
};

}  // namespace relaypro
