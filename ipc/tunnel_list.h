// `relaypro status --tunnels` between the supervisor and a worker (messages.h has the frame).
// The supervisor pulls a worker's open tunnels a chunk at a time: it asks for the tunnels after a
// connection serial, the worker answers at once with at most kMaxRows of them (and at most one
// frame's body) and the serial to go on from, then returns to its loop; the next chunk is asked
// for only when the operator's client has taken the previous one. A worker keeps no state between
// chunks, so a listing costs it nothing while it waits, and a tunnel that closes meanwhile is
// simply not listed. A worker of a build before this answers Unknown: it has no list.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "ipc/messages.h"

namespace relaypro::ipc {

struct TunnelListRequest {
    static constexpr MessageType kType = MessageType::TunnelListRequest;
    static constexpr uint16_t kMaxRows = 1000;
    uint32_t requestId = 0;       // echoed in the answer
    uint64_t after = 0;           // tunnels of connections with a serial above this (0: from the first)
    uint16_t maxRows = kMaxRows;  // 1 to kMaxRows
    void encode(Writer& w) const {
        w.u32(requestId);
        w.u64(after);
        w.u16(maxRows);
    }
    static bool decode(Reader& r, TunnelListRequest& m) {
        m.requestId = r.u32();
        m.after = r.u64();
        m.maxRows = r.u16();
        return r.finish() && m.maxRows >= 1 && m.maxRows <= kMaxRows;
    }
};

// One open tunnel, as a worker sees it. Who the supervisor asked (pid, generation) is not in it:
// the supervisor knows that itself.
struct TunnelRow {
    enum class Auth : uint8_t { None = 0, Bearer = 1, Basic = 2 };
    static constexpr size_t kMaxIdentityBytes = 256;
    static constexpr size_t kMaxSourceBytes = 64;
    static constexpr uint64_t kMaxAgeMs = 100ULL * 366 * 24 * 3600 * 1000;  // a century
    Auth auth = Auth::None;
    std::string identity;     // the Responder id the token names, or the Basic user; empty with None
    std::string source;       // "ip:port" of the client (the PROXY header's when trusted)
    uint16_t targetPort = 0;  // the CONNECT's port
    uint64_t ageMs = 0;       // since the tunnel opened
    uint64_t bytesUp = 0;     // client -> target
    uint64_t bytesDown = 0;   // target -> client
    void encode(Writer& w) const;
    // Exactly the wire's rules: identity 1 to 256 bytes of UTF-8 without control characters
    // (empty with None), source 1 to 64 bytes of printable ASCII, a port above 0, an age below a
    // century.
    static bool decode(Reader& r, TunnelRow& m);
    // The bytes encode() writes.
    [[nodiscard]] size_t encodedSize() const { return 1 + 4 + identity.size() + 4 + source.size() + 2 + 3 * 8; }
};

// A Basic user as the wire takes it: a byte that is not printable ASCII or part of well-formed
// UTF-8 becomes \xNN, and the result is cut to kMaxIdentityBytes (at a character's start).
std::string wireIdentity(std::string_view user);

struct TunnelList {
    static constexpr MessageType kType = MessageType::TunnelList;
    // The frame's body without rows: requestId, after, next, done, the row count.
    static constexpr size_t kFixedBytes = 4 + 8 + 8 + 1 + 4;
    uint32_t requestId = 0;
    uint64_t after = 0;  // as asked
    uint64_t next = 0;   // where the next chunk starts (above `after` unless done)
    bool done = false;   // no tunnel after these
    std::vector<TunnelRow> rows;
    void encode(Writer& w) const;
    static bool decode(Reader& r, TunnelList& m);
};

}  // namespace relaypro::ipc
