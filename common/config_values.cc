#include "common/config_values.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <array>
#include <cctype>
#include <cstring>
#include <limits>

#include "common/text.h"

namespace relaypro {
namespace {

__extension__ typedef unsigned __int128 U128;

constexpr uint64_t kMaxU64 = std::numeric_limits<uint64_t>::max();

bool isDigit(char c) {
    return c >= '0' && c <= '9';
}

// A decimal number "123" or "1.25" at the front of `s`: integer part, fraction digits.
struct Decimal {
    uint64_t whole = 0;
    uint64_t frac = 0;        // fraction digits as an integer
    unsigned fracDigits = 0;  // how many
};

// Consumes a decimal number from the front of s. Fails on no digits, overflow, or a dot without digits.
std::optional<Decimal> takeDecimal(std::string_view& s) {
    Decimal d;
    size_t i = 0;
    bool any = false;
    while (i < s.size() && isDigit(s[i])) {
        if (d.whole > (kMaxU64 - 9) / 10) return std::nullopt;
        d.whole = d.whole * 10 + static_cast<uint64_t>(s[i] - '0');
        any = true;
        ++i;
    }
    if (i < s.size() && s[i] == '.') {
        ++i;
        bool fracAny = false;
        while (i < s.size() && isDigit(s[i])) {
            if (d.fracDigits < 18) {
                d.frac = d.frac * 10 + static_cast<uint64_t>(s[i] - '0');
                ++d.fracDigits;
            }
            fracAny = true;
            ++i;
        }
        if (!fracAny) return std::nullopt;
        any = true;
    }
    if (!any) return std::nullopt;
    s.remove_prefix(i);
    return d;
}

uint64_t pow10(unsigned n) {
    uint64_t r = 1;
    while (n-- > 0) r *= 10;
    return r;
}

// value * multiplier, rounding the fraction down; nullopt on overflow.
std::optional<uint64_t> scale(const Decimal& d, uint64_t multiplier) {
    U128 whole = static_cast<U128>(d.whole) * multiplier;
    U128 frac = static_cast<U128>(d.frac) * multiplier / pow10(d.fracDigits);
    U128 total = whole + frac;
    if (total > kMaxU64) return std::nullopt;
    return static_cast<uint64_t>(total);
}

}  // namespace

// ---------------------------------------------------------------- sizes

Result<uint64_t> parseSize(std::string_view text) {
    auto bad = [&](const char* why) {
        return Error{quoted(text) + " is not a valid size (" + why + "; e.g. 16KiB, 100MiB, 512KB, 1048576)"};
    };
    std::string_view s = text;
    auto number = takeDecimal(s);
    if (!number) return bad("expected a number");
    bool spaced = !s.empty() && s.front() == ' ';
    if (spaced) s.remove_prefix(1);
    std::string unit = toLower(s);
    if (spaced && unit.empty()) return bad("a space must be followed by a unit");
    struct Unit {
        const char* name;
        uint64_t multiplier;
    };
    static constexpr std::array<Unit, 10> kUnits{{{"b", 1},
                                                  {"kb", 1000ULL},
                                                  {"mb", 1000ULL * 1000},
                                                  {"gb", 1000ULL * 1000 * 1000},
                                                  {"tb", 1000ULL * 1000 * 1000 * 1000},
                                                  {"kib", 1ULL << 10},
                                                  {"mib", 1ULL << 20},
                                                  {"gib", 1ULL << 30},
                                                  {"tib", 1ULL << 40},
                                                  {"", 1}}};
    for (const auto& u : kUnits) {
        if (unit != u.name) continue;
        if (unit.empty() && number->fracDigits > 0) return bad("a fraction needs a unit");
        auto bytes = scale(*number, u.multiplier);
        if (!bytes) return bad("too large");
        return *bytes;
    }
    return bad("unknown unit; use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB");
}

std::string formatSize(uint64_t bytes) {
    static constexpr std::array<std::pair<const char*, uint64_t>, 4> kUnits{
        {{"TiB", 1ULL << 40}, {"GiB", 1ULL << 30}, {"MiB", 1ULL << 20}, {"KiB", 1ULL << 10}}};
    if (bytes == 0) return "0";
    for (const auto& [name, mult] : kUnits) {
        if (bytes % mult == 0) return std::to_string(bytes / mult) + name;
    }
    return std::to_string(bytes);
}

// ---------------------------------------------------------------- durations

Result<Duration> parseDuration(std::string_view text) {
    auto bad = [&](const char* why) {
        return Error{quoted(text) + " is not a valid duration (" + why + "; e.g. 90s, 1h30m, 500ms, 2days, 4weeks)"};
    };
    if (text == "0") return Duration::zero();
    std::string_view s = text;
    if (s.empty()) return bad("empty");
    uint64_t totalNs = 0;
    while (!s.empty()) {
        auto number = takeDecimal(s);
        if (!number) return bad("expected a number");
        if (!s.empty() && s.front() == ' ') s.remove_prefix(1);
        size_t n = 0;
        while (n < s.size() &&
               (std::isalpha(static_cast<unsigned char>(s[n])) != 0 || static_cast<unsigned char>(s[n]) >= 0x80)) {
            ++n;
        }
        if (n == 0) return bad("missing unit");
        std::string unit = toLower(s.substr(0, n));
        s.remove_prefix(n);
        constexpr uint64_t kUs = 1000, kMs = 1000 * kUs, kS = 1000 * kMs, kMin = 60 * kS, kH = 60 * kMin,
                           kDay = 24 * kH, kWeek = 7 * kDay;
        uint64_t mult = 0;
        if (unit == "ns")
            mult = 1;
        else if (unit == "us" || unit == "\xc2\xb5s" || unit == "\xce\xbcs")
            mult = kUs;
        else if (unit == "ms")
            mult = kMs;
        else if (unit == "s")
            mult = kS;
        else if (unit == "m")
            mult = kMin;
        else if (unit == "h")
            mult = kH;
        else if (unit == "d" || unit == "day" || unit == "days")
            mult = kDay;
        else if (unit == "w" || unit == "week" || unit == "weeks")
            mult = kWeek;
        else
            return bad("unknown unit; use ms, s, m, h, d or w");
        auto ns = scale(*number, mult);
        if (!ns || *ns > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) - totalNs) return bad("too large");
        totalNs += *ns;
        if (!s.empty() && s.front() == ' ') {
            s.remove_prefix(1);
            if (s.empty()) return bad("trailing space");
        }
    }
    return Duration(static_cast<int64_t>(totalNs));
}

