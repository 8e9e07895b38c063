#include "worker/request_head.h"

#include <algorithm>

#include "common/text.h"

namespace relaypro {
namespace {

constexpr size_t kMaxMethodLength = 32;
constexpr size_t kMaxTargetLength = 8192;

// RFC 9110 tchar.
bool isTokenChar(unsigned char c) {
    if (c >= '0' && c <= '9') return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
    switch (c) {
        case '!':
        case '#':
        case '$':
        case '%':
        case '&':
        case '\'':
        case '*':
        case '+':
        case '-':
        case '.':
        case '^':
        case '_':
        case '`':
        case '|':
        case '~':
            return true;
        default:
            return false;
    }
}

// A field value byte: SP, HTAB, VCHAR or obs-text. No other control character.
bool isFieldValueChar(unsigned char c) {
    return c == ' ' || c == '\t' || (c >= 0x21 && c != 0x7F);
}

HeadResult invalid(int status, std::string_view code, std::string_view reason) {
    return HeadResult{HeadStatus::Invalid, HeadError{status, code, reason}};
}
HeadResult bad(std::string_view reason) {
    return invalid(400, "bad_request", reason);
}

bool isRegNameChar(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
           c == '_';
}

bool isIpv6LiteralChar(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.';
}

std::string_view trimOws(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

bool parseContentLength(std::string_view v, uint64_t& out) {
    if (v.empty() || v.size() > 18) return false;
    out = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return false;
        out = out * 10 + static_cast<uint64_t>(c - '0');
    }
    return true;
}

// Parses the request line; fills method, target, version and the target's pieces.
HeadResult parseRequestLine(std::string_view line, RequestHead& h) {
    size_t sp1 = line.find(' ');
    if (sp1 == std::string_view::npos || sp1 == 0) return bad("malformed request line");
    h.method = line.substr(0, sp1);
    if (h.method.size() > kMaxMethodLength) return bad("method too long");
    for (char c : h.method) {
        if (!isTokenChar(static_cast<unsigned char>(c))) return bad("invalid method");
    }
    size_t sp2 = line.find(' ', sp1 + 1);
    if (sp2 == std::string_view::npos || sp2 == sp1 + 1) return bad("malformed request line");
    h.target = line.substr(sp1 + 1, sp2 - sp1 - 1);
    if (h.target.size() > kMaxTargetLength) return invalid(431, "header_too_large", "request target too long");
    for (char c : h.target) {
        auto u = static_cast<unsigned char>(c);
        if (u <= 0x20 || u >= 0x7F) return bad("invalid byte in request target");
    }
    std::string_view version = line.substr(sp2 + 1);
    if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' || version[5] < '0' ||
        version[5] > '9' || version[7] < '0' || version[7] > '9') {
        return bad("malformed HTTP version");
    }
    if (version[5] != '1' || (version[7] != '0' && version[7] != '1')) {
        return invalid(505, "version_not_supported", "HTTP version other than 1.0 or 1.1");
    }
    h.minorVersion = version[7] - '0';

