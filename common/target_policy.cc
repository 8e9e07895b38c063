#include "common/target_policy.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <cstring>
#include <string>

#include "common/text.h"

namespace relaypro {
namespace {

std::string_view withoutTrailingDot(std::string_view s) {
    if (!s.empty() && s.back() == '.') s.remove_suffix(1);
    return s;
}

}  // namespace

TargetPolicy::TargetPolicy(ConsoleAddress console, std::optional<Migration> migration)
    : console_(std::move(console)), migration_(std::move(migration)) {}

bool TargetPolicy::hostMatches(const ConsoleAddress& allowed, std::string_view host, bool ipv6) {
    const std::string& want = allowed.host;
    unsigned char a[16] = {}, b[16] = {};
    if (want.find(':') != std::string::npos) {  // an IPv6 console: the same address, in brackets
        if (!ipv6 || host.size() > 45) return false;
        std::string h(host);
        return inet_pton(AF_INET6, h.c_str(), a) == 1 && inet_pton(AF_INET6, want.c_str(), b) == 1 &&
               std::memcmp(a, b, 16) == 0;
    }
    if (ipv6) return false;
    if (isIpLiteral(want)) {  // an IPv4 console: exactly its dotted quad
        return host == want;
    }
    // A name: never matched by an address, compared case-insensitively, one trailing dot ignored.
    if (isIpLiteral(host)) return false;
    return equalsIgnoreCase(withoutTrailingDot(host), withoutTrailingDot(want));
}

bool TargetPolicy::portAllowed(const ConsoleAddress& allowed, uint16_t port) {
    return port == 443 || port == 80 || port == 4222 || (allowed.portGiven && port == allowed.port);
}

bool TargetPolicy::migrationOpen(std::chrono::system_clock::time_point now) const {
    return migration_ && now < migration_->validUntilAt;
}

bool TargetPolicy::allows(std::string_view host, bool ipv6, uint16_t port,
                          std::chrono::system_clock::time_point now) const {
    if (hostMatches(console_, host, ipv6) && portAllowed(console_, port)) return true;
    return migrationOpen(now) && hostMatches(migration_->consoleAddress, host, ipv6) &&
           portAllowed(migration_->consoleAddress, port);
}

std::string TargetPolicy::dialName(std::string_view host, bool ipv6, std::chrono::system_clock::time_point now) const {
    if (hostMatches(console_, host, ipv6)) return console_.host;
    if (migrationOpen(now) && hostMatches(migration_->consoleAddress, host, ipv6))
        return migration_->consoleAddress.host;
    return std::string(host);  // not allowed: never dialled (callers check allows() first)
}

bool TargetPolicy::allowsPlainHttp(std::string_view host, bool ipv6, uint16_t port,
                                   std::chrono::system_clock::time_point now) const {
    if (port != 80) return false;
    return hostMatches(console_, host, ipv6) ||
           (migrationOpen(now) && hostMatches(migration_->consoleAddress, host, ipv6));
}

}  // namespace relaypro
