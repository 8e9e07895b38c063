// Responder tokens from arbitrary bytes. A random token cannot pass AES-GCM, so half the inputs
// are encrypted first with the right key: the header and claims parsers then see arbitrary JSON.
// Properties checked: base64url round-trips; the fast header and claims parsers agree with
// jansson; whatever verifies obeys every rule of the format.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/jose.h"
#include "common/token.h"

using namespace relaypro;

namespace {

constexpr int64_t kNow = 1'764'000'000;
constexpr int64_t kOrg = 7;

TokenKey master() {
    TokenKey m{};
    m.fill(0x5a);
    return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
    if (auto d = base64UrlDecode(text); d && base64UrlEncode(*d) != text) std::abort();
    // The fast parsers for issueToken's own spelling must agree with jansson wherever they answer.
    if (auto fast = token_parts::canonicalHeaderKid(text)) {
        auto slow = token_parts::jsonHeaderKid(text);
        if (!slow || *slow != *fast) std::abort();
    }
    if (auto fast = token_parts::canonicalClaims(text)) {
        auto slow = token_parts::jsonClaims(text);
        if (!slow || slow->iss != fast->iss || slow->sub != fast->sub || slow->org != fast->org ||
            slow->iat != fast->iat || slow->nbf != fast->nbf || slow->exp != fast->exp || slow->jti != fast->jti) {
            std::abort();
        }
    }

    TokenKeyLookup keys = [](int64_t day, std::string_view responderId) -> std::optional<TokenKey> {
        if (day != utcDay(kNow)) return std::nullopt;
        return responderKey(master(), responderId);
    };
    std::string token = text;
    if ((data[0] & 1) != 0) {
        // "<header>\n<claims>" encrypted for the Responder the header's kid would name.
        size_t nl = text.find('\n');
        std::string header = text.substr(0, nl);
        std::string claims = nl == std::string::npos ? "" : text.substr(nl + 1);
        std::string responder = "r";
        if (size_t k = header.find("rp1."); k != std::string::npos) {
            size_t dot = header.find('.', k + 4);
            size_t end = header.find('"', dot == std::string::npos ? k : dot);
            if (dot != std::string::npos && end != std::string::npos) {
                if (auto id = base64UrlDecode(header.substr(dot + 1, end - dot - 1))) responder = *id;
            }
        }
        TokenKey key = responderKey(master(), responder);
        auto t = encryptCompactDir(header, std::string_view(reinterpret_cast<const char*>(key.data()), key.size()),
                                   std::string(12, '\0'), claims);
        if (!t) return 0;
        token = *t;
    }
    auto c = verifyToken(token, keys, kOrg, kNow, 60);
    if (c) {
        if (c->organizationId != kOrg || c->expiresAt - c->issuedAt > kMaxTokenLifetimeSeconds ||
            c->expiresAt <= c->issuedAt || utcDay(c->issuedAt) != utcDay(kNow) || c->notBefore > kNow + 60 ||
            c->expiresAt <= kNow - 60 || c->responderId.empty()) {
            std::abort();
        }
    }
    return 0;
}
