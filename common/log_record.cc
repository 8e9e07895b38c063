#include "common/log_record.h"

#include <unistd.h>

#include <array>
#include <charconv>
#include <cmath>
#include <ctime>

#include "common/text.h"

namespace relaypro {
namespace {

constexpr std::string_view kRedacted = "<redacted>";

// Keys whose values are secrets whatever they hold.
bool isSecretKey(std::string_view key) {
    static constexpr std::array<std::string_view, 8> kParts{"token",      "password",   "passwd",      "secret",
                                                            "credential", "privatekey", "private_key", "cookie"};
    std::string k = toLower(key);
    for (auto p : kParts) {
        if (k.find(p) != std::string::npos) return true;
    }
    return false;
}

bool isAuthorizationKey(std::string_view key) {
    std::string k = toLower(key);
    return k == "auth" || k.find("authorization") != std::string::npos;
}

// "Bearer eyJ…" -> "Bearer": the scheme alone, and only if it looks like one.
std::string schemeOnly(std::string_view value) {
    value = trimSpace(value);
    size_t end = value.find_first_of(" \t");
    std::string_view scheme = value.substr(0, end);
    if (scheme.empty() || scheme.size() > 32) return std::string(kRedacted);
    for (char c : scheme) {
        if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-' && c != '_') return std::string(kRedacted);
    }
    return std::string(scheme);
}

bool isTokenChar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_' || c == '.' || c == '+' ||
           c == '/' || c == '=' || c == '~';
}

// Base64 text whose decoded form contains ':' (user:password).
bool looksLikeBasicCredential(std::string_view s) {
    if (s.size() < 4 || s.size() % 4 != 0) return false;
    auto value = [](char c) -> int {
        if (c >= 'A' && c <= 'Z') return c - 'A';
        if (c >= 'a' && c <= 'z') return c - 'a' + 26;
        if (c >= '0' && c <= '9') return c - '0' + 52;
        if (c == '+') return 62;
        if (c == '/') return 63;
        return -1;
    };
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '=') return false;  // padding: the text ended without a ':'
        int v = value(s[i]);
        if (v < 0) return false;
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (((acc >> bits) & 0xFF) == ':') return true;
        }
    }
    return false;
}

bool isB64UrlChar(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '_';
}

void appendUtf8Escaped(std::string& out, std::string_view s) {
    static constexpr char kHex[] = "0123456789abcdef";
    size_t i = 0;
    while (i < s.size()) {
        auto c = static_cast<unsigned char>(s[i]);
        if (c < 0x80) {
            switch (c) {
                case '"':
                    out += "\\\"";
                    break;
                case '\\':
                    out += "\\\\";
                    break;
                case '\n':
                    out += "\\n";
                    break;
                case '\r':
                    out += "\\r";
                    break;
                case '\t':
                    out += "\\t";
                    break;
                case '\b':
                    out += "\\b";
                    break;
                case '\f':
                    out += "\\f";
                    break;
                default:
                    if (c < 0x20 || c == 0x7f) {
                        out += "\\u00";
                        out += kHex[c >> 4];
                        out += kHex[c & 15];
                    } else {
                        out += static_cast<char>(c);
                    }
            }
            ++i;
            continue;
        }
        // Copy a whole valid sequence, or write U+FFFD for one invalid byte.
        uint32_t cp = 0;
        size_t len = decodeUtf8(s, i, cp);
        if (len > 1) {
            out.append(s.substr(i, len));
            i += len;
        } else {
            out += "\xEF\xBF\xBD";
            ++i;
        }
    }
}

void appendString(std::string& out, std::string_view s) {
    out += '"';
    appendUtf8Escaped(out, s);
    out += '"';
}

// Keys are identifiers chosen by code: anything else is replaced, so every consumer can read them.
void appendKey(std::string& out, std::string_view key) {
    out += '"';
    if (key.empty()) out += '_';
    for (char c : key.substr(0, 64)) {
        bool ok = std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '-' || c == '.';
        out += ok ? c : '_';
    }
    out += '"';
}

void appendValue(std::string& out, const std::string& key, const LogValue& v) {
    if (const auto* s = std::get_if<std::string>(&v)) {
        if (isAuthorizationKey(key)) {
            appendString(out, schemeOnly(*s));
        } else if (isSecretKey(key)) {
            appendString(out, s->empty() ? "" : kRedacted);
        } else {
            appendString(out, redactSecrets(*s));
        }
        return;
    }
    if (isSecretKey(key)) {
        appendString(out, kRedacted);
        return;
    }
    char buf[64];
    if (const auto* i = std::get_if<int64_t>(&v)) {
        auto r = std::to_chars(buf, buf + sizeof buf, *i);
        out.append(buf, r.ptr);
    } else if (const auto* u = std::get_if<uint64_t>(&v)) {
        auto r = std::to_chars(buf, buf + sizeof buf, *u);
        out.append(buf, r.ptr);
    } else if (const auto* d = std::get_if<double>(&v)) {
        if (!std::isfinite(*d)) {
            out += "null";
        } else {
            auto r = std::to_chars(buf, buf + sizeof buf, *d);
            out.append(buf, r.ptr);
        }
    } else if (const auto* b = std::get_if<bool>(&v)) {
        out += *b ? "true" : "false";
    }
}

}  // namespace

