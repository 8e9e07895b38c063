#include "common/proxy_env.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include "common/text.h"

namespace relaypro {
namespace {

std::optional<std::string> percentDecode(std::string_view s) {
    auto hex = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '%') {
            out += s[i];
            continue;
        }
        if (i + 2 >= s.size()) return std::nullopt;
        int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out += static_cast<char>(hi * 16 + lo);
        i += 2;
    }
    return out;
}

std::string pick(const Environment& env, std::string_view lower, std::string_view upper, std::string& from) {
    if (auto v = env.get(lower)) {
        from = std::string(lower);
        return *v;
    }
    if (auto v = env.get(upper)) {
        from = std::string(upper);
        return *v;
    }
    from.clear();
    return {};
}

}  // namespace

std::string ProxyUrl::redacted() const {
    std::string h = host.find(':') != std::string::npos ? "[" + host + "]" : host;
    std::string creds = hasCredentials() ? user + ":<redacted>@" : "";
    return std::string(tls ? "https://" : "http://") + creds + h + ":" + std::to_string(port);
}

Result<ProxyUrl> parseProxyUrl(std::string_view text) {
    ProxyUrl u;
    std::string_view s = text;
    size_t scheme = s.find("://");
    if (scheme == std::string_view::npos)
        return Error{"is not a proxy URL (expected http://host:port or https://host:port)"};
    std::string sch = toLower(s.substr(0, scheme));
    if (sch == "http") {
        u.tls = false;
    } else if (sch == "https") {
        u.tls = true;
    } else {
        return Error{"has scheme \"" + std::string(s.substr(0, scheme)) +
                     "\"; only http:// and https:// proxies are supported"};
    }
    s.remove_prefix(scheme + 3);
    if (!s.empty() && s.back() == '/') s.remove_suffix(1);
    if (s.find('/') != std::string_view::npos || s.find('?') != std::string_view::npos ||
        s.find('#') != std::string_view::npos) {
        return Error{"must not have a path or query"};
    }
    size_t at = s.rfind('@');
    if (at != std::string_view::npos) {
        std::string_view creds = s.substr(0, at);
        size_t colon = creds.find(':');
        auto user = percentDecode(creds.substr(0, colon));
        auto pass =
            colon == std::string_view::npos ? std::optional<std::string>("") : percentDecode(creds.substr(colon + 1));
        if (!user || !pass) return Error{"has a malformed %-escape in its credentials"};
        u.user = std::move(*user);
        u.password = std::move(*pass);
        s.remove_prefix(at + 1);
    }
    std::string_view hostPart = s;
    std::string portText;
    bool portWritten = false;
    if (!s.empty() && s.front() == '[') {
        size_t close = s.find(']');
        if (close == std::string_view::npos) return Error{"has a malformed IPv6 address"};
        hostPart = s.substr(1, close - 1);
        std::string_view rest = s.substr(close + 1);
        if (!rest.empty()) {
            if (rest.front() != ':') return Error{"has a malformed host"};
            portText = std::string(rest.substr(1));
            portWritten = true;
        }
        if (!isIpLiteral(hostPart) || hostPart.find(':') == std::string_view::npos)
            return Error{"has a malformed IPv6 address"};
    } else {
        size_t colon = s.find(':');
        if (colon != std::string_view::npos) {
            hostPart = s.substr(0, colon);
            portText = std::string(s.substr(colon + 1));
            portWritten = true;
        }
        if (!isHostName(hostPart) && !(isIpLiteral(hostPart) && hostPart.find(':') == std::string_view::npos)) {
            return Error{"does not name a valid host"};
        }
    }
    u.host = std::string(hostPart);
    u.port = u.tls ? 443 : 80;
    if (portWritten) {
        auto hp = parseHostPort("x:" + portText);
        if (!hp || hp->port == 0) return Error{"has an invalid port"};
        u.port = hp->port;
    }
    return u;
}

Result<NoProxy> NoProxy::parse(std::string_view text) {
    NoProxy np;
    np.text_ = std::string(text);
    size_t pos = 0;
    while (pos <= text.size()) {
        size_t end = text.find_first_of(", \t", pos);
        if (end == std::string_view::npos) end = text.size();
        std::string entry = toLower(text.substr(pos, end - pos));
        pos = end + 1;
        if (entry.empty()) continue;
        if (entry == "*") {
            np.all_ = true;
            continue;
        }
        if (entry.front() == '[') {  // "[2001:db8::1]" or "[2001:db8::]/32"
            size_t close = entry.find(']');
            if (close == std::string::npos) return Error{"entry " + quoted(entry) + " has an unclosed ["};
            entry = entry.substr(1, close - 1) + entry.substr(close + 1);
        }
        if (entry.find('/') != std::string::npos || isIpLiteral(entry)) {
            auto c = parseCidr(entry);
            if (!c) return Error{"entry " + c.error().message};
            np.networks_.push_back(*c);
            continue;
        }
        if (entry.starts_with("*.")) entry.erase(0, 2);
        if (entry.starts_with(".")) entry.erase(0, 1);
        if (!entry.empty() && entry.back() == '.') entry.pop_back();
        if (!isHostName(entry)) return Error{"entry " + quoted(entry) + " is not a host, domain, IP or CIDR"};
        np.names_.push_back(entry);
    }
    return np;
}

bool NoProxy::bypasses(std::string_view hostIn) const {
    if (all_) return true;
    std::string host = toLower(hostIn);
    if (!host.empty() && host.back() == '.') host.pop_back();
    unsigned char addr[16] = {};
    if (inet_pton(AF_INET, host.c_str(), addr) == 1) {
        for (const auto& n : networks_) {
            if (n.contains(AF_INET, addr)) return true;
        }
        return false;
    }
    if (inet_pton(AF_INET6, host.c_str(), addr) == 1) {
        for (const auto& n : networks_) {
            if (n.contains(AF_INET6, addr)) return true;
        }
        return false;
    }
    for (const auto& name : names_) {
        if (host == name) return true;
        if (host.size() > name.size() && host.ends_with(name) && host[host.size() - name.size() - 1] == '.')
            return true;
    }
    return false;
}

Result<ProxySettings> proxySettingsFrom(const Environment& env) {
    ProxySettings p;
    std::string from;
    auto load = [&](std::string_view lower, std::string_view upper, std::optional<ProxyUrl>& out) -> Status {
        std::string v = pick(env, lower, upper, from);
        if (from.empty() || v.empty()) return {};
        auto u = parseProxyUrl(v);
        if (!u) return Error{from + ": proxy URL " + u.error().message};
        out = std::move(*u);
        return {};
    };
    if (auto s = load("https_proxy", "HTTPS_PROXY", p.https); !s) return s.error();
    if (auto s = load("http_proxy", "HTTP_PROXY", p.http); !s) return s.error();
    std::string np = pick(env, "no_proxy", "NO_PROXY", from);
    auto parsed = NoProxy::parse(np);
    if (!parsed) return Error{from + ": " + parsed.error().message};
    p.noProxy = std::move(*parsed);
    return p;
}

}  // namespace relaypro
