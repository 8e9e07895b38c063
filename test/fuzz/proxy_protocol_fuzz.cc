// The PROXY protocol header parser (worker/proxy_protocol) from arbitrary bytes. Properties the
// worker relies on when it takes a trusted balancer's header out of the socket as it arrives
// (worker/connection.cc, stepPeekProxy), not only "no crash":
// - a prefix of the bytes is Incomplete only while the whole header has not arrived: every byte
//   of an Incomplete prefix belongs to the header, so consuming it is safe;
// - a Complete header has the same length however many bytes follow it, and no more than
//   kMaxProxyHeaderBytes;
// - anything that is not Invalid starts like a header (the first byte decides for untrusted
//   sources).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "worker/proxy_protocol.h"

using namespace relaypro;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view buf(reinterpret_cast<const char*>(data), size);
    ProxyHeader whole = parseProxyHeader(buf);
    if (whole.status == ProxyHeader::Status::Complete &&
        (whole.length == 0 || whole.length > buf.size() || whole.length > kMaxProxyHeaderBytes)) {
        std::abort();
    }
    if (whole.status != ProxyHeader::Status::Invalid && !buf.empty() && !startsLikeProxyHeader(buf.substr(0, 1))) {
        std::abort();
    }
    for (size_t n = 1; n <= buf.size(); ++n) {  // the worker parses once a byte has come
        ProxyHeader part = parseProxyHeader(buf.substr(0, n));
        if (whole.status == ProxyHeader::Status::Complete) {
            if (n < whole.length && part.status != ProxyHeader::Status::Incomplete) std::abort();
            if (n >= whole.length && (part.status != ProxyHeader::Status::Complete || part.length != whole.length)) {
                std::abort();
            }
        } else if (part.status == ProxyHeader::Status::Complete) {
            std::abort();  // a prefix cannot be a whole header when the whole is not
        }
        if (part.status == ProxyHeader::Status::Incomplete && n >= kMaxProxyHeaderBytes) std::abort();
    }
    return 0;
}
