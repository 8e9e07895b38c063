#include "worker/tunnel.h"

#include <sodium.h>

#include <algorithm>
#include <utility>

#include "common/event_time.h"

namespace relaypro {
namespace {

// Work per wake-up before yielding to other connections: 16 buffers per direction.
constexpr int kPumpBudget = 16;

}  // namespace

Tunnel::Tunnel(event_base* base, BufferPool& buffers, Stream& client, Stream& upstream, Plan plan, EndHandler onEnd)
    : buffers_(buffers),
      mode_(plan.mode),
      quietLimit_(plan.quietLimit),
      byteTotals_(plan.byteTotals),
      onEnd_(std::move(onEnd)),
      client_{.stream = client, .reset = "client_reset"},
      upstream_{.stream = upstream, .reset = "upstream_reset"},
      up_{.from = client_, .to = upstream_, .pending = std::move(plan.toUpstream)},
      down_{.from = upstream_, .to = client_, .pending = std::move(plan.toClient)} {
    client_.events.assign(base, client.fd(), &Tunnel::onReady, this);
    upstream_.events.assign(base, upstream.fd(), &Tunnel::onReady, this);
    evtimer_assign(&timer_, base, &Tunnel::onTimer, this);
    event_assign(&resume_, base, -1, 0, &Tunnel::onReady, this);
    if (mode_ == Mode::Forward) {
        // Nothing more goes up: the client's later bytes are not forwarded, and the upstream's
        // side stays open for writing (some servers drop a request that is followed by a FIN).
        up_.sourceEof = true;
        up_.sinkShut = true;
    }
}

Tunnel::~Tunnel() {
    disarm();
    sodium_memzero(up_.pending.data(), up_.pending.size());  // an unsent forward's credentials
    buffers_.put(up_.buf);
    buffers_.put(down_.buf);
}

std::optional<std::string_view> Tunnel::start() {
    startedAt_ = lastActivity_ = Clock::now();
    armDeadline();  // a side that never answers does not hold the tunnel for ever
    return run();
}

void Tunnel::onReady(int, short, void* arg) {
    auto* self = static_cast<Tunnel*>(arg);
    if (auto end = self->run()) self->ended(*end);
}

void Tunnel::onTimer(int, short, void* arg) {
    static_cast<Tunnel*>(arg)->timedOut();
}

void Tunnel::ended(std::string_view result) {
    EndHandler onEnd = std::move(onEnd_);  // the handler may delete this tunnel
    onEnd(result);
}

std::optional<std::string_view> Tunnel::run() {
    client_.wants = {};
    upstream_.wants = {};
    pump(up_);
    if (!end_) pump(down_);
    if (!end_ && down_.done() && (mode_ == Mode::Forward || up_.done())) {
        end_ = closeByClient_ ? "closed_by_client" : "closed_by_upstream";
    }
    if (end_) {
        disarm();
        return end_;
    }
    client_.events.arm(client_.wants);
    upstream_.events.arm(upstream_.wants);
    return std::nullopt;
}

void Tunnel::disarm() {
    client_.events.disarm();
    upstream_.events.disarm();
    event_del(&timer_);
    event_del(&resume_);
}

void Tunnel::pump(Pipe& p) {
    int budget = kPumpBudget;
    while (budget > 0) {
        if (p.pendingOffset < p.pending.size() || p.off < p.len) {
            if (!writeHeld(p)) return;
            --budget;
            continue;
        }
        if (p.sourceEof) return shutSink(p);
        if (!readSource(p)) return;
    }
    // Out of budget with work left: come back after the other connections had their turn. A
    // zero timeout, not event_active(): libevent runs events activated from a callback in the
    // same pass, before it polls again, so a tunnel that always has data would keep the loop
    // from new connections and from the supervisor's pings (which then replaces the worker).
    static const timeval kNow{0, 0};
    event_add(&resume_, &kNow);
}

// Writes what the pipe holds, the bytes from before the tunnel first. False: blocked or ended.
bool Tunnel::writeHeld(Pipe& p) {
    const bool early = p.pendingOffset < p.pending.size();
    const char* data = early ? p.pending.data() + p.pendingOffset : p.buf + p.off;
    const size_t avail = early ? p.pending.size() - p.pendingOffset : p.len - p.off;
    size_t n = 0;
    Io io = p.to.stream.write(data, avail, n);
    if (io == Io::WantRead || io == Io::WantWrite) {
        p.to.wants.add(io);
        sendBlocked(p);
        return false;  // back-pressure: read nothing more until this drains
    }
    if (io != Io::Done) {
        end_ = p.to.reset;
        return false;
    }
    sendProgressed(p);
    p.bytes += n;
    if (byteTotals_ != nullptr) byteTotals_[&p == &down_ ? 1 : 0] += n;
    if (early) {
        p.pendingOffset += n;
        if (p.pendingOffset == p.pending.size()) {
            // A plain-HTTP forward's request may carry the http_proxy's credentials.
            sodium_memzero(p.pending.data(), p.pending.size());
            std::string().swap(p.pending);
            p.pendingOffset = 0;
        }
    } else {
        p.off += n;
        if (p.off == p.len) {
            buffers_.put(p.buf);
            p.buf = nullptr;
            p.len = p.off = 0;
        }
    }
    return true;
}

// Reads the next bytes into the pipe's buffer. False: nothing to read now, or ended.
bool Tunnel::readSource(Pipe& p) {
    if (p.buf == nullptr) p.buf = buffers_.get();
    size_t n = 0;
    Io io = p.from.stream.read(p.buf, BufferPool::kBufferSize, n);
    if (io == Io::Done) {
        // TLS hands out one record per read; take the ones OpenSSL already holds (read_ahead)
        // too, so that they go on in one write. Whatever stops this (an incomplete record,
        // the end) shows again on the next read.
        while (n < BufferPool::kBufferSize && p.from.stream.ssl() != nullptr &&
               SSL_has_pending(p.from.stream.ssl()) == 1) {
            size_t more = 0;
            if (p.from.stream.read(p.buf + n, BufferPool::kBufferSize - n, more) != Io::Done) break;
            n += more;
        }
        p.len = n;
        p.off = 0;
        lastActivity_ = Clock::now();
        return true;
    }
    buffers_.put(p.buf);
    p.buf = nullptr;
    if (io == Io::WantRead || io == Io::WantWrite) {
        p.from.wants.add(io);
        return false;
    }
    if (io == Io::Eof) {
        p.sourceEof = true;
        if (&p == &up_ && !down_.sourceEof) closeByClient_ = true;
        return true;
    }
    end_ = p.from.reset;
    return false;
}

// The source has ended: end the sending to the sink too (half-close), once.
void Tunnel::shutSink(Pipe& p) {
    if (p.sinkShut) return;
    Io io = p.to.stream.shutdownWrite();
    if (io == Io::WantRead || io == Io::WantWrite) {
        p.to.wants.add(io);
        sendBlocked(p);  // a close_notify the peer does not take
        return;
    }
    p.sinkShut = true;  // an error here means the peer is gone already: nothing to send
}

void Tunnel::sendBlocked(Pipe& p) {
    if (p.blockedSince != Clock::time_point{}) return;  // its deadline is armed already
    p.blockedSince = Clock::now();
    // A timer already pending is due no later than this deadline (an idle deadline is at most
    // the quiet limit away, an older send deadline earlier still): when it fires, timedOut()
    // arms the next. So a busy tunnel does not re-arm a timer on every full buffer.
    if (evtimer_pending(&timer_, nullptr) == 0) armDeadline();
}

void Tunnel::sendProgressed(Pipe& p) {
    // The armed deadline may fire for nothing; timedOut() then arms the next one.
    p.blockedSince = Clock::time_point{};
    // Bytes written are bytes moved: a slow reader draining a full buffer is not idle.
    lastActivity_ = Clock::now();
}

// The timer: the earliest of the send deadlines of blocked sides and the idle deadline.
void Tunnel::armDeadline() {
    if (!quietLimit_) {
        evtimer_del(&timer_);
        return;
    }
    Clock::time_point at = lastActivity_ + *quietLimit_;
    for (const Pipe* p : {&up_, &down_}) {
        if (p->blockedSince != Clock::time_point{}) at = std::min(at, p->blockedSince + *quietLimit_);
    }
    timeval tv = toTimeval(std::max<Clock::duration>(Clock::duration::zero(), at - Clock::now()));
    evtimer_add(&timer_, &tv);
}

void Tunnel::timedOut() {
    const auto now = Clock::now();
    auto passed = [&](Clock::time_point since) {
        return quietLimit_ && since != Clock::time_point{} && now - since >= *quietLimit_;
    };
    if (passed(up_.blockedSince) || passed(down_.blockedSince)) {
        // A side that takes nothing of what the relay holds for it gives its buffers,
        // descriptor and maxConnections slot back.
        end_ = "send_timeout";
    } else if (quietLimit_ && now - lastActivity_ >= *quietLimit_) {
        end_ = "idle_timeout";
    } else {
        armDeadline();
        return;
    }
    disarm();
    ended(*end_);
}

}  // namespace relaypro
