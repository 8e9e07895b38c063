// worker/source_port.h: the worker's own choice of source ports for upstream connections.
#include "worker/source_port.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
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
// (nor by its TIME_WAITs, which do not share).
PortRange outsideTheKernelsRange(uint16_t n) {
    int low = 32768;
    int high = 60999;
    FILE* f = std::fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
    if (f != nullptr) {
        if (std::fscanf(f, "%d %d", &low, &high) != 2) low = 32768, high = 60999;
        std::fclose(f);
    }
    if (low - 2 * n >= 1024) return {static_cast<uint16_t>(low - 2 * n), static_cast<uint16_t>(low - n - 1)};
    return {static_cast<uint16_t>(high + n), static_cast<uint16_t>(high + 2 * n - 1)};
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
    std::vector<int> fds;
    for (int i = 0; i < 4; ++i) {
        int fd = connectFromRange(a.addr, range);
        ASSERT_GE(fd, 0);
        fds.push_back(fd);
    }
    for (int fd : fds) {
        pollfd p{fd, POLLOUT, 0};
        ASSERT_EQ(::poll(&p, 1, 5000), 1);
    }
    std::set<uint16_t> ports;
    for (int fd : fds) ports.insert(localPort(fd));
    EXPECT_EQ(ports.size(), 4U);
    EXPECT_EQ(*ports.begin(), range.low);
    EXPECT_EQ(*ports.rbegin(), range.high);
    int fifth = connectFromRange(a.addr, range);
    ASSERT_GE(fifth, 0);
    const uint16_t p = localPort(fifth);
    EXPECT_TRUE(p < range.low || p > range.high) << p;
    ::close(fifth);
    for (int fd : fds) ::close(fd);
}

}  // namespace
}  // namespace relaypro
