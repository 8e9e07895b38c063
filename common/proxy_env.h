// The system proxy as config.md defines it: https_proxy/HTTPS_PROXY for tunnels and console API
// calls, http_proxy/HTTP_PROXY for plain-HTTP forwarding, no_proxy/NO_PROXY for bypasses; lower
// case wins over upper case. This is the one parser: workers and the console client both use it
// (libcurl is handed the chosen proxy explicitly, never left to read the environment itself).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config_values.h"
#include "common/environment.h"
#include "common/result.h"

namespace relaypro {

struct ProxyUrl {
    bool tls = false;  // https:// proxy (TLS to the proxy itself)
    std::string host;  // without brackets
    uint16_t port = 0;
    std::string user;      // percent-decoded
    std::string password;  // percent-decoded; a secret
    [[nodiscard]] bool hasCredentials() const { return !user.empty() || !password.empty(); }
    // "http://host:port" with "user:<redacted>@" when credentials are present: safe to print.
    [[nodiscard]] std::string redacted() const;
    bool operator==(const ProxyUrl&) const = default;
};

// http:// or https:// URL with an optional user:password@, a host, an optional port (default
// 80 / 443) and at most a "/" path.
Result<ProxyUrl> parseProxyUrl(std::string_view text);

class NoProxy {
public:
    // Comma- (or space-) separated hosts, ".domain" / "*.domain" suffixes, IPs, CIDRs or "*".
    static Result<NoProxy> parse(std::string_view text);
    // Whether a connection to `host` (a name or an IP literal, no brackets) bypasses the proxy.
    [[nodiscard]] bool bypasses(std::string_view host) const;
    [[nodiscard]] const std::string& text() const { return text_; }
    bool operator==(const NoProxy&) const = default;

private:
    bool all_ = false;
    std::vector<std::string> names_;  // lower case, leading dot removed
    std::vector<Cidr> networks_;
    std::string text_;
};

struct ProxySettings {
    std::optional<ProxyUrl> https;  // tunnels and console API calls
    std::optional<ProxyUrl> http;   // plain-HTTP forwarding to the console's port 80
    NoProxy noProxy;
    bool operator==(const ProxySettings&) const = default;
};

// Reads the proxy variables from `env`. Errors name the variable.
Result<ProxySettings> proxySettingsFrom(const Environment& env);

}  // namespace relaypro
