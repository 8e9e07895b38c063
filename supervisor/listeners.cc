#include "supervisor/listeners.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "supervisor/sd_daemon.h"

namespace relaypro {
namespace {

// Descriptors systemd passed and nobody took yet.
std::vector<int>& activated() {
    static std::vector<int> fds = [] {
        std::vector<int> out;
        for (int fd : sd::takeListenFds()) {  // LISTEN_* unset: children never see them
            if (sd::isListeningStreamSocket(fd)) out.push_back(fd);
        }
        return out;
    }();
    return fds;
}

bool sameAddress(int fd, const HostPort& want) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return false;
    char host[INET6_ADDRSTRLEN] = {};
    uint16_t port = 0;
    if (a.ss_family == AF_INET) {
        auto* s = reinterpret_cast<sockaddr_in*>(&a);
        inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
        port = ntohs(s->sin_port);
    } else if (a.ss_family == AF_INET6) {
        auto* s = reinterpret_cast<sockaddr_in6*>(&a);
        inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
        port = ntohs(s->sin6_port);
    } else {
        return false;
    }
    return port == want.port && (want.host == host || (want.host == "0.0.0.0" && std::string(host) == "0.0.0.0") ||
                                 (want.host == "::" && std::string(host) == "::"));
}

}  // namespace

Result<UniqueFd> bindListener(const HostPort& hp, int backlog) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string port = std::to_string(hp.port);
    int rc = ::getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) return Error{"cannot resolve listen address " + hp.text() + ": " + gai_strerror(rc)};
    std::string lastError = "no address";
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        UniqueFd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!fd) continue;
        int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd.get(), backlog) != 0) {
            lastError = std::strerror(errno);
            continue;
        }
        ::freeaddrinfo(res);
        return fd;
    }
    ::freeaddrinfo(res);
    return Error{"cannot listen on " + hp.text() + ": " + lastError};
}

UniqueFd adoptActivatedListener(const HostPort& address) {
    auto& fds = activated();
    for (auto it = fds.begin(); it != fds.end(); ++it) {
        if (sameAddress(*it, address)) {
            int fd = *it;
            fds.erase(it);
            ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
            return UniqueFd(fd);
        }
    }
    return UniqueFd();
}

std::string boundAddress(int fd) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "?";
    char host[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
        auto* s = reinterpret_cast<sockaddr_in*>(&a);
        inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
        return std::string(host) + ":" + std::to_string(ntohs(s->sin_port));
    }
    auto* s = reinterpret_cast<sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(s->sin6_port));
}

namespace {

// A sysctl's text from /proc/sys ("" when unreadable).
std::string sysctlText(const char* path) {
    int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return {};
    char text[64] = {};
    ssize_t n = ::read(fd, text, sizeof text - 1);
    ::close(fd);
    return n > 0 ? std::string(text, static_cast<size_t>(n)) : std::string();
}

}  // namespace

int somaxconn() {
    return std::atoi(sysctlText("/proc/sys/net/core/somaxconn").c_str());
}

std::pair<int, int> localPortRange() {
    int low = 0;
    int high = 0;
    if (std::sscanf(sysctlText("/proc/sys/net/ipv4/ip_local_port_range").c_str(), "%d %d", &low, &high) != 2) {
        return {0, 0};
    }
    return {low, high};
}

}  // namespace relaypro
