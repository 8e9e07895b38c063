#include "worker/proxy_protocol.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>

#include <string>

namespace relaypro {
namespace {

std::string addressOf(const ProxyHeader& h) {
    char buf[INET6_ADDRSTRLEN] = {};
    if (h.source.ss_family == AF_INET) {
        const auto* s = reinterpret_cast<const sockaddr_in*>(&h.source);
        inet_ntop(AF_INET, &s->sin_addr, buf, sizeof buf);
        return std::string(buf) + ":" + std::to_string(ntohs(s->sin_port));
    }
    const auto* s = reinterpret_cast<const sockaddr_in6*>(&h.source);
    inet_ntop(AF_INET6, &s->sin6_addr, buf, sizeof buf);
    return "[" + std::string(buf) + "]:" + std::to_string(ntohs(s->sin6_port));
}

std::string v2(unsigned char cmd, unsigned char fam, const std::string& body) {
    std::string h("\r\n\r\n\0\r\nQUIT\n", 12);
    h += static_cast<char>(0x20 | cmd);
    h += static_cast<char>(fam);
    h += static_cast<char>(body.size() >> 8);
    h += static_cast<char>(body.size() & 0xFF);
    return h + body;
}

TEST(ProxyProtocol, Version1) {
    std::string line = "PROXY TCP4 203.0.113.7 192.0.2.1 51544 9443\r\n";
    auto h = parseProxyHeader(line + "\x16\x03\x01");
    ASSERT_EQ(h.status, ProxyHeader::Status::Complete);
    EXPECT_EQ(h.length, line.size());
    EXPECT_TRUE(h.hasAddress);
    EXPECT_EQ(addressOf(h), "203.0.113.7:51544");
    auto six = parseProxyHeader("PROXY TCP6 2001:db8::7 2001:db8::1 443 9443\r\n");
    ASSERT_EQ(six.status, ProxyHeader::Status::Complete);
    EXPECT_EQ(addressOf(six), "[2001:db8::7]:443");
    auto unknown = parseProxyHeader("PROXY UNKNOWN\r\n");
    ASSERT_EQ(unknown.status, ProxyHeader::Status::Complete);
    EXPECT_FALSE(unknown.hasAddress);
    EXPECT_EQ(parseProxyHeader("PROXY TCP4 1.2.3.4").status, ProxyHeader::Status::Incomplete);
    EXPECT_EQ(parseProxyHeader("PRO").status, ProxyHeader::Status::Incomplete);
    for (const char* bad : {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", "PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
                            "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", "PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n",
                            "PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n",
                            "PROXY TCP4 ::1 ::1 1 2\r\n", "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"}) {
        EXPECT_EQ(parseProxyHeader(bad).status, ProxyHeader::Status::Invalid) << bad;
    }
    EXPECT_EQ(parseProxyHeader("PROXY " + std::string(200, 'x')).status, ProxyHeader::Status::Invalid);
    // Found by the proxy_protocol fuzz target: a bare LF before the CRLF was accepted when the
    // whole line came at once (UNKNOWN skips the rest) but refused when the LF came first.
    const std::string bareLf = std::string("PROXY UNKNOWN\r#\0\n\r\r\n", 20);
    EXPECT_EQ(parseProxyHeader(bareLf).status, ProxyHeader::Status::Invalid);
    EXPECT_EQ(parseProxyHeader(bareLf.substr(0, 17)).status, ProxyHeader::Status::Invalid);
    EXPECT_EQ(parseProxyHeader("GET / HTTP/1.1\r\n").status, ProxyHeader::Status::Invalid);
}

TEST(ProxyProtocol, Version2) {
    std::string v4body = std::string("\xcb\x00\x71\x07\xc0\x00\x02\x01\xc9\x58\x24\xe3", 12);
    auto h = parseProxyHeader(v2(1, 0x11, v4body) + "rest");
    ASSERT_EQ(h.status, ProxyHeader::Status::Complete);
    EXPECT_EQ(h.length, 28u);
    EXPECT_EQ(addressOf(h), "203.0.113.7:51544");
    std::string v6body(36, '\0');
    v6body[0] = 0x20;
    v6body[1] = 0x01;
    v6body[15] = 0x07;
    v6body[32] = 0x01;
    v6body[33] = static_cast<char>(0xbb);
    auto six = parseProxyHeader(v2(1, 0x21, v6body + "TLVTLV"));
    ASSERT_EQ(six.status, ProxyHeader::Status::Complete);
    EXPECT_EQ(six.length, 16u + 42u);
    EXPECT_EQ(addressOf(six), "[2001::7]:443");
    auto local = parseProxyHeader(v2(0, 0x00, ""));
    ASSERT_EQ(local.status, ProxyHeader::Status::Complete);
    EXPECT_FALSE(local.hasAddress);
    auto unix = parseProxyHeader(v2(1, 0x31, std::string(216, '\0')));
    ASSERT_EQ(unix.status, ProxyHeader::Status::Complete);
    EXPECT_FALSE(unix.hasAddress);
    EXPECT_EQ(parseProxyHeader(v2(1, 0x11, v4body).substr(0, 20)).status, ProxyHeader::Status::Incomplete);
    EXPECT_EQ(parseProxyHeader(v2(1, 0x11, "short")).status, ProxyHeader::Status::Invalid);
    EXPECT_EQ(parseProxyHeader(v2(2, 0x11, v4body)).status, ProxyHeader::Status::Invalid);
    std::string badVersion = v2(1, 0x11, v4body);
    badVersion[12] = 0x31;
    EXPECT_EQ(parseProxyHeader(badVersion).status, ProxyHeader::Status::Invalid);
    EXPECT_EQ(parseProxyHeader(v2(1, 0x11, std::string(3000, 'x'))).status, ProxyHeader::Status::Invalid);
}

TEST(ProxyProtocol, RecognisesTheStartOfAHeader) {
    EXPECT_TRUE(startsLikeProxyHeader("PRO"));
    EXPECT_TRUE(startsLikeProxyHeader("PROXY TCP4"));
    EXPECT_TRUE(startsLikeProxyHeader(std::string("\r\n\r\n\0", 5)));
    EXPECT_FALSE(startsLikeProxyHeader("GET /"));
    EXPECT_FALSE(startsLikeProxyHeader("\x16\x03\x01"));
    EXPECT_FALSE(startsLikeProxyHeader("\r\n\r\nGET"));
}

}  // namespace
}  // namespace relaypro