std::string formatDuration(Duration d) {
    if (d.count() <= 0) return "0";
    auto ns = static_cast<uint64_t>(d.count());
    static constexpr std::array<std::pair<const char*, uint64_t>, 8> kUnits{{{"w", 604800ULL * 1000000000ULL},
                                                                             {"d", 86400ULL * 1000000000ULL},
                                                                             {"h", 3600ULL * 1000000000ULL},
                                                                             {"m", 60ULL * 1000000000ULL},
                                                                             {"s", 1000000000ULL},
                                                                             {"ms", 1000000ULL},
                                                                             {"us", 1000ULL},
                                                                             {"ns", 1ULL}}};
    std::string out;
    for (const auto& [name, mult] : kUnits) {
        if (ns >= mult) {
            out += std::to_string(ns / mult) + name;
            ns %= mult;
        }
    }
    return out;
}

// ---------------------------------------------------------------- hosts and ports

namespace {

std::optional<uint16_t> parsePort(std::string_view s, bool allowZero) {
    if (s.empty() || s.size() > 5) return std::nullopt;
    unsigned v = 0;
    for (char c : s) {
        if (!isDigit(c)) return std::nullopt;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > 65535 || (v == 0 && !allowZero)) return std::nullopt;
    return static_cast<uint16_t>(v);
}

bool isIpv4Literal(std::string_view s) {
    if (s.size() > 15) return false;
    std::string z(s);
    in_addr a{};
    return inet_pton(AF_INET, z.c_str(), &a) == 1;
}

bool isIpv6Literal(std::string_view s) {
    if (s.size() > 45 || s.find('%') != std::string_view::npos) return false;
    std::string z(s);
    in6_addr a{};
    return inet_pton(AF_INET6, z.c_str(), &a) == 1;
}

// Splits "host:port" / "[v6]:port" / "host" / "[v6]". Returns false on broken brackets or
// an unbracketed IPv6 address. `port` is empty when none was written.
bool splitHostPort(std::string_view s, std::string_view& host, std::string_view& port, bool& bracketed) {
    bracketed = false;
    port = {};
    if (!s.empty() && s.front() == '[') {
        size_t close = s.find(']');
        if (close == std::string_view::npos) return false;
        host = s.substr(1, close - 1);
        bracketed = true;
        std::string_view rest = s.substr(close + 1);
        if (rest.empty()) return true;
        if (rest.front() != ':') return false;
        port = rest.substr(1);
        if (port.empty()) return false;
        return true;
    }
    size_t colon = s.find(':');
    if (colon == std::string_view::npos) {
        host = s;
        return true;
    }
    if (s.find(':', colon + 1) != std::string_view::npos) return false;  // bare IPv6 or garbage
    host = s.substr(0, colon);
    port = s.substr(colon + 1);
    return !port.empty();
}

}  // namespace

