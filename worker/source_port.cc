#include "worker/source_port.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>

namespace relaypro {

namespace {

socklen_t lengthOf(sa_family_t family) {
    return family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

}  // namespace

bool sourceAddressFor(const sockaddr_storage& dst, sockaddr_storage& src) {
    if (dst.ss_family != AF_INET && dst.ss_family != AF_INET6) return false;
    int u = ::socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);  // connected, it sends nothing
    if (u < 0) return false;
    socklen_t len = sizeof src;
    bool ok = ::connect(u, reinterpret_cast<const sockaddr*>(&dst), lengthOf(dst.ss_family)) == 0 &&
              ::getsockname(u, reinterpret_cast<sockaddr*>(&src), &len) == 0 && src.ss_family == dst.ss_family;
    ::close(u);
    return ok;
}

bool bindSourcePort(int fd, sockaddr_storage src, const PortRange& range, int tries) {
    if (range.low == 0 || range.low > range.high) return false;
    int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0) return false;
    const uint32_t span = static_cast<uint32_t>(range.high - range.low) + 1;
    for (int i = 0; i < tries; ++i) {
        const auto port = htons(static_cast<uint16_t>(range.low + randombytes_uniform(span)));
        if (src.ss_family == AF_INET)
            reinterpret_cast<sockaddr_in*>(&src)->sin_port = port;
        else
            reinterpret_cast<sockaddr_in6*>(&src)->sin6_port = port;
        if (::bind(fd, reinterpret_cast<const sockaddr*>(&src), lengthOf(src.ss_family)) == 0) return true;
        if (errno != EADDRINUSE) return false;  // and the socket is still unbound
    }
    return false;
}

int connectFromRange(const sockaddr_storage& dst, const PortRange& range, bool* fellBack) {
    sockaddr_storage src{};
    const bool useRange = range.low != 0 && sourceAddressFor(dst, src);
    const socklen_t len = lengthOf(dst.ss_family);
    for (int draw = 0;; ++draw) {
        int fd = ::socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (fd < 0) return -1;
        int one = 1;
        ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        const bool chosen = useRange && draw < kPortDraws;  // else: connect() chooses
        if (chosen && !bindSourcePort(fd, src, range, 1)) {
            ::close(fd);  // held by a socket that does not share: another draw
            continue;
        }
        if (fellBack != nullptr) *fellBack = range.low != 0 && !chosen;
        if (::connect(fd, reinterpret_cast<const sockaddr*>(&dst), len) == 0 || errno == EINPROGRESS) return fd;
        const int err = errno;
        ::close(fd);
        if (chosen && err == EADDRNOTAVAIL) continue;  // the four-tuple is in use: another draw
        errno = err;
        return -1;
    }
}

}  // namespace relaypro
