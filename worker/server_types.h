// Small types shared by the server and its connections.
#pragma once

#include <cstdint>

#include "common/event_time.h"

namespace relaypro {

// The supervisor's answer about a Responder that asks for a token (protocol.md, token endpoint).
enum class VerifyResult : uint8_t { Valid, Invalid, RateLimited, NotRegistered, ConsoleUnavailable };

}  // namespace relaypro
