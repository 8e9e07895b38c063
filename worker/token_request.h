// The token endpoint's request body (protocol.md): exactly
// {"responderId": <1-256 bytes of printable UTF-8>, "credential": <1-8192 bytes>}.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace relaypro {

struct TokenRequest {
    std::string responderId;
    std::string credential;  // a secret: the holder wipes it
};

inline constexpr size_t kMaxTokenRequestBody = 16 * 1024;

// Parses and checks the body; the error says which rule failed (for logs: it never quotes the
// credential).
Result<TokenRequest> parseTokenRequest(std::string_view body);

}  // namespace relaypro
