#include "ipc/tunnel_list.h"

#include "common/text.h"
#include "common/token.h"

namespace relaypro::ipc {
namespace {

bool isPrintableAscii(std::string_view s) {
    for (char ch : s) {
        if (ch < 0x21 || ch > 0x7E) return false;
    }
    return true;
}

}  // namespace

void TunnelRow::encode(Writer& w) const {
    w.u8(static_cast<uint8_t>(auth));
    w.bytes(identity);
    w.bytes(source);
    w.u16(targetPort);
    w.u64(ageMs);
    w.u64(bytesUp);
    w.u64(bytesDown);
}

bool TunnelRow::decode(Reader& r, TunnelRow& m) {
    uint8_t auth = r.u8();
    if (auth > static_cast<uint8_t>(Auth::Basic)) r.fail();
    m.auth = static_cast<Auth>(auth);
    m.identity = r.bytes(kMaxIdentityBytes);
    m.source = r.bytes(kMaxSourceBytes);
    m.targetPort = r.u16();
    m.ageMs = r.u64();
    m.bytesUp = r.u64();
    m.bytesDown = r.u64();
    const bool identityOk = m.auth == Auth::None ? m.identity.empty() : isPrintableResponderId(m.identity);
    return r.ok() && identityOk && !m.source.empty() && isPrintableAscii(m.source) && m.targetPort > 0 &&
           m.ageMs < kMaxAgeMs;
}

std::string wireIdentity(std::string_view user) {
    return escapedText(user, TunnelRow::kMaxIdentityBytes);
}

void TunnelList::encode(Writer& w) const {
    w.u32(requestId);
    w.u64(after);
    w.u64(next);
    w.boolean(done);
    w.u32(static_cast<uint32_t>(rows.size()));
    for (const TunnelRow& row : rows) row.encode(w);
}

bool TunnelList::decode(Reader& r, TunnelList& m) {
    m.requestId = r.u32();
    m.after = r.u64();
    m.next = r.u64();
    m.done = r.boolean();
    uint32_t n = r.count(TunnelListRequest::kMaxRows);
    m.rows.clear();
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
        TunnelRow row;
        if (!TunnelRow::decode(r, row)) return false;
        m.rows.push_back(std::move(row));
    }
    // A chunk that is not the last must move on, so that a listing ends.
    return r.finish() && (m.done || m.next > m.after);
}

}  // namespace relaypro::ipc
