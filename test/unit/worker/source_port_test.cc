// worker/source_port.h: the worker's own choice of source ports for upstream connections.
#include "worker/source_port.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

namespace relaypro {
namespace {

struct Listener {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_storage addr{};
    Listener() {
        auto* in = reinterpret_cast<sockaddr_in*>(&addr);
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        socklen_t len = sizeof(sockaddr_in);
        EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
        EXPECT_EQ(::listen(fd, 256), 0);  // room for every connection of a test: none is accepted
        EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    }
    ~Listener() { ::close(fd); }
};

uint16_t localPort(int fd) {
    sockaddr_in a{};
    socklen_t len = sizeof a;
    EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
    return ntohs(a.sin_port);
}

sockaddr_storage sourceOf(const sockaddr_storage& dst) {
    sockaddr_storage src{};
    EXPECT_TRUE(sourceAddressFor(dst, src));
    return src;
}

// `n` ports below (or else above) the kernel's ip_local_port_range, as the configuration wants
// them: ports there are held only by sockets bound on purpose, not by any connect()'s choice
// (nor by its TIME_WAITs, which do not share). {0, 0} when there is no room either side.
PortRange outsideTheKernelsRange(int n) {
    int low = 32768;
    int high = 60999;
    FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != nullptr) {
        if (std::fscanf(f, "%d %d", &low, &high) != 2) low = 32768, high = 60999;
        std::fclose(f);
    }
    if (low - 2 * n >= 1024) return {static_cast<uint16_t>(low - 2 * n), static_cast<uint16_t>(low - n - 1)};
    if (high + 2 * n <= 65535) return {static_cast<uint16_t>(high + n), static_cast<uint16_t>(high + 2 * n - 1)};
    return {};
}

int tcp() {
    return ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

int connectTo(int fd, const sockaddr_storage& a) {
    return ::connect(fd, reinterpret_cast<const sockaddr*>(&a), sizeof(sockaddr_in)) == 0 ? 0 : errno;
}

// With no range (the default), nothing is bound: connect() chooses.
TEST(SourcePort, NoRangeLeavesTheChoiceToConnect) {
    Listener a;
    int fd = tcp();
    EXPECT_FALSE(bindSourcePort(fd, sourceOf(a.addr), PortRange{}));
    EXPECT_EQ(localPort(fd), 0);
    ::close(fd);
}

// Ports come from the whole range, both parities (connect() alone takes one parity first), and
// several connections of ours share a port when their destinations differ.
TEST(SourcePort, BindsRandomPortsOfTheRangeThatConnectionsToOtherPlacesShare) {
    Listener a;
    Listener b;
    const PortRange range = outsideTheKernelsRange(1000);
    if (range.low == 0) GTEST_SKIP() << "ip_local_port_range leaves no room";
    std::set<uint16_t> ports;
    std::vector<int> fds;
    while (fds.size() < 64) {
        int fd = tcp();
        ASSERT_TRUE(bindSourcePort(fd, sourceOf(a.addr), range));
        uint16_t p = localPort(fd);
        EXPECT_GE(p, range.low);
        EXPECT_LE(p, range.high);
        int err = connectTo(fd, a.addr);
        if (err == EADDRNOTAVAIL) {  // a port drawn twice: UpstreamDialer draws again
            EXPECT_TRUE(ports.count(p) == 1) << p << " refused but not in use towards this listener";
            ::close(fd);
            continue;
        }
        ASSERT_EQ(err, 0);
        EXPECT_TRUE(ports.insert(p).second);
        fds.push_back(fd);
    }
    bool odd = false;
    bool even = false;
    for (uint16_t p : ports) (p % 2 != 0 ? odd : even) = true;
    EXPECT_TRUE(odd && even);
    // The same port towards the other listener: allowed (SO_REUSEADDR, another four-tuple).
    const PortRange one{localPort(fds[0]), localPort(fds[0])};
    int shared = tcp();
    ASSERT_TRUE(bindSourcePort(shared, sourceOf(b.addr), one));
    EXPECT_EQ(connectTo(shared, b.addr), 0);
    // Towards the same listener: the four-tuple is taken, and connect() says so.
    int same = tcp();
    ASSERT_TRUE(bindSourcePort(same, sourceOf(a.addr), one));
    EXPECT_EQ(connectTo(same, a.addr), EADDRNOTAVAIL);
    for (int fd : fds) ::close(fd);
    ::close(shared);
    ::close(same);
}

// A port held by a socket that did not allow sharing is not taken: after `tries` such ports the
// socket stays unbound, and connect() chooses.
TEST(SourcePort, LeavesTheChoiceToConnectWhenItsPortsAreTaken) {
    Listener a;
    int holder = tcp();  // bound without SO_REUSEADDR to the one port of the range
    sockaddr_in h{};
    h.sin_family = AF_INET;
    h.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(holder, reinterpret_cast<sockaddr*>(&h), sizeof h), 0);
    const uint16_t taken = localPort(holder);
    int fd = tcp();
    EXPECT_FALSE(bindSourcePort(fd, sourceOf(a.addr), PortRange{taken, taken}, 4));
    EXPECT_EQ(localPort(fd), 0) << "unbound";
    EXPECT_EQ(connectTo(fd, a.addr), 0);
    EXPECT_NE(localPort(fd), taken);
    ::close(fd);
    ::close(holder);
}

// connectFromRange: every connection from the range, however many share its ports; with the
// range's ports all taken towards this destination, connect() chooses one outside it.
TEST(SourcePort, ConnectsFromTheRangeAndFallsBackWhenItIsFull) {
    Listener a;
    const PortRange range = outsideTheKernelsRange(4);  // (the config asks for 1,024; the rule does not)
    if (range.low == 0) GTEST_SKIP() << "ip_local_port_range leaves no room";
    // Until the four ports are taken: the last free one may be missed in 16 draws (0.75^16, 1 %),
    // and that connection then leaves from connect()'s choice, which is allowed.
    std::vector<int> fds;
    std::set<uint16_t> ports;
    for (int i = 0; i < 200 && ports.size() < 4; ++i) {
        int fd = connectFromRange(a.addr, range);
        ASSERT_GE(fd, 0);
        pollfd p{fd, POLLOUT, 0};
        ASSERT_EQ(::poll(&p, 1, 5000), 1);
        fds.push_back(fd);
        const uint16_t port = localPort(fd);
        if (port >= range.low && port <= range.high) {
            EXPECT_TRUE(ports.insert(port).second) << port;
        }
    }
    EXPECT_EQ(ports.size(), 4U);
    // Every port of the range is in use towards this listener: every draw fails, connect() chooses.
    bool fellBack = false;
    int fifth = connectFromRange(a.addr, range, &fellBack);
    ASSERT_GE(fifth, 0);
    EXPECT_TRUE(fellBack);
    const uint16_t p = localPort(fifth);
    EXPECT_TRUE(p < range.low || p > range.high) << p;
    ::close(fifth);
    for (int fd : fds) ::close(fd);
}

// IPv6 too: the source address comes from the route to ::1, the port from the range.
TEST(SourcePort, AnIpv6ConnectionLeavesFromTheRange) {
    int l = ::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_GE(l, 0);
    sockaddr_storage addr{};
    auto* in6 = reinterpret_cast<sockaddr_in6*>(&addr);
    in6->sin6_family = AF_INET6;
    in6->sin6_addr = in6addr_loopback;
    socklen_t len = sizeof(sockaddr_in6);
    if (::bind(l, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
        ::close(l);
        GTEST_SKIP() << "no IPv6 loopback here";
    }
    ASSERT_EQ(::listen(l, 16), 0);
    ASSERT_EQ(::getsockname(l, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    const PortRange range = outsideTheKernelsRange(1024);
    if (range.low == 0) GTEST_SKIP() << "ip_local_port_range leaves no room";
    bool fellBack = true;
    int fd = connectFromRange(addr, range, &fellBack);
    ASSERT_GE(fd, 0);
    EXPECT_FALSE(fellBack);
    sockaddr_in6 local{};
    socklen_t n = sizeof local;
    ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&local), &n), 0);
    EXPECT_EQ(local.sin6_family, AF_INET6);
    EXPECT_EQ(std::memcmp(&local.sin6_addr, &in6addr_loopback, sizeof local.sin6_addr), 0);
    EXPECT_GE(ntohs(local.sin6_port), range.low);
    EXPECT_LE(ntohs(local.sin6_port), range.high);
    ::close(fd);
    ::close(l);
}

}  // namespace
}  // namespace relaypro
