// A listening socket and its kind: what the supervisor binds, hands to its workers and over an
// upgrade, and what a worker serves. The one type for it on both sides of every process boundary.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace relaypro {

// The values are the wire's (ipc Listeners, the hand-over).
enum class ListenerKind : uint8_t { Https = 0, Http = 1 };

// "https" or "http", as logs and `status` say it.
constexpr std::string_view listenerKindName(ListenerKind kind) {
    return kind == ListenerKind::Https ? "https" : "http";
}

// A kind read from another process: only the values above.
constexpr std::optional<ListenerKind> listenerKindFromWire(uint8_t value) {
    if (value > static_cast<uint8_t>(ListenerKind::Http)) return std::nullopt;
    return static_cast<ListenerKind>(value);
}

struct ListenerSocket {
    ListenerKind kind = ListenerKind::Https;
    int fd = -1;          // bound and listening; who owns it is said where it is kept
    std::string address;  // as bound, for logs and `status`; empty in a worker
};

}  // namespace relaypro
