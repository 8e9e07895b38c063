// RelayPro's Responder tokens (spec/protocol.md, "Token format"): a compact JWE, "alg":"dir",
// "enc":"A256GCM", "kid":"rp1.<day>.<b64url(responderId)>", "typ":"JWT", encrypted with a key
// derived per Responder from the day's master:
//   key = HKDF-SHA256(IKM = master(day), salt = "RelayPro responder key v1", info = responderId, L = 32)
// The masters themselves come from the CA key (supervisor only, token_master.h).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace relaypro {

using TokenKey = std::array<unsigned char, 32>;

inline constexpr size_t kMaxTokenBytes = 4096;
inline constexpr int64_t kMaxTokenLifetimeSeconds = 24 * 3600;

// A Responder id as protocol.md allows it: 1-256 bytes of UTF-8 without control characters.
bool isPrintableResponderId(std::string_view id);

// The UTC day number of a time: floor(unix seconds / 86400).
int64_t utcDay(int64_t unixSeconds);

// The per-Responder key from a day's master.
TokenKey responderKey(const TokenKey& master, std::string_view responderId);

struct TokenClaims {
    std::string responderId;  // sub
    int64_t organizationId = 0;
    int64_t issuedAt = 0;  // iat, unix seconds
    int64_t notBefore = 0;
    int64_t expiresAt = 0;
    std::string id;  // jti
};

// Issues a token for `responderId` at `now` (unix seconds), valid for `lifetimeSeconds`, with the
// master of today's UTC day. IV and jti are random.
Result<std::string> issueToken(const TokenKey& master, std::string_view responderId, int64_t organizationId,
                               int64_t now, int64_t lifetimeSeconds);

// The key for a token of `responderId` issued on `day`, or nullopt when that day's master is not
// held (workers hold today's and yesterday's only). Lets a caller cache derived keys.
using TokenKeyLookup = std::function<std::optional<TokenKey>(int64_t day, std::string_view responderId)>;

// Checks every rule of protocol.md: header exactly alg/enc/kid/typ, kid's day and Responder,
// decryption, claims exactly iss/sub/org/iat/nbf/exp/jti, sub == kid's Responder, iss, org,
// nbf/exp within `skewSeconds` of `now`, exp − iat at most 24 h. The error says which rule failed
// (for debug logs; the client only ever sees invalid_token).
Result<TokenClaims> verifyToken(std::string_view compact, const TokenKeyLookup& keys, int64_t organizationId,
                                int64_t now, int64_t skewSeconds);

// The two halves of verification's parsing, exposed for tests and fuzzing. Each has a fast path
// for the exact bytes issueToken writes and falls back to jansson for every other spelling; the
// fuzzer checks that both paths agree wherever the fast one answers.
namespace token_parts {

struct Claims {
    std::string iss;
    std::string sub;
    int64_t org = 0;
    int64_t iat = 0;
    int64_t nbf = 0;
    int64_t exp = 0;
    std::string jti;
};

// The kid of a protected header: exactly alg "dir", enc "A256GCM", kid (a string), typ "JWT".
std::optional<std::string> canonicalHeaderKid(std::string_view json);
Result<std::string> headerKid(std::string_view json);  // fast path, else jansson

// Exactly iss, sub, jti (strings) and org, iat, nbf, exp (integers).
std::optional<Claims> canonicalClaims(std::string_view json);
Result<Claims> claimsOf(std::string_view json);  // fast path, else jansson

Result<std::string> jsonHeaderKid(std::string_view json);  // jansson only
Result<Claims> jsonClaims(std::string_view json);          // jansson only

}  // namespace token_parts

}  // namespace relaypro
