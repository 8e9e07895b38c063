// The byte pump of a connection once both sides are connected (pgbouncer's sbuf): two
// directions, each holding at most one pooled buffer and reading nothing more until the other
// side has taken it (back-pressure); an end of sending on one side is passed on to the other
// (half-close); the send and idle deadlines of quiet_limit.h. It runs on its own events and
// tells its owner once, through the end handler, how it ended.
#pragma once

#include <event2/event.h>
#include <event2/event_struct.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "worker/buffer_pool.h"
#include "worker/stream.h"

namespace relaypro {

class Tunnel {
public:
    using Clock = std::chrono::steady_clock;
    enum class Mode {
        BothWays,  // CONNECT: bytes both ways until each side has ended its sending
        Forward,   // plain HTTP: the request up, nothing more from the client, the answer down to its end
    };
    struct Plan {
        Mode mode = Mode::BothWays;
        std::string toUpstream;  // goes up before anything read from the client (early data, the request)
        std::string toClient;    // goes down before anything read from the upstream (a proxy's leftover)
        // A side the tunnel holds bytes for that takes none for this long ends it (send_timeout);
        // so does this long without a byte either way (idle_timeout). None: no deadline.
        std::optional<std::chrono::nanoseconds> quietLimit;
        // The worker's byte counters, two in a row: to the upstream, then to the client (or null).
        uint64_t* byteTotals = nullptr;
    };
    // How it ended: closed_by_client, closed_by_upstream, client_reset, upstream_reset,
    // send_timeout or idle_timeout. The handler may delete the tunnel.
    using EndHandler = std::function<void(std::string_view result)>;

    // The streams stay the caller's and must outlive the tunnel; nothing moves before start().
    Tunnel(event_base* base, BufferPool& buffers, Stream& client, Stream& upstream, Plan plan, EndHandler onEnd);
    ~Tunnel();
    Tunnel(const Tunnel&) = delete;
    Tunnel& operator=(const Tunnel&) = delete;

    // Pumps what can move now, then goes on by itself. An end at once is returned (the handler
    // is not called for it).
    std::optional<std::string_view> start();
    [[nodiscard]] uint64_t bytesUp() const { return up_.bytes; }
    [[nodiscard]] uint64_t bytesDown() const { return down_.bytes; }
    [[nodiscard]] Clock::time_point startedAt() const { return startedAt_; }

private:
    // One of the two connected sides.
    struct Side {
        Stream& stream;
        std::string_view reset;  // the result when reading or writing it fails
        Wants wants{};           // what the current wake-up found it waiting for
        StreamEvents events{};
    };
    // One direction: bytes read from one side waiting to be written to the other.
    struct Pipe {
        Side& from;
        Side& to;
        std::string pending;  // bytes from before the tunnel, sent first
        size_t pendingOffset = 0;
        char* buf = nullptr;
        size_t len = 0;
        size_t off = 0;
        bool sourceEof = false;
        bool sinkShut = false;
        uint64_t bytes = 0;
        // Since when `to` has taken none of the bytes held for it (epoch: it takes them).
        Clock::time_point blockedSince{};
        [[nodiscard]] bool done() const { return sourceEof && sinkShut; }
    };

    static void onReady(int fd, short what, void* arg);
    static void onTimer(int fd, short what, void* arg);
    void ended(std::string_view result);
    std::optional<std::string_view> run();
    void pump(Pipe& p);
    bool writeHeld(Pipe& p);
    bool readSource(Pipe& p);
    void shutSink(Pipe& p);
    void disarm();
    void sendBlocked(Pipe& p);
    void sendProgressed(Pipe& p);
    void armDeadline();
    void timedOut();

    BufferPool& buffers_;
    Mode mode_;
    std::optional<std::chrono::nanoseconds> quietLimit_;
    uint64_t* byteTotals_;  // Plan::byteTotals
    EndHandler onEnd_;
    Side client_;
    Side upstream_;
    Pipe up_;    // client -> upstream
    Pipe down_;  // upstream -> client
    event timer_{}, resume_{};
    std::optional<std::string_view> end_;
    bool closeByClient_ = false;
    Clock::time_point startedAt_{};
    Clock::time_point lastActivity_{};
};

}  // namespace relaypro
