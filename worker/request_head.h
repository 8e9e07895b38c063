// A strict HTTP/1.x request-head parser for a proxy (spec/protocol.md, "Errors"): request line
// in origin-, authority- or absolute-form, header fields, and every rejection RelayPro makes
// before routing (400, 431, 505). It parses in place: every view points into the caller's
// buffer, which must outlive the RequestHead.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace relaypro {

inline constexpr size_t kMaxHeaderFields = 100;

struct HeaderField {
    std::string_view name;
    std::string_view value;  // optional whitespace around it removed
};

enum class TargetForm { Origin, Authority, Absolute, Asterisk };

struct RequestHead {
    std::string_view method;
    std::string_view target;  // as sent
    TargetForm form = TargetForm::Origin;
    int minorVersion = 1;  // HTTP/1.<minorVersion>

    // authority-form and absolute-form: the target's host (brackets removed) and port.
    std::string_view scheme;  // absolute-form: "http" or "https" (lower case as sent)
    std::string_view host;
    bool hostIsIpv6 = false;
    uint16_t port = 0;
    bool portGiven = false;
    // origin-form and absolute-form: path with query ("/" when absent in absolute-form).
    std::string_view path;

    std::vector<HeaderField> fields;
    std::optional<std::string_view> hostHeader;
    std::optional<std::string_view> proxyAuthorization;
    std::optional<uint64_t> contentLength;
    bool chunked = false;  // Transfer-Encoding: chunked
    bool connectionClose = false;
    bool connectionKeepAlive = false;

    size_t headLength = 0;  // bytes of the head, including the final empty line

    [[nodiscard]] bool hasBody() const { return chunked || (contentLength && *contentLength > 0); }
    // Whether the connection may carry another request after this one.
    [[nodiscard]] bool keepAlive() const {
        return minorVersion == 1 ? !connectionClose : connectionKeepAlive && !connectionClose;
    }
    // The first field named `name` (case-insensitive).
    [[nodiscard]] std::optional<std::string_view> field(std::string_view name) const;
};

enum class HeadStatus { Complete, Incomplete, Invalid };

struct HeadError {
    int status = 400;                       // 400, 431 or 505
    std::string_view code = "bad_request";  // protocol.md's error code
    std::string_view reason;                // what exactly was wrong (for logs, never echoing input)
};

struct HeadResult {
    HeadStatus status = HeadStatus::Incomplete;
    HeadError error;
};

// Parses the head at the start of `buffer`. Incomplete: no final empty line yet and the
// buffer is still within maxHeadBytes. Complete: `head` is filled. Invalid: `error` says why.
// `scanned` carries over between calls on a growing buffer (start it at 0) so each byte is
// examined once.
HeadResult parseRequestHead(std::string_view buffer, size_t maxHeadBytes, RequestHead& head, size_t& scanned);
HeadResult parseRequestHead(std::string_view buffer, size_t maxHeadBytes, RequestHead& head);

// Splits an authority "host:port" / "[v6]:port" (no userinfo). Returns false when malformed.
bool splitAuthority(std::string_view authority, std::string_view& host, bool& ipv6, uint16_t& port, bool& portGiven);

}  // namespace relaypro