    std::string_view t = h.target;
    if (t.find('#') != std::string_view::npos) return bad("fragment in request target");
    if (h.method == "CONNECT") {
        h.form = TargetForm::Authority;
        if (t.find('@') != std::string_view::npos) return bad("userinfo in authority");
        if (!splitAuthority(t, h.host, h.hostIsIpv6, h.port, h.portGiven)) return bad("malformed authority");
        if (!h.portGiven) return bad("authority without port");
        return HeadResult{HeadStatus::Complete, {}};
    }
    if (t == "*") {
        h.form = TargetForm::Asterisk;
        return HeadResult{HeadStatus::Complete, {}};
    }
    if (t.front() == '/') {
        h.form = TargetForm::Origin;
        h.path = t;
        return HeadResult{HeadStatus::Complete, {}};
    }
    size_t scheme = t.find("://");
    if (scheme == std::string_view::npos) return bad("malformed request target");
    h.form = TargetForm::Absolute;
    h.scheme = t.substr(0, scheme);
    if (!equalsIgnoreCase(h.scheme, "http") && !equalsIgnoreCase(h.scheme, "https")) return bad("unsupported scheme");
    std::string_view rest = t.substr(scheme + 3);
    size_t end = rest.find_first_of("/?");
    std::string_view authority = rest.substr(0, end);
    if (authority.find('@') != std::string_view::npos) return bad("userinfo in authority");
    if (!splitAuthority(authority, h.host, h.hostIsIpv6, h.port, h.portGiven)) return bad("malformed authority");
    h.path = end == std::string_view::npos ? std::string_view("/") : rest.substr(end);
    if (!h.path.empty() && h.path.front() == '?') return bad("malformed request target");
    return HeadResult{HeadStatus::Complete, {}};
}

HeadResult parseField(std::string_view line, RequestHead& h) {
    if (line.front() == ' ' || line.front() == '\t') return bad("obsolete line folding");
    size_t colon = line.find(':');
    if (colon == std::string_view::npos) return bad("header field without colon");
    if (colon == 0) return bad("empty header field name");
    std::string_view name = line.substr(0, colon);
    for (char c : name) {
        if (c == ' ' || c == '\t') return bad("whitespace before colon");
        if (!isTokenChar(static_cast<unsigned char>(c))) return bad("invalid header field name");
    }
    std::string_view value = trimOws(line.substr(colon + 1));
    for (char c : value) {
        if (!isFieldValueChar(static_cast<unsigned char>(c))) return bad("control character in header value");
    }
    if (h.fields.size() >= kMaxHeaderFields) return invalid(431, "header_too_large", "too many header fields");
    h.fields.push_back(HeaderField{name, value});

    if (equalsIgnoreCase(name, "Host")) {
        if (h.hostHeader) return bad("duplicate Host");
        h.hostHeader = value;
        std::string_view host;
        bool ipv6 = false, portGiven = false;
        uint16_t port = 0;
        if (!value.empty() &&
            (value.find('@') != std::string_view::npos || !splitAuthority(value, host, ipv6, port, portGiven))) {
            return bad("malformed Host");
        }
    } else if (equalsIgnoreCase(name, "Proxy-Authorization")) {
        if (h.proxyAuthorization) return bad("duplicate Proxy-Authorization");
        h.proxyAuthorization = value;
    } else if (equalsIgnoreCase(name, "Content-Length")) {
        uint64_t n = 0;
        if (h.contentLength) return bad("duplicate Content-Length");
        if (!parseContentLength(value, n)) return bad("malformed Content-Length");
        h.contentLength = n;
    } else if (equalsIgnoreCase(name, "Transfer-Encoding")) {
        if (h.chunked) return bad("duplicate Transfer-Encoding");
        if (!equalsIgnoreCase(value, "chunked")) return bad("unsupported Transfer-Encoding");
        h.chunked = true;
    } else if (equalsIgnoreCase(name, "Connection")) {
        std::string_view v = value;
        while (!v.empty()) {
            size_t comma = v.find(',');
            std::string_view token = trimOws(v.substr(0, comma));
            if (equalsIgnoreCase(token, "close")) h.connectionClose = true;
            if (equalsIgnoreCase(token, "keep-alive")) h.connectionKeepAlive = true;
            if (comma == std::string_view::npos) break;
            v.remove_prefix(comma + 1);
        }
    }
    return HeadResult{HeadStatus::Complete, {}};
}

}  // namespace

std::optional<std::string_view> RequestHead::field(std::string_view name) const {
    for (const auto& f : fields) {
        if (equalsIgnoreCase(f.name, name)) return f.value;
    }
    return std::nullopt;
}

