// One client connection, from accept to close: the small state machine that ties its parts
// together. Front (front.h) takes the PROXY header and the TLS handshake, HttpExchange
// (http_exchange.h) the request heads and routes, ProxyAuth (proxy_auth.h) a CONNECT's
// credentials, TokenEndpoint (token_endpoint.h) token requests, and once both sides are
// connected a Tunnel (tunnel.h) pumps the bytes. The connection owns the client's socket and
// its events, the state, the request being served, its answer and its close; everything is
// non-blocking and driven by socket readiness.
#pragma once

#include <event2/event.h>
#include <event2/event_struct.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/log_record.h"
#include "common/worker_settings.h"
#include "ipc/tunnel_list.h"
#include "worker/front.h"
#include "worker/http_exchange.h"
#include "worker/proxy_auth.h"
#include "worker/request_head.h"
#include "worker/router.h"
#include "worker/server_types.h"
#include "worker/stream.h"
#include "worker/token_endpoint.h"
#include "worker/tunnel.h"
#include "worker/upstream_dialer.h"

namespace relaypro {

class Server;
struct Response;

class Connection {
public:
    Connection(Server& server, uint64_t serial, ListenerKind kind, int fd, const sockaddr_storage& peer);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    void start();
    // Its turn in the server's first-flight queue: served, or shed (reset unserved: it waited
    // longer than Server::kShedAfter). May delete this.
    void firstFlightTurn(bool shed);
    // Admitted at its accept by a limiting worker (Server::admit): its first bytes need no second
    // admission.
    void admittedAtAccept() { admitted_ = true; }
    [[nodiscard]] bool queued() const { return queued_; }
    [[nodiscard]] uint64_t serial() const { return serial_; }
    [[nodiscard]] bool isTunnel() const { return state_ == State::Tunnel; }
    // What `status --tunnels` lists of it (ipc/tunnel_list.h); nullopt unless it is a CONNECT's
    // tunnel. Made from what the connection holds anyway: nothing is kept for it.
    // The port of the CONNECT's (or forward's) target; 0 before there is one.
    [[nodiscard]] uint16_t targetPort() const;
    [[nodiscard]] std::optional<ipc::TunnelRow> tunnelRow(std::chrono::steady_clock::time_point now) const;
    // Waiting for a next request, after at least one answered, with nothing of it received yet
    // (drain closes these). A connection that has not sent its first request is not idle: its
    // request may already be on the way (a drain that closed it would fail a fresh CONNECT).
    [[nodiscard]] bool idleBetweenRequests() const;
    // Closes at once (drain deadline, shutdown).
    void closeNow(std::string_view result);
    // The server stops counting this handshake (stalled): true when it was counted.
    bool forgetOpening();
    // The password check this connection waits for has finished.
    void passwordChecked(bool ok);
    // Tickets name one request of one connection in messages to the supervisor: the connection's
    // serial in the high bits (Server::find(serialOf(ticket))), the request's number
    // on it in the low ones.
    static constexpr unsigned kTicketRequestBits = 20;
    static constexpr uint64_t serialOf(uint64_t ticket) { return ticket >> kTicketRequestBits; }
    // The supervisor's answer about the Responder of a token request.
    void verified(uint64_t ticket, VerifyResult result, uint32_t retryAfterSeconds);
    // The supervisor has counted this connection's authentication failure: send the 407.
    void failureCounted(uint64_t ticket);

private:
    // The parts of a connection, one concern each, work on its state.
    friend class Front;
    friend class HttpExchange;
    friend class ProxyAuth;
    friend class TokenEndpoint;

    enum class State {
        PeekProxy,
        Handshake,
        ReadHead,
        ReadBody,
        Verifying,
        Authorizing,
        Counting,
        Dialing,
        Respond,
        Tunnel,
        Forward,
        Closed
    };
    enum class AfterResponse { NextRequest, Close, StartTunnel, StartForward };

