// Small types shared by the server and its connections.
#pragma once

#include <cstdint>

#include "common/event_time.h"
#include "ipc/messages.h"

namespace relaypro {

// The supervisor's answer about a Responder that asks for a token (protocol.md, token endpoint):
// the IPC schema's own enum, one type on both sides.
using VerifyResult = ipc::VerifyAnswer::Result;

}  // namespace relaypro