bool splitAuthority(std::string_view a, std::string_view& host, bool& ipv6, uint16_t& port, bool& portGiven) {
    ipv6 = false;
    portGiven = false;
    port = 0;
    std::string_view portText;
    if (!a.empty() && a.front() == '[') {
        size_t close = a.find(']');
        if (close == std::string_view::npos || close < 3) return false;
        host = a.substr(1, close - 1);
        for (char c : host) {
            if (!isIpv6LiteralChar(c)) return false;  // no zone id ('%'), nothing else
        }
        ipv6 = true;
        std::string_view rest = a.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return false;
            portText = rest.substr(1);
            portGiven = true;
        }
    } else {
        size_t colon = a.find(':');
        host = a.substr(0, colon);
        if (colon != std::string_view::npos) {
            portText = a.substr(colon + 1);
            portGiven = true;
        }
        if (host.empty()) return false;
        for (char c : host) {
            if (!isRegNameChar(c)) return false;  // no %-encoding, no userinfo, no second colon
        }
    }
    if (portGiven) {
        // Strict: 1-65535 written the one way (no leading zero, so "0443" is not taken as 443).
        if (portText.empty() || portText.size() > 5 || portText.front() == '0') return false;
        unsigned v = 0;
        for (char c : portText) {
            if (c < '0' || c > '9') return false;
            v = v * 10 + static_cast<unsigned>(c - '0');
        }
        if (v == 0 || v > 65535) return false;
        port = static_cast<uint16_t>(v);
    }
    return true;
}

// Parses a head known to be complete (it ends with the empty line).
HeadResult parseCompleteHead(std::string_view buf, RequestHead& h) {
    size_t pos = 0;
    while (pos + 1 < buf.size() && buf[pos] == '\r' && buf[pos + 1] == '\n') pos += 2;
    bool requestLine = true;
    while (true) {
        size_t lf = buf.find('\n', pos);
        std::string_view line = buf.substr(pos, lf - 1 - pos);  // the scan guaranteed CRLF endings
        pos = lf + 1;
        if (requestLine) {
            if (auto r = parseRequestLine(line, h); r.status == HeadStatus::Invalid) return r;
            requestLine = false;
            continue;
        }
        if (line.empty()) break;
        if (auto r = parseField(line, h); r.status == HeadStatus::Invalid) return r;
    }
    h.headLength = pos;
    if (h.contentLength && h.chunked) return bad("both Content-Length and Transfer-Encoding");
    if (h.chunked && h.minorVersion == 0) return bad("Transfer-Encoding in HTTP/1.0");
    if (h.form == TargetForm::Authority && h.hasBody()) return bad("CONNECT with a body");
    if (h.minorVersion == 1 && !h.hostHeader && h.form != TargetForm::Authority) {
        return bad("HTTP/1.1 request without Host");
    }
    return HeadResult{HeadStatus::Complete, {}};
}

HeadResult parseRequestHead(std::string_view buf, size_t maxHeadBytes, RequestHead& h, size_t& scanned) {
    h = RequestHead{};
    // RFC 9112 §2.2: empty lines before the request line are ignored.
    size_t start = 0;
    while (start + 1 < buf.size() && buf[start] == '\r' && buf[start + 1] == '\n') start += 2;
    // Each byte is looked at once across calls: garbage (a TLS handshake on the plain
    // listener, binary noise) is refused as soon as it arrives, and a head sent a byte at a
    // time costs linear, not quadratic, work.
    size_t i = std::max(scanned, start);
    for (; i < buf.size(); ++i) {
        auto c = static_cast<unsigned char>(buf[i]);
        if (i >= maxHeadBytes) return invalid(431, "header_too_large", "request head too large");
        if (c == '\n') {
            if (i == 0 || buf[i - 1] != '\r') return bad("bare LF");
            if (i >= start + 3 && buf[i - 2] == '\n') {
                scanned = i + 1;
                return parseCompleteHead(buf.substr(0, i + 1), h);
            }
            continue;
        }
        if (i > 0 && buf[i - 1] == '\r') return bad("bare CR");
        if (c == 0) return bad("NUL byte");
        if ((c < 0x20 && c != '\t' && c != '\r') || c == 0x7F) return bad("control character");
    }
    scanned = i;
    return HeadResult{HeadStatus::Incomplete, {}};
}

HeadResult parseRequestHead(std::string_view buf, size_t maxHeadBytes, RequestHead& h) {
    size_t scanned = 0;
    return parseRequestHead(buf, maxHeadBytes, h, scanned);
}

}  // namespace relaypro