    static void onClientEvent(int fd, short what, void* arg);
    static void onTimer(int fd, short what, void* arg);

    // Steps the connection as far as it goes. A TLS connection whose ClientHello is still to be
    // processed joins the server's first-flight queue instead, unless this is its turn.
    void drive(bool firstFlightTurn = false);
    // Resets it unserved (Front::shed, counted under `id`) and deletes it.
    void shedNow(counters::Id id);
    bool step();
    bool stepRespond();
    // Hands both sides to tunnel_ (state Tunnel or Forward), which pumps from now on.
    bool startTunnel(State state);
    void tunnelEnded(std::string_view result);

    void startDial(DialPurpose purpose);
    void dialed(DialOutcome&& outcome);
    void respond(Response response, AfterResponse after);
    void refuse(int status, std::string_view code, std::string_view allow = {});
    // The "request refused" line (status, reason, client, then `more`) and the refusal count.
    void logRefused(int status, std::string_view reason, std::vector<LogField> more = {});
    uint64_t nextTicket();
    void startHeadTimer();
    void timedOut();
    void requestTimedOut(std::vector<LogField> more);
    // The deadline while answering: a client the relay holds an answer for and that takes
    // none of it for quietLimit() is closed (send deadline). Tunnels keep their own (tunnel.h).
    using Clock = std::chrono::steady_clock;
    [[nodiscard]] std::optional<std::chrono::nanoseconds> quietLimit() const;
    void sendBlocked();
    void sendProgressed();
    void armDeadline();
    void finishRequest();
    void close(std::string_view result);
    // The TLS handshake is done (or there is none): the request phase starts.
    void handshakeFinished();
    void handshakeStarted();
    void logTunnelClosed(std::string_view result);

    Server& server_;
    uint64_t serial_;
    ListenerKind kind_;
    State state_;
    sockaddr_storage peer_;
    std::string clientText_;  // "ip:port" of the client (after a PROXY header: the real client)
    std::string id_;          // connection id in logs
    Stream client_;
    Stream upstream_;
    StreamEvents clientEvents_;
    event timer_{};
    Wants clientWants_;
    bool handshakeDone_ = false;
    bool opening_ = false;         // counted in the server's opening() from the handshake's start to its end
    bool wasOpening_ = false;      // ever counted: a handshake that stopped counting never counts again
    bool answeredOne_ = false;     // at least one request answered on this connection
    bool firstFlightDue_ = false;  // its ClientHello is still to be processed, in the server's queue
    bool queued_ = false;          // waits in the server's first-flight queue (Server::queueFirstFlight)
    bool admitted_ = false;        // through the admission while the worker was limiting
    uint64_t requests_ = 0;        // requests to the supervisor so far
    uint64_t ticket_ = 0;          // the one waiting for an answer (Verifying, Counting)

    // The request being read or served. The head's views point into headBuf_.
    std::string headBuf_;
    size_t headScanned_ = 0;
    RequestHead head_;
    bool headComplete_ = false;
    Clock::time_point headAt_{};                      // when it was complete
    std::shared_ptr<const WorkerSettings> settings_;  // the snapshot this request uses
    std::string out_;
    size_t outOffset_ = 0;
    AfterResponse after_ = AfterResponse::NextRequest;
    std::unique_ptr<UpstreamDialer> dialer_;
    std::string identity_;    // who authenticated: Basic user or Responder id
    std::string authScheme_;  // "Basic", "Bearer", or empty
    std::string target_;      // "host:port" of the CONNECT (or forward)

    // Since when the relay has held an answer for the client without it taking a byte (epoch: it takes them).
    Clock::time_point clientBlockedSince_{};
    // From the dial until the close: the pump between client_ and upstream_.
    std::unique_ptr<Tunnel> tunnel_;

    Front front_{*this};
    HttpExchange exchange_{*this};
    ProxyAuth auth_{*this};
    TokenEndpoint token_{*this};
};

}  // namespace relaypro
