#include "worker/source_port.h"

#include <netinet/in.h>
#include <sodium.h>
#include <unistd.h>

#include <cerrno>

namespace relaypro {

namespace {

socklen_t lengthOf(sa_family_t family) {
    return family == AF_INET ? sizeof(sockaddr_in) : sizeof(sockaddr_in6);
}

// The source address the kernel would choose for `dst`: a UDP socket connected there (no packet
// is sent) tells it.
bool sourceFor(const sockaddr_storage& dst, sockaddr_storage& src) {
    int u = ::socket(dst.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (u < 0) return false;
    socklen_t len = sizeof src;
    bool ok = ::connect(u, reinterpret_cast<const sockaddr*>(&dst), lengthOf(dst.ss_family)) == 0 &&
              ::getsockname(u, reinterpret_cast<sockaddr*>(&src), &len) == 0 && src.ss_family == dst.ss_family;
    ::close(u);
    return ok;
}

}  // namespace

bool bindSourcePort(int fd, const sockaddr_storage& dst, const PortRange& range, int tries) {
    if (range.low == 0 || range.low > range.high) return false;
    if (dst.ss_family != AF_INET && dst.ss_family != AF_INET6) return false;
    sockaddr_storage src{};
    if (!sourceFor(dst, src)) return false;
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

}  // namespace relaypro