bool isIpLiteral(std::string_view text) {
    return isIpv4Literal(text) || isIpv6Literal(text);
}

bool isHostName(std::string_view text) {
    std::string_view s = text;
    if (!s.empty() && s.back() == '.') s.remove_suffix(1);
    if (s.empty() || s.size() > 253) return false;
    std::string_view lastLabel;
    while (true) {
        size_t dot = s.find('.');
        std::string_view label = s.substr(0, dot);
        if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
        for (char c : label) {
            if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '_') return false;
        }
        lastLabel = label;
        if (dot == std::string_view::npos) break;
        s.remove_prefix(dot + 1);
    }
    // A name whose last label is numeric is an IPv4 form ("1.2.3", "0x7f.1"): only a
    // canonical dotted quad may look like that, and it is an IP literal, not a name.
    bool numericLast = !lastLabel.empty();
    for (char c : lastLabel) numericLast = numericLast && isDigit(c);
    if (numericLast) return false;
    bool hexLast = lastLabel.size() > 2 && lastLabel[0] == '0' && (lastLabel[1] == 'x' || lastLabel[1] == 'X');
    for (size_t i = 2; hexLast && i < lastLabel.size(); ++i)
        hexLast = std::isxdigit(static_cast<unsigned char>(lastLabel[i])) != 0;
    return !hexLast;
}

std::string HostPort::text() const {
    if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
    return host + ":" + std::to_string(port);
}

Result<HostPort> parseHostPort(std::string_view text) {
    std::string_view host, port;
    bool bracketed = false;
    if (!splitHostPort(text, host, port, bracketed)) {
        return Error{quoted(text) + " is not a valid host:port (IPv6 addresses go in brackets: [::]:9443)"};
    }
    if (port.empty()) return Error{quoted(text) + " has no port (expected host:port)"};
    auto p = parsePort(port, true);
    if (!p) return Error{quoted(text) + " is not a valid port"};
    bool hostOk = bracketed ? isIpv6Literal(host) : (isIpv4Literal(host) || isHostName(host));
    if (!hostOk) return Error{quoted(text) + " does not name a valid host"};
    return HostPort{std::string(host), *p};
}

std::string ConsoleAddress::text() const {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    return portGiven ? h + ":" + std::to_string(port) : h;
}

std::string ConsoleAddress::normalized() const {
    std::string h = toLower(host);
    if (!h.empty() && h.back() == '.') h.pop_back();
    if (h.find(':') != std::string::npos) h = "[" + h + "]";
    return h + ":" + std::to_string(port);
}