std::string_view levelName(LogLevel level) {
    switch (level) {
        case LogLevel::Debug:
            return "debug";
        case LogLevel::Info:
            return "info";
        case LogLevel::Warn:
            return "warn";
        case LogLevel::Error:
            return "error";
    }
    return "info";
}

std::optional<LogLevel> parseLogLevel(std::string_view name) {
    if (name == "debug") return LogLevel::Debug;
    if (name == "info") return LogLevel::Info;
    if (name == "warn") return LogLevel::Warn;
    if (name == "error") return LogLevel::Error;
    return std::nullopt;
}

std::string formatLogTime(std::chrono::system_clock::time_point t) {
    auto us = std::chrono::floor<std::chrono::microseconds>(t.time_since_epoch()).count();
    auto secs = us / 1000000;
    auto frac = us % 1000000;
    if (frac < 0) {
        frac += 1000000;
        --secs;
    }
    time_t tt = static_cast<time_t>(secs);
    struct tm tm {};
    gmtime_r(&tt, &tm);
    char buf[40];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%06lldZ", static_cast<long long>(frac));
    return buf;
}

std::string redactSecrets(std::string_view text) {
    // Fast path: nothing that could start a secret.
    if (text.find("eyJ") == std::string_view::npos && text.find("PRIVATE KEY") == std::string_view::npos &&
        text.find("earer") == std::string_view::npos && text.find("EARER") == std::string_view::npos &&
        text.find("asic") == std::string_view::npos && text.find("ASIC") == std::string_view::npos) {
        return std::string(text);
    }
    std::string out;
    out.reserve(text.size());
    size_t i = 0;
    while (i < text.size()) {
        std::string_view rest = text.substr(i);
        bool atWordStart = i == 0 || !isTokenChar(text[i - 1]);
        // PEM private key block (any kind: RSA, EC, ENCRYPTED, plain PKCS#8).
        if (rest.starts_with("-----BEGIN ")) {
            size_t eol = rest.find("-----", 11);
            if (eol != std::string_view::npos && rest.substr(0, eol).find("PRIVATE KEY") != std::string_view::npos) {
                size_t end = rest.find("-----END ", eol);
                size_t close = end == std::string_view::npos ? std::string_view::npos : rest.find("-----", end + 9);
                out += "<redacted private key>";
                i += close == std::string_view::npos ? rest.size() : close + 5;
                continue;
            }
        }
        // JWS / JWE compact serialisation: base64url("{\"...") segments joined by dots.
        bool atSegmentStart = i == 0 || (!isB64UrlChar(text[i - 1]) && text[i - 1] != '.');
        if (atSegmentStart && rest.starts_with("eyJ")) {
            size_t n = 0, dots = 0;
            while (n < rest.size() && (isB64UrlChar(rest[n]) || rest[n] == '.')) {
                dots += rest[n] == '.' ? 1U : 0U;
                ++n;
            }
            if (dots >= 1) {
                out += "<redacted token>";
                i += n;
                continue;
            }
        }
        // "Bearer <credential>", "Basic <credential>" (any case).
        if (atWordStart) {
            size_t schemeLen = 0;
            if (rest.size() > 7 && equalsIgnoreCase(rest.substr(0, 7), "bearer "))
                schemeLen = 7;
            else if (rest.size() > 6 && equalsIgnoreCase(rest.substr(0, 6), "basic "))
                schemeLen = 6;
            if (schemeLen > 0) {
                size_t start = schemeLen;
                while (start < rest.size() && rest[start] == ' ') ++start;
                size_t n = start;
                while (n < rest.size() && isTokenChar(rest[n])) ++n;
                std::string_view credential = rest.substr(start, n - start);
                // Basic: base64 of "user:password". Bearer: long opaque tokens. So prose such
                // as "Basic authentication is off" stays readable.
                bool secret = schemeLen == 7 ? credential.size() >= 16 : looksLikeBasicCredential(credential);
                if (secret) {
                    out.append(rest.substr(0, schemeLen));
                    out += kRedacted;
                    i += n;
                    continue;
                }
            }
        }
        out += text[i];
        ++i;
    }
    return out;
}

std::string formatLogLine(const LogRecord& r) {
    std::string out;
    out.reserve(160 + r.msg.size() + r.fields.size() * 24);
    out += "{\"time\":\"";
    out += formatLogTime(r.time);
    out += "\",\"level\":\"";
    out += levelName(r.level);
    out += "\",\"msg\":";
    appendString(out, redactSecrets(r.msg));
    out += ",\"component\":";
    appendString(out, r.component);
    out += ",\"pid\":";
    out += std::to_string(r.pid);
    for (const auto& f : r.fields) {
        // The fixed keys cannot be overridden by an event's own keys.
        if (f.key == "time" || f.key == "level" || f.key == "msg" || f.key == "component" || f.key == "pid") continue;
        out += ',';
        appendKey(out, f.key);
        out += ':';
        appendValue(out, f.key, f.value);
    }
    out += "}\n";
    return out;
}

Logger::Logger(LogOutput* output, std::string component, LogLevel minLevel)
    : output_(output), component_(std::move(component)), minLevel_(minLevel), pid_(::getpid()) {}

void Logger::log(LogLevel level, std::string msg, std::vector<LogField> fields) const {
    if (!enabled(level)) return;
    LogRecord r;
    r.time = std::chrono::system_clock::now();
    r.level = level;
    r.msg = std::move(msg);
    r.component = component_;
    r.pid = pid_;
    r.fields = std::move(fields);
    output_->write(r);
}

}  // namespace relaypro
