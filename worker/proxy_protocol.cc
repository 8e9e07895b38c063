#include "worker/proxy_protocol.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstring>
#include <string>

namespace relaypro {
namespace {

constexpr std::string_view kV2Signature{"\r\n\r\n\0\r\nQUIT\n", 12};
constexpr size_t kMaxV1Bytes = 107;

ProxyHeader invalid(std::string_view reason) {
    ProxyHeader h;
    h.status = ProxyHeader::Status::Invalid;
    h.reason = reason;
    return h;
}

bool parsePort(std::string_view s, uint16_t& port) {
    if (s.empty() || s.size() > 5 || (s.size() > 1 && s.front() == '0')) return false;
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > 65535) return false;
    port = static_cast<uint16_t>(v);
    return true;
}

ProxyHeader parseV1(std::string_view data) {
    size_t crlf = data.find("\r\n");
    // The first LF ends the line and must follow a CR: a bare LF before the CRLF is refused
    // whether the rest has arrived or not (the same bytes must get the same verdict however
    // they are split: the fuzz target proxy_protocol checks it).
    size_t lf = data.find('\n');
    if (lf != std::string_view::npos && (crlf == std::string_view::npos || lf != crlf + 1)) {
        return invalid("PROXY v1 line without CRLF");
    }
    if (crlf == std::string_view::npos) {
        if (data.size() >= kMaxV1Bytes) return invalid("PROXY v1 line too long");
        return ProxyHeader{};
    }
    if (crlf + 2 > kMaxV1Bytes) return invalid("PROXY v1 line too long");
    std::string line(data.substr(6, crlf - 6));  // after "PROXY "
    ProxyHeader h;
    h.status = ProxyHeader::Status::Complete;
    h.length = crlf + 2;
    if (line.starts_with("UNKNOWN")) return h;  // keep the peer's address
    // "TCP4 src dst sport dport" / "TCP6 …": exactly single spaces.
    std::string_view parts[5];
    std::string_view rest = line;
    for (int i = 0; i < 5; ++i) {
        size_t sp = rest.find(' ');
        if (i < 4 && sp == std::string_view::npos) return invalid("malformed PROXY v1 line");
        parts[i] = rest.substr(0, i < 4 ? sp : std::string_view::npos);
        if (parts[i].empty()) return invalid("malformed PROXY v1 line");
        if (i < 4) rest.remove_prefix(sp + 1);
    }
    if (parts[4].find(' ') != std::string_view::npos) return invalid("malformed PROXY v1 line");
    int family = parts[0] == "TCP4" ? AF_INET : parts[0] == "TCP6" ? AF_INET6 : 0;
    if (family == 0) return invalid("unknown PROXY v1 protocol");
    uint16_t sport = 0, dport = 0;
    if (!parsePort(parts[3], sport) || !parsePort(parts[4], dport)) return invalid("malformed PROXY v1 port");
    std::string src(parts[1]), dst(parts[2]);
    if (family == AF_INET) {
        auto* sin = reinterpret_cast<sockaddr_in*>(&h.source);
        in_addr d{};
        if (inet_pton(AF_INET, src.c_str(), &sin->sin_addr) != 1 || inet_pton(AF_INET, dst.c_str(), &d) != 1) {
            return invalid("malformed PROXY v1 address");
        }
        sin->sin_family = AF_INET;
        sin->sin_port = htons(sport);
    } else {
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&h.source);
        in6_addr d{};
        if (inet_pton(AF_INET6, src.c_str(), &sin6->sin6_addr) != 1 || inet_pton(AF_INET6, dst.c_str(), &d) != 1) {
            return invalid("malformed PROXY v1 address");
        }
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(sport);
    }
    h.hasAddress = true;
    return h;
}

ProxyHeader parseV2(std::string_view data) {
    if (data.size() < 16) return ProxyHeader{};
    auto byte = [&](size_t i) { return static_cast<unsigned char>(data[i]); };
    unsigned char verCmd = byte(12), fam = byte(13);
    size_t len = (static_cast<size_t>(byte(14)) << 8) | byte(15);
    if ((verCmd & 0xF0) != 0x20) return invalid("unsupported PROXY v2 version");
    unsigned cmd = verCmd & 0x0F;
    if (cmd > 1) return invalid("unknown PROXY v2 command");
    if (16 + len > kMaxProxyHeaderBytes) return invalid("PROXY v2 header too long");
    if (data.size() < 16 + len) return ProxyHeader{};
    ProxyHeader h;
    h.status = ProxyHeader::Status::Complete;
    h.length = 16 + len;
    if (cmd == 0) return h;  // LOCAL: the balancer's own connection (health checks)
    const unsigned char* a = reinterpret_cast<const unsigned char*>(data.data()) + 16;
    if (fam == 0x11) {  // TCP over IPv4
        if (len < 12) return invalid("short PROXY v2 address block");
        auto* sin = reinterpret_cast<sockaddr_in*>(&h.source);
        sin->sin_family = AF_INET;
        std::memcpy(&sin->sin_addr, a, 4);
        std::memcpy(&sin->sin_port, a + 8, 2);
        h.hasAddress = true;
    } else if (fam == 0x21) {  // TCP over IPv6
        if (len < 36) return invalid("short PROXY v2 address block");
        auto* sin6 = reinterpret_cast<sockaddr_in6*>(&h.source);
        sin6->sin6_family = AF_INET6;
        std::memcpy(&sin6->sin6_addr, a, 16);
        std::memcpy(&sin6->sin6_port, a + 32, 2);
        h.hasAddress = true;
    }
    // Other families (UNSPEC, UDP, Unix): accepted, the peer's address stays (HAProxy's rule).
    return h;
}

}  // namespace

bool startsLikeProxyHeader(std::string_view data) {
    std::string_view v1 = "PROXY ";
    size_t n1 = std::min(data.size(), v1.size());
    if (n1 > 0 && data.substr(0, n1) == v1.substr(0, n1)) return true;
    size_t n2 = std::min(data.size(), kV2Signature.size());
    return n2 > 0 && data.substr(0, n2) == kV2Signature.substr(0, n2);
}

ProxyHeader parseProxyHeader(std::string_view data) {
    if (data.size() >= 6 && data.substr(0, 6) == "PROXY ") return parseV1(data);
    if (data.size() >= kV2Signature.size() && data.substr(0, kV2Signature.size()) == kV2Signature) return parseV2(data);
    if (startsLikeProxyHeader(data)) return ProxyHeader{};
    return invalid("no PROXY header");
}

}  // namespace relaypro