Result<ConsoleAddress> parseConsoleAddress(std::string_view text) {
    std::string_view s = text;
    size_t scheme = s.find("://");
    if (scheme != std::string_view::npos) {
        if (toLower(s.substr(0, scheme)) != "https") {
            return Error{quoted(text) + " has scheme \"" + std::string(s.substr(0, scheme)) +
                         "\"; only an https:// prefix is accepted"};
        }
        s.remove_prefix(scheme + 3);
    }
    if (!s.empty() && s.back() == '/') s.remove_suffix(1);
    if (s.empty()) return Error{"is empty"};
    if (s.find('/') != std::string_view::npos || s.find('@') != std::string_view::npos ||
        s.find('?') != std::string_view::npos || s.find('#') != std::string_view::npos) {
        return Error{quoted(text) + " must be a host or host:port, without path, user or query"};
    }
    std::string_view host, port;
    bool bracketed = false;
    if (!splitHostPort(s, host, port, bracketed)) {
        return Error{quoted(text) + " is not a valid host or host:port (IPv6 addresses go in brackets: [::1]:8443)"};
    }
    ConsoleAddress a;
    if (!port.empty()) {
        auto p = parsePort(port, false);
        if (!p) return Error{quoted(text) + " is not a valid port"};
        a.port = *p;
        a.portGiven = true;
    }
    bool hostOk = bracketed ? isIpv6Literal(host) : (isIpv4Literal(host) || isHostName(host));
    if (!hostOk) return Error{quoted(text) + " does not name a valid host"};
    a.host = std::string(host);
    return a;
}

// ---------------------------------------------------------------- CIDR

std::string Cidr::text() const {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family, addr, buf, sizeof buf);
    return std::string(buf) + "/" + std::to_string(prefix);
}

bool Cidr::contains(int fam, const unsigned char* address) const {
    if (fam != family) return false;
    unsigned full = prefix / 8, rest = prefix % 8;
    if (std::memcmp(addr, address, full) != 0) return false;
    if (rest == 0) return true;
    auto mask = static_cast<unsigned char>(0xFFu << (8 - rest));
    return (address[full] & mask) == addr[full];
}

Result<Cidr> parseCidr(std::string_view text) {
    Cidr c;
    size_t slash = text.find('/');
    std::string host(text.substr(0, slash));
    if (isIpv4Literal(host)) {
        c.family = AF_INET;
        inet_pton(AF_INET, host.c_str(), c.addr);
    } else if (isIpv6Literal(host)) {
        c.family = AF_INET6;
        inet_pton(AF_INET6, host.c_str(), c.addr);
    } else {
        return Error{quoted(text) + " is not an IP address or CIDR (e.g. 10.0.0.0/8, 2001:db8::/32)"};
    }
    unsigned maxPrefix = c.family == AF_INET ? 32 : 128;
    c.prefix = maxPrefix;
    if (slash != std::string_view::npos) {
        std::string_view p = text.substr(slash + 1);
        auto v = parsePort(p, true);  // digits only, at most 5
        if (!v || *v > maxPrefix || p.size() > 3) {
            return Error{quoted(text) + " has an invalid prefix length (0-" + std::to_string(maxPrefix) + ")"};
        }
        c.prefix = *v;
    }
    Cidr masked = c;
    unsigned bytes = maxPrefix / 8;
    for (unsigned i = 0; i < bytes; ++i) {
        unsigned bitsHere = c.prefix > i * 8 ? std::min(8u, c.prefix - i * 8) : 0;
        auto mask = static_cast<unsigned char>(bitsHere == 0 ? 0 : 0xFFu << (8 - bitsHere));
        masked.addr[i] = static_cast<unsigned char>(c.addr[i] & mask);
    }
    if (std::memcmp(masked.addr, c.addr, sizeof c.addr) != 0) {
        return Error{quoted(text) + " has host bits set (did you mean \"" + masked.text() + "\"?)"};
    }
    return c;
}

// ---------------------------------------------------------------- times

