#include "supervisor/sd_daemon.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "common/unique_fd.h"

namespace relaypro::sd {
namespace {

// A whole decimal number of at most 20 digits, nothing else (no sign, no spaces).
std::optional<uint64_t> decimal(const char* text) {
    if (text == nullptr || *text == '\0') return std::nullopt;
    std::string_view s(text);
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) return std::nullopt;
    return v;
}

bool isThisPid(const char* text) {
    auto pid = decimal(text);
    return pid && *pid == static_cast<uint64_t>(::getpid());
}

}  // namespace

int notify(std::string_view state) {
    const char* where = std::getenv("NOTIFY_SOCKET");
    if (where == nullptr || *where == '\0') return 0;
    size_t len = std::strlen(where);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    // An abstract name ('@' for the leading NUL) may fill sun_path; a path needs room for its NUL.
    if ((where[0] != '/' && where[0] != '@') || len < 2 || len > sizeof addr.sun_path - (where[0] == '/' ? 1 : 0)) {
        return -EINVAL;
    }
    std::memcpy(addr.sun_path, where, len);
    if (where[0] == '@') addr.sun_path[0] = '\0';
    auto addrLen = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) return -errno;
    ssize_t n;
    do {
        n = ::sendto(fd.get(), state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<const sockaddr*>(&addr),
                     addrLen);
    } while (n == -1 && errno == EINTR);
    if (n == -1) return -errno;
    return 1;
}

uint64_t watchdogMicros() {
    auto usec = decimal(std::getenv("WATCHDOG_USEC"));
    // 0 and USEC_INFINITY (all ones) are not intervals (sd_watchdog_enabled refuses both).
    if (!usec || *usec == 0 || *usec == UINT64_MAX) return 0;
    const char* pid = std::getenv("WATCHDOG_PID");
    if (pid != nullptr && !isThisPid(pid)) return 0;
    return *usec;
}

std::vector<int> takeListenFds() {
    std::vector<int> fds;
    const char* pid = std::getenv("LISTEN_PID");
    auto count = decimal(std::getenv("LISTEN_FDS"));
    if (pid != nullptr && isThisPid(pid) && count && *count > 0 && *count <= 4096) {
        for (int fd = kListenFdsStart; fd < kListenFdsStart + static_cast<int>(*count); ++fd) {
            int flags = ::fcntl(fd, F_GETFD);
            if (flags == -1) continue;  // not open: systemd said more than it passed
            ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
            fds.push_back(fd);
        }
    }
    ::unsetenv("LISTEN_PID");
    ::unsetenv("LISTEN_FDS");
    ::unsetenv("LISTEN_FDNAMES");
    return fds;
}

bool isListeningStreamSocket(int fd) {
    struct stat st {};
    if (::fstat(fd, &st) == -1 || !S_ISSOCK(st.st_mode)) return false;
    int type = 0;
    int listening = 0;
    socklen_t len = sizeof type;
    if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1 || type != SOCK_STREAM) return false;
    len = sizeof listening;
    return ::getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &len) == 0 && listening != 0;
}

}  // namespace relaypro::sd
