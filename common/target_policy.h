// Which CONNECT targets are allowed (spec/protocol.md, "Allowed targets"): the console host of
// consoleAddress, or of migration.consoleAddress before migration.validUntilAt; ports 443, 80,
// 4222 and the port written in that address. A name is never matched by an IP, an IP only by
// the same address written canonically (IPv4 dotted quad; IPv6 in brackets, no zone id).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/config.h"

namespace relaypro {

class TargetPolicy {
public:
    TargetPolicy(ConsoleAddress console, std::optional<Migration> migration);
    static TargetPolicy fromConfig(const Config& config) {
        return TargetPolicy(config.consoleAddress, config.migration);
    }

    // `host` as the request wrote it (brackets removed; `ipv6` tells they were there).
    [[nodiscard]] bool allows(std::string_view host, bool ipv6, uint16_t port,
                              std::chrono::system_clock::time_point now) const;
    [[nodiscard]] const ConsoleAddress& console() const { return console_; }
    [[nodiscard]] const std::optional<Migration>& migration() const { return migration_; }

    // The name to dial for an allowed `host`: the console's (or the migration console's) as
    // configured, never the client's spelling of it, whose case or trailing dot may differ (a
    // trailing dot would also skip the resolver's search list for a single-label name).
    [[nodiscard]] std::string dialName(std::string_view host, bool ipv6,
                                       std::chrono::system_clock::time_point now) const;

    // The plain-HTTP listener's rule: the console host (or migration host), port 80 only.
    [[nodiscard]] bool allowsPlainHttp(std::string_view host, bool ipv6, uint16_t port,
                                       std::chrono::system_clock::time_point now) const;

private:
    static bool hostMatches(const ConsoleAddress& allowed, std::string_view host, bool ipv6);
    static bool portAllowed(const ConsoleAddress& allowed, uint16_t port);
    [[nodiscard]] bool migrationOpen(std::chrono::system_clock::time_point now) const;

    ConsoleAddress console_;
    std::optional<Migration> migration_;
};

}  // namespace relaypro
