// How long a connection that is being answered, forwarded or tunnelled may make no progress
// (docs/protocol.md, "The send deadline"): no byte taken by a side the relay holds bytes for
// (send deadline), and in a forward or a tunnel no byte either way (idle). A pure rule, so that
// the contract's "idleTimeout 0 = never" for tunnels is tested without waiting for it.
#pragma once

#include <chrono>
#include <optional>

namespace relaypro {

enum class QuietPhase { Answer, Forward, Tunnel };

// An answer or a forward with idleTimeout 0 still ends: nginx's send_timeout default.
inline constexpr std::chrono::seconds kDefaultQuietLimit{60};

inline std::optional<std::chrono::nanoseconds> quietLimit(QuietPhase phase, std::chrono::nanoseconds idleTimeout) {
    if (idleTimeout > std::chrono::nanoseconds::zero()) return idleTimeout;
    if (phase == QuietPhase::Tunnel) return std::nullopt;  // spec/config.md: 0 = never
    return std::chrono::duration_cast<std::chrono::nanoseconds>(kDefaultQuietLimit);
}

}  // namespace relaypro
