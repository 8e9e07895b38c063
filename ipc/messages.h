// The one schema of supervisor <-> worker messages. Every message type is listed here, with the
// direction it travels and its exact encoding; nothing else crosses between the processes (never
// a raw struct: the two sides may be different builds during an upgrade).
//
// A datagram on the SOCK_SEQPACKET channel is one frame:
//   u16 type | u16 reserved (0) | u32 generation | u32 body length | body
// The generation names the worker generation the message belongs to; stale ones are ignored.
// Frames are at most kMaxFrameBytes; larger data (the settings snapshot) travels in chunks.
// A side that receives a type it does not know answers Unknown{type} and carries on; a frame
// that does not decode exactly (short, long, trailing bytes, bad values) is a protocol error.
#pragma once

#include <sodium.h>

#include <array>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/listener.h"
#include "common/log_record.h"
#include "common/worker_settings.h"
#include "ipc/wire.h"

namespace relaypro::ipc {

// Raised when a message changes incompatibly. Hello carries it; a supervisor speaks every
// version from kOldestProtocolVersion up, so it can drive draining workers of the previous build.
inline constexpr uint16_t kProtocolVersion = 3;  // 2: Balance; 3: DrainGradually, HandshakeBound, SourcePorts
inline constexpr uint16_t kOldestProtocolVersion = 1;

inline constexpr size_t kFrameHeaderBytes = 12;
inline constexpr size_t kMaxFrameBytes = 64 * 1024;
inline constexpr size_t kMaxBodyBytes = kMaxFrameBytes - kFrameHeaderBytes;
inline constexpr size_t kMaxChunkBytes = 60 * 1024;
inline constexpr size_t kMaxFdsPerFrame = 16;

enum class MessageType : uint16_t {
    Hello = 1,               // S->W  first message: protocol version, worker index
    HelloAck = 2,            // W->S  the worker's protocol version and pid
    SettingsChunk = 3,       // S->W  a piece of a settings snapshot (ipc/snapshot.h)
    Secrets = 4,             // S->W  TLS certificate chain and private key (PEM)
    Listeners = 5,           // S->W  listener kinds; the listening sockets ride along (SCM_RIGHTS)
    Start = 6,               // S->W  everything is there: start serving
    Ready = 7,               // W->S  serving
    Ping = 8,                // S->W  are you alive?
    Pong = 9,                // W->S  yes, with counters
    Drain = 10,              // S->W  stop accepting, finish tunnels within the grace, then exit
    Stop = 11,               // S->W  close everything now and exit
    Log = 12,                // W->S  a log record for the supervisor's log file
    VerifyRequest = 13,      // W->S  verify a Responder with the console (token endpoint)
    VerifyAnswer = 14,       // S->W  the answer
    Unknown = 15,            // both  "I do not know message type N"
    SelfTest = 16,           // S->W  test builds only: try what the sandbox must forbid
    SelfTestResult = 17,     // W->S  what happened
    AuthFailure = 18,        // W->S  a source failed authentication (previous builds' workers; no answer)
    SourceBlocked = 19,      // S->W  a source is over its limit: answer it 429 until then
    CountFailure = 20,       // W->S  a source failed authentication; the client's 407 waits for FailureCounted
    FailureCounted = 21,     // S->W  counted (any SourceBlocked it caused was sent first): answer the client
    Balance = 22,            // S->W  hold accepts for a while (well above the average) or accept again
    TunnelListRequest = 23,  // S->W  the open tunnels after a connection serial, a chunk (ipc/tunnel_list.h)
    TunnelList = 24,         // W->S  the chunk
    Counters = 25,           // W->S  the worker's counters and process figures, after each Pong
    DrainGradually = 26,     // S->W  Drain, then close what is left evenly over a spread (a worker of an
                             //       earlier build answers Unknown and is sent Drain instead)
    HandshakeBound = 27,     // S->W  limits.maxHandshakes, after each settings snapshot (its own message so
                             //       that the snapshot's format stays the one earlier builds read)
    SourcePorts = 28,        // S->W  limits.sourcePorts, after HandshakeBound (likewise)
};
inline constexpr uint16_t kLastMessageType = 28;
// A new type goes after SourcePorts and is named here too; the assertion fails until both move.
static_assert(kLastMessageType == static_cast<uint16_t>(MessageType::SourcePorts),
              "kLastMessageType must be the value of the last MessageType");

[[nodiscard]] std::string_view messageName(MessageType t);

struct FrameHeader {
    MessageType type;
    uint32_t generation;
    uint32_t bodyLength;
};

// A frame from its parts; the body must not exceed kMaxBodyBytes.
std::string encodeFrame(MessageType type, uint32_t generation, std::string_view body);
// Parses the header of a received datagram; nullopt unless the length matches exactly and the
// reserved field is zero. The type may be one this build does not know.
std::optional<FrameHeader> decodeFrameHeader(std::string_view datagram);

// ---------------------------------------------------------------- message bodies

struct Hello {
    static constexpr MessageType kType = MessageType::Hello;
    uint16_t protocolVersion = kProtocolVersion;
    uint32_t workerIndex = 0;
    void encode(Writer& w) const {
        w.u16(protocolVersion);
        w.u32(workerIndex);
    }
    static bool decode(Reader& r, Hello& m) {
        m.protocolVersion = r.u16();
        m.workerIndex = r.u32();
        return r.finish();
    }
};

struct HelloAck {
    static constexpr MessageType kType = MessageType::HelloAck;
    uint16_t protocolVersion = kProtocolVersion;
    uint32_t pid = 0;
    void encode(Writer& w) const {
        w.u16(protocolVersion);
        w.u32(pid);
    }
    static bool decode(Reader& r, HelloAck& m) {
        m.protocolVersion = r.u16();
        m.pid = r.u32();
        return r.finish() && m.pid > 0;
    }
};

struct SettingsChunk {
    static constexpr MessageType kType = MessageType::SettingsChunk;
    uint32_t snapshotId = 0;
    uint16_t index = 0;
    uint16_t count = 0;
    std::string data;
    void encode(Writer& w) const {
        w.u32(snapshotId);
        w.u16(index);
        w.u16(count);
        w.bytes(data);
    }
    static bool decode(Reader& r, SettingsChunk& m) {
        m.snapshotId = r.u32();
        m.index = r.u16();
        m.count = r.u16();
        m.data = r.bytes(kMaxChunkBytes);
        return r.finish() && m.count > 0 && m.index < m.count;
    }
};

// The worker's secrets (WorkerSecrets): sent before Start, and again whenever they change (the
// hourly ticket key, the daily token master, a renewed certificate).
struct Secrets {
    static constexpr MessageType kType = MessageType::Secrets;
    static constexpr uint8_t kMaxKeys = 4;
    WorkerSecrets secrets;
    void encode(Writer& w) const {
        w.bytes(secrets.tls.certificateChainPem);
        w.bytes(secrets.tls.privateKeyPem);
        w.u8(static_cast<uint8_t>(secrets.ticketKeys.size()));
        for (const auto& k : secrets.ticketKeys) {
            w.i64(k.hour);
            w.bytes(std::string_view(reinterpret_cast<const char*>(k.bytes.data()), k.bytes.size()));
        }
        w.u8(static_cast<uint8_t>(secrets.masters.size()));
        for (const auto& m : secrets.masters) {
            w.i64(m.day);
            w.bytes(std::string_view(reinterpret_cast<const char*>(m.key.data()), m.key.size()));
        }
    }
    static bool decode(Reader& r, Secrets& m) {
        m.secrets.tls.certificateChainPem = r.bytes(48 * 1024);
        m.secrets.tls.privateKeyPem = r.bytes(8 * 1024);
        uint8_t tickets = r.u8();
        if (tickets == 0 || tickets > kMaxKeys) r.fail();
        for (uint8_t i = 0; i < tickets && r.ok(); ++i) {
            TicketKey k;
            k.hour = r.i64();
            if (!readFixed(r, k.bytes)) return false;
            m.secrets.ticketKeys.push_back(k);
        }
        uint8_t masters = r.u8();
        if (masters == 0 || masters > kMaxKeys) r.fail();
        for (uint8_t i = 0; i < masters && r.ok(); ++i) {
            DayMaster d;
            d.day = r.i64();
            if (!readFixed(r, d.key)) return false;
            m.secrets.masters.push_back(d);
        }
        return r.finish() && !m.secrets.tls.certificateChainPem.empty() && !m.secrets.tls.privateKeyPem.empty();
    }

private:
    template <size_t N>
    static bool readFixed(Reader& r, std::array<unsigned char, N>& out) {
        std::string b = r.bytes(N);
        if (b.size() != N) {
            r.fail();
            return false;
        }
        std::memcpy(out.data(), b.data(), N);
        sodium_memzero(b.data(), b.size());
        return true;
    }
};

struct Listeners {
    static constexpr MessageType kType = MessageType::Listeners;
    std::vector<ListenerKind> kinds;  // of each attached socket, in order
    void encode(Writer& w) const {
        w.u32(static_cast<uint32_t>(kinds.size()));
        for (ListenerKind k : kinds) w.u8(static_cast<uint8_t>(k));
    }
    static bool decode(Reader& r, Listeners& m) {
        uint32_t n = r.count(kMaxFdsPerFrame);
        m.kinds.clear();
        for (uint32_t i = 0; i < n; ++i) {
            auto k = listenerKindFromWire(r.u8());
            if (!k) r.fail();
            m.kinds.push_back(k.value_or(ListenerKind::Https));
        }
        return r.finish() && n > 0;
    }
};

struct Empty {
    void encode(Writer&) const {}
    template <typename T>
    static bool decodeEmpty(Reader& r, T&) {
        return r.finish();
    }
};
struct Start : Empty {
    static constexpr MessageType kType = MessageType::Start;
    static bool decode(Reader& r, Start& m) { return decodeEmpty(r, m); }
};
struct Ready : Empty {
    static constexpr MessageType kType = MessageType::Ready;
    static bool decode(Reader& r, Ready& m) { return decodeEmpty(r, m); }
};
struct Stop : Empty {
    static constexpr MessageType kType = MessageType::Stop;
    static bool decode(Reader& r, Stop& m) { return decodeEmpty(r, m); }
};
// Test builds only (RELAYPRO_TEST_HOOKS=1): what the sandbox must forbid, tried for real.
struct SelfTest {
    static constexpr MessageType kType = MessageType::SelfTest;
    std::vector<std::string> paths;  // files a worker must not open (config.yml, the CA bundle, …)
    std::string controlSocket;       // a Unix socket it must not reach
    uint32_t supervisorPid = 0;      // a process it must not trace, read or signal
    void encode(Writer& w) const {
        w.u32(static_cast<uint32_t>(paths.size()));
        for (const auto& p : paths) w.bytes(p);
        w.bytes(controlSocket);
        w.u32(supervisorPid);
    }
    static bool decode(Reader& r, SelfTest& m) {
        uint32_t n = r.count(16);
        m.paths.clear();
        for (uint32_t i = 0; i < n && r.ok(); ++i) m.paths.push_back(r.bytes(4096));
        m.controlSocket = r.bytes(4096);
        m.supervisorPid = r.u32();
        return r.finish();
    }
};

struct Ping {
    static constexpr MessageType kType = MessageType::Ping;
    uint64_t sequence = 0;
    void encode(Writer& w) const { w.u64(sequence); }
    static bool decode(Reader& r, Ping& m) {
        m.sequence = r.u64();
        return r.finish();
    }
};

struct Pong {
    static constexpr MessageType kType = MessageType::Pong;
    uint64_t sequence = 0;
    uint64_t connections = 0;
    uint64_t tunnels = 0;
    uint64_t totalTunnels = 0;
    uint64_t refused = 0;
    void encode(Writer& w) const {
        w.u64(sequence);
        w.u64(connections);
        w.u64(tunnels);
        w.u64(totalTunnels);
        w.u64(refused);
    }
    static bool decode(Reader& r, Pong& m) {
        m.sequence = r.u64();
        m.connections = r.u64();
        m.tunnels = r.u64();
        m.totalTunnels = r.u64();
        m.refused = r.u64();
        return r.finish();
    }
};

struct Drain {
    static constexpr MessageType kType = MessageType::Drain;
    uint64_t graceMs = 0;  // after it, remaining tunnels are closed
    void encode(Writer& w) const { w.u64(graceMs); }
    static bool decode(Reader& r, Drain& m) {
        m.graceMs = r.u64();
        return r.finish();
    }
};

// An upgrade's drain (limits.drainSpread): after graceMs the tunnels left are closed at an even
// rate over spreadMs, not all at once, so that their clients do not all reconnect in one second.
struct DrainGradually {
    static constexpr MessageType kType = MessageType::DrainGradually;
    uint64_t graceMs = 0;
    uint64_t spreadMs = 0;
    void encode(Writer& w) const {
        w.u64(graceMs);
        w.u64(spreadMs);
    }
    static bool decode(Reader& r, DrainGradually& m) {
        m.graceMs = r.u64();
        m.spreadMs = r.u64();
        return r.finish();
    }
};

// limits.maxHandshakes (0 = no bound): see worker/server.h, Server::openingEnded.
struct HandshakeBound {
    static constexpr MessageType kType = MessageType::HandshakeBound;
    uint32_t maxHandshakes = 0;
    void encode(Writer& w) const { w.u32(maxHandshakes); }
    static bool decode(Reader& r, HandshakeBound& m) {
        m.maxHandshakes = r.u32();
        return r.finish();
    }
};

// limits.sourcePorts (0, 0: connect() chooses): see worker/source_port.h.
struct SourcePorts {
    static constexpr MessageType kType = MessageType::SourcePorts;
    uint16_t low = 0;
    uint16_t high = 0;
    void encode(Writer& w) const {
        w.u16(low);
        w.u16(high);
    }
    static bool decode(Reader& r, SourcePorts& m) {
        m.low = r.u16();
        m.high = r.u16();
        return r.finish() && m.low <= m.high && (m.low == 0 || m.low >= 1024);
    }
};

struct Log {
    static constexpr MessageType kType = MessageType::Log;
    static constexpr uint32_t kMaxFields = 32;
    LogRecord record;
    void encode(Writer& w) const;
    static bool decode(Reader& r, Log& m);
};

struct VerifyRequest {
    static constexpr MessageType kType = MessageType::VerifyRequest;
    uint64_t ticket = 0;
    std::string responderId;
    std::string credential;
    std::string source;  // the client's rate-limit key
    void encode(Writer& w) const {
        w.u64(ticket);
        w.bytes(responderId);
        w.bytes(credential);
        w.bytes(source);
    }
    static bool decode(Reader& r, VerifyRequest& m) {
        m.ticket = r.u64();
        m.responderId = r.bytes(256);
        m.credential = r.bytes(8192);
        m.source = r.bytes(64);
        return r.finish();
    }
};

struct VerifyAnswer {
    static constexpr MessageType kType = MessageType::VerifyAnswer;
    enum class Result : uint8_t { Valid = 0, Invalid = 1, RateLimited = 2, NotRegistered = 3, ConsoleUnavailable = 4 };
    uint64_t ticket = 0;
    Result result = Result::Invalid;
    uint32_t retryAfterSeconds = 0;
    void encode(Writer& w) const {
        w.u64(ticket);
        w.u8(static_cast<uint8_t>(result));
        w.u32(retryAfterSeconds);
    }
    static bool decode(Reader& r, VerifyAnswer& m) {
        m.ticket = r.u64();
        uint8_t v = r.u8();
        if (v > 4) r.fail();
        m.result = static_cast<Result>(v);
        m.retryAfterSeconds = r.u32();
        return r.finish();
    }
};

struct Unknown {
    static constexpr MessageType kType = MessageType::Unknown;
    uint16_t type = 0;
    void encode(Writer& w) const { w.u16(type); }
    static bool decode(Reader& r, Unknown& m) {
        m.type = r.u16();
        return r.finish();
    }
};

struct SelfTestResult {
    static constexpr MessageType kType = MessageType::SelfTestResult;
    std::string report;  // "check=result" lines
    void encode(Writer& w) const { w.bytes(report); }
    static bool decode(Reader& r, SelfTestResult& m) {
        m.report = r.bytes(8192);
        return r.finish();
    }
};

struct AuthFailure {
    static constexpr MessageType kType = MessageType::AuthFailure;
    std::string source;  // RateLimiter::sourceKey of the client
    void encode(Writer& w) const { w.bytes(source); }
    static bool decode(Reader& r, AuthFailure& m) {
        m.source = r.bytes(32);
        return r.finish() && !m.source.empty();
    }
};

struct SourceBlocked {
    static constexpr MessageType kType = MessageType::SourceBlocked;
    std::string source;
    uint32_t retryAfterMs = 0;
    void encode(Writer& w) const {
        w.bytes(source);
        w.u32(retryAfterMs);
    }
    static bool decode(Reader& r, SourceBlocked& m) {
        m.source = r.bytes(32);
        m.retryAfterMs = r.u32();
        return r.finish() && !m.source.empty() && m.retryAfterMs <= 3600 * 1000;
    }
};

// The worker holds the client's 407 until the supervisor has counted the failure, so that a
// client which reads its 407 and tries again finds every worker already told when its source is
// over the limit (the supervisor sends SourceBlocked to all workers before FailureCounted).
struct CountFailure {
    static constexpr MessageType kType = MessageType::CountFailure;
    uint64_t ticket = 0;  // the connection waiting, echoed in FailureCounted
    std::string source;   // RateLimiter::sourceKey of the client
    void encode(Writer& w) const {
        w.u64(ticket);
        w.bytes(source);
    }
    static bool decode(Reader& r, CountFailure& m) {
        m.ticket = r.u64();
        m.source = r.bytes(32);
        return r.finish() && !m.source.empty();
    }
};

struct FailureCounted {
    static constexpr MessageType kType = MessageType::FailureCounted;
    uint64_t ticket = 0;
    void encode(Writer& w) const { w.u64(ticket); }
    static bool decode(Reader& r, FailureCounted& m) {
        m.ticket = r.u64();
        return r.finish();
    }
};

// Accepts from the shared listening sockets are not spread evenly over the workers; a worker
// holding well more connections than the average is told to leave accepts to the others for a
// while (until told again, or holdMs at most), so that maxConnections' per-worker share is reached
// by every worker rather than by the busiest first. Sent only to workers that said protocol 2.
struct Balance {
    static constexpr MessageType kType = MessageType::Balance;
    static constexpr uint32_t kMaxHoldMs = 10000;
    uint32_t holdMs = 0;  // 0: accept again
    void encode(Writer& w) const { w.u32(holdMs); }
    static bool decode(Reader& r, Balance& m) {
        m.holdMs = r.u32();
        return r.finish() && m.holdMs <= kMaxHoldMs;
    }
};

// What a worker has counted since it started (common/relay_counters.h), cumulative, and what
// its process holds now. Only the counters that are not zero are sent, in increasing id order;
// ids this build does not know (a newer worker's) are skipped by the reader, not refused.
struct Counters {
    static constexpr MessageType kType = MessageType::Counters;
    static constexpr uint32_t kMaxEntries = 1024;
    uint64_t residentBytes = 0;  // RSS
    uint64_t descriptors = 0;    // open file descriptors
    std::vector<std::pair<uint16_t, uint64_t>> values;
    void encode(Writer& w) const {
        w.u64(residentBytes);
        w.u64(descriptors);
        w.u32(static_cast<uint32_t>(values.size()));
        for (const auto& [id, value] : values) {
            w.u16(id);
            w.u64(value);
        }
    }
    static bool decode(Reader& r, Counters& m) {
        m.residentBytes = r.u64();
        m.descriptors = r.u64();
        uint32_t n = r.count(kMaxEntries);
        m.values.clear();
        m.values.reserve(n);
        for (uint32_t i = 0; i < n && r.ok(); ++i) {
            uint16_t id = r.u16();
            uint64_t value = r.u64();
            if (!m.values.empty() && id <= m.values.back().first) r.fail();  // increasing: no id twice
            m.values.emplace_back(id, value);
        }
        return r.finish();
    }
};

// The frame for a message.
template <typename M>
std::string frame(const M& message, uint32_t generation) {
    Writer w;
    message.encode(w);
    return encodeFrame(M::kType, generation, w.data());
}

// Decodes a body as message M; false when it is not exactly one valid M.
template <typename M>
bool decodeBody(std::string_view body, M& out) {
    Reader r(body);
    return M::decode(r, out);
}

}  // namespace relaypro::ipc
