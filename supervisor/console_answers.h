// Reading the console's answers (console-api.md): the envelope, then what each endpoint's
// `result` means to RelayPro. The bytes are untrusted (a compromised or impersonated console, a
// proxy answering in its place), so every function here takes any JSON and either returns what
// console-api.md promises or says why not. Fuzzed by test/fuzz/console_answer_fuzz.cc.
#pragma once

#include <jansson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/config.h"
#include "common/result.h"

namespace relaypro {

// Whether `j` is the envelope: {"success": bool, "statusCode": int, "result": object|null,
// "errors": [string…]}.
bool isEnvelope(json_t* j);

// The body parsed as an envelope (duplicate keys refused): a new reference, or null when the
// body is not JSON or not an envelope.
json_t* parseEnvelope(std::string_view body);

// What a successful register answer gives the relay.
struct Registration {
    int64_t relayId = 0;
    std::string securityToken;   // a secret
    std::string consoleCACert;   // empty: the console sent none
    int64_t organizationId = 0;  // what the request named (set by the session, not read from the answer)
};

// register's 200 result: {"relayId": >0, "securityToken": non-empty string,
// "consoleCACert": PEM certificates | "" | null | absent}. The error never contains the token.
Result<Registration> registrationFrom(json_t* envelope);

// heartbeat's 200 result: {"migration": {"consoleAddress", "validUntilAt"} | null | absent};
// nullopt when there is no migration.
Result<std::optional<Migration>> migrationFrom(json_t* envelope);

// verify's 200 result counts as valid only when success is true, `valid` is true, and the
// result names this Responder in this relay's organization.
bool verifiedValid(json_t* envelope, std::string_view responderId, int64_t organizationId);

}  // namespace relaypro
