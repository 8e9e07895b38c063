// Value formats of config.yml and the environment (spec/config.md, "Value formats"):
// sizes, durations, host:port, console addresses, CIDRs, RFC 3339 times, booleans, UUIDs.
// Every parser is strict: it accepts the whole text or returns a message saying why not.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace relaypro {

using Duration = std::chrono::nanoseconds;

// "16KiB", "512KB", "5 GiB", "1.5MiB", "1048576": bytes. Units B, KB, MB, GB, TB (powers of 1000),
// KiB, MiB, GiB, TiB (powers of 1024), case-insensitive, an optional space before the unit.
Result<uint64_t> parseSize(std::string_view text);
// Canonical text: the largest binary unit that divides the value exactly ("16KiB", "1000B" -> "1000").
std::string formatSize(uint64_t bytes);

// Go-style durations ("1h30m", "90s", "500ms", "1.5h") plus d/day/days and w/week/weeks
// ("1week", "2days", "4weeks"); units are case-insensitive; "0" alone means zero.
Result<Duration> parseDuration(std::string_view text);
// Canonical text, largest units first: "4w", "1h30m", "500ms", "0".
std::string formatDuration(Duration d);

// host:port with the host a name, an IPv4 literal or a bracketed IPv6 literal ("[::]:9443").
// Port 0 is allowed (the kernel picks one; tests use it).
struct HostPort {
    std::string host;  // without brackets
    uint16_t port = 0;
    [[nodiscard]] std::string text() const;  // brackets around IPv6
    bool operator==(const HostPort&) const = default;
};
Result<HostPort> parseHostPort(std::string_view text);

// consoleAddress: "host" or "host:port", an optional "https://" prefix and one trailing "/".
struct ConsoleAddress {
    std::string host;                              // as written (case kept), without brackets
    uint16_t port = 443;                           // 443 when the address names none
    bool portGiven = false;                        // the address wrote a port
    [[nodiscard]] std::string text() const;        // "host" or "host:port" as configured
    [[nodiscard]] std::string normalized() const;  // lower-case host, one trailing dot dropped, explicit port
    bool operator==(const ConsoleAddress&) const = default;
};
Result<ConsoleAddress> parseConsoleAddress(std::string_view text);

// A CIDR ("10.0.0.0/8", "2001:db8::/32") or a bare address (a /32 or /128).
struct Cidr {
    int family = 0;               // AF_INET or AF_INET6
    unsigned char addr[16] = {};  // network address, host bits cleared
    unsigned prefix = 0;
    [[nodiscard]] std::string text() const;
    [[nodiscard]] bool contains(int family, const unsigned char* address) const;
    bool operator==(const Cidr&) const = default;
};
Result<Cidr> parseCidr(std::string_view text);

// RFC 3339 date-time ("2026-12-01T00:00:00Z", "…+02:00", fractional seconds allowed).
Result<std::chrono::system_clock::time_point> parseRfc3339(std::string_view text);
std::string formatRfc3339(std::chrono::system_clock::time_point t);  // UTC, whole seconds, "Z"

// YAML 1.1 booleans: true/false, yes/no, on/off, y/n in lower, Capitalised or UPPER case.
std::optional<bool> parseYamlBool(std::string_view text);

// 8-4-4-4-12 hexadecimal digits.
bool isUuid(std::string_view text);

// A DNS name (letters, digits, hyphens, dots; labels 1-63, total <= 253) or an IP literal.
bool isHostName(std::string_view text);
bool isIpLiteral(std::string_view text);

}  // namespace relaypro