namespace {

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
int64_t daysFromCivil(int64_t y, unsigned m, unsigned d) {
    y -= m <= 2 ? 1 : 0;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const auto yoe = static_cast<unsigned>(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool takeDigits(std::string_view& s, size_t n, unsigned& out) {
    if (s.size() < n) return false;
    out = 0;
    for (size_t i = 0; i < n; ++i) {
        if (!isDigit(s[i])) return false;
        out = out * 10 + static_cast<unsigned>(s[i] - '0');
    }
    s.remove_prefix(n);
    return true;
}

bool takeChar(std::string_view& s, std::string_view allowed) {
    if (s.empty() || allowed.find(s.front()) == std::string_view::npos) return false;
    s.remove_prefix(1);
    return true;
}

}  // namespace

Result<std::chrono::system_clock::time_point> parseRfc3339(std::string_view text) {
    Error bad{quoted(text) + " is not an RFC 3339 time (e.g. 2026-12-01T00:00:00Z)"};
    std::string_view s = text;
    unsigned year = 0, month = 0, day = 0, hour = 0, minute = 0, second = 0;
    if (!takeDigits(s, 4, year) || !takeChar(s, "-") || !takeDigits(s, 2, month) || !takeChar(s, "-") ||
        !takeDigits(s, 2, day) || !takeChar(s, "Tt") || !takeDigits(s, 2, hour) || !takeChar(s, ":") ||
        !takeDigits(s, 2, minute) || !takeChar(s, ":") || !takeDigits(s, 2, second)) {
        return bad;
    }
    static constexpr std::array<unsigned, 12> kDays{31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (month < 1 || month > 12 || day < 1 || day > kDays[month - 1] || (month == 2 && day == 29 && !leap) ||
        hour > 23 || minute > 59 || second > 60) {
        return bad;
    }
    int64_t nanos = 0;
    if (!s.empty() && s.front() == '.') {
        s.remove_prefix(1);
        size_t n = 0;
        int64_t scaleNs = 100000000;
        while (n < s.size() && isDigit(s[n])) {
            nanos += (s[n] - '0') * scaleNs;
            scaleNs /= 10;
            ++n;
        }
        if (n == 0) return bad;
        s.remove_prefix(n);
    }
    int64_t offsetSeconds = 0;
    if (takeChar(s, "Zz")) {
        // UTC
    } else if (!s.empty() && (s.front() == '+' || s.front() == '-')) {
        int sign = s.front() == '-' ? -1 : 1;
        s.remove_prefix(1);
        unsigned oh = 0, om = 0;
        if (!takeDigits(s, 2, oh) || !takeChar(s, ":") || !takeDigits(s, 2, om) || oh > 23 || om > 59) return bad;
        offsetSeconds = sign * static_cast<int64_t>(oh * 3600 + om * 60);
    } else {
        return bad;
    }
    if (!s.empty()) return bad;
    if (second == 60) second = 59;  // a leap second: the clock has no slot for it
    int64_t secs = daysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offsetSeconds;
    // The system clock counts nanoseconds in 64 bits (years 1678 to 2262): keep well inside.
    constexpr int64_t kYear2200 = 7258118400;
    if (secs < 0 || secs >= kYear2200) return Error{quoted(text) + " is out of range (1970 to 2199)"};
    return std::chrono::system_clock::time_point(std::chrono::duration_cast<std::chrono::system_clock::duration>(
        std::chrono::seconds(secs) + std::chrono::nanoseconds(nanos)));
}

std::string formatRfc3339(std::chrono::system_clock::time_point t) {
    auto secs = std::chrono::floor<std::chrono::seconds>(t.time_since_epoch()).count();
    time_t tt = static_cast<time_t>(secs);
    struct tm tm {};
    gmtime_r(&tt, &tm);
    char buf[32];
    strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

// ---------------------------------------------------------------- small ones

std::optional<bool> parseYamlBool(std::string_view t) {
    static constexpr std::array<std::string_view, 11> kTrue{"y",    "Y",    "yes", "Yes", "YES", "true",
                                                            "True", "TRUE", "on",  "On",  "ON"};
    static constexpr std::array<std::string_view, 11> kFalse{"n",     "N",     "no",  "No",  "NO", "false",
                                                             "False", "FALSE", "off", "Off", "OFF"};
    for (auto v : kTrue)
        if (t == v) return true;
    for (auto v : kFalse)
        if (t == v) return false;
    return std::nullopt;
}

bool isUuid(std::string_view t) {
    if (t.size() != 36) return false;
    for (size_t i = 0; i < t.size(); ++i) {
        bool hyphen = i == 8 || i == 13 || i == 18 || i == 23;
        if (hyphen ? t[i] != '-' : std::isxdigit(static_cast<unsigned char>(t[i])) == 0) return false;
    }
    return true;
}

}  // namespace relaypro
