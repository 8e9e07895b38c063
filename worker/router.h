// The listener x request table of spec/protocol.md, as a pure decision: what a request is
// (CONNECT, token, ca.pem, health, plain-HTTP forward) or which error answers it. Everything
// that needs I/O (authentication, DNS, the upstream) happens after this, in the connection.
#pragma once

#include <string_view>

#include "common/listener.h"
#include "worker/request_head.h"

namespace relaypro {

struct Route {
    enum class Kind { Connect, Token, CaPem, Health, Forward, Error };
    Kind kind = Kind::Error;
    int status = 0;          // Error: the status
    std::string_view code;   // Error: protocol.md's error code
    std::string_view allow;  // 405: the Allow header
};

inline constexpr std::string_view kTokenPath = "/relaypro/v1/token";
inline constexpr std::string_view kCaPemPath = "/relaypro/v1/ca.pem";
inline constexpr std::string_view kHealthPath = "/relaypro/v1/health";

// The plain-HTTP listener's forward rule (host and port) is checked by the caller with the
// target policy: this returns Forward for any absolute-form GET/HEAD without credentials.
Route routeRequest(ListenerKind listener, const RequestHead& head);

}  // namespace relaypro
