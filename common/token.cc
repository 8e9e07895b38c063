#include "common/token.h"

#include <jansson.h>
#include <sodium.h>

#include <memory>

#include "common/jose.h"
#include "common/text.h"

namespace relaypro {
namespace {

struct JsonFree {
    void operator()(json_t* j) const { json_decref(j); }
};
using Json = std::unique_ptr<json_t, JsonFree>;

constexpr std::string_view kKidPrefix = "rp1.";

// "123" -> 123; no sign, no leading zeros, at most 12 digits.
std::optional<int64_t> parseDay(std::string_view s) {
    if (s.empty() || s.size() > 12 || (s.size() > 1 && s.front() == '0')) return std::nullopt;
    int64_t v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return std::nullopt;
        v = v * 10 + (c - '0');
    }
    return v;
}

std::optional<int64_t> integerMember(json_t* obj, const char* name) {
    json_t* v = json_object_get(obj, name);
    if (!json_is_integer(v)) return std::nullopt;
    return static_cast<int64_t>(json_integer_value(v));
}

std::optional<std::string> stringMember(json_t* obj, const char* name) {
    json_t* v = json_object_get(obj, name);
    if (!json_is_string(v)) return std::nullopt;
    return std::string(json_string_value(v), json_string_length(v));
}

std::string dumpCompact(json_t* j) {
    char* text = json_dumps(j, JSON_COMPACT);
    std::string out = text != nullptr ? text : "";
    std::free(text);
    return out;
}

}  // namespace

bool isPrintableResponderId(std::string_view id) {
    if (id.empty() || id.size() > 256 || !isValidUtf8(id)) return false;
    for (char ch : id) {
        auto c = static_cast<unsigned char>(ch);
        if (c < 0x20 || c == 0x7F) return false;
    }
    return true;
}

int64_t utcDay(int64_t unixSeconds) {
    return unixSeconds >= 0 ? unixSeconds / 86400 : (unixSeconds - 86399) / 86400;
}

TokenKey responderKey(const TokenKey& master, std::string_view responderId) {
    TokenKey key{};
    auto s = hkdfSha256(std::string_view(reinterpret_cast<const char*>(master.data()), master.size()),
                        "RelayPro responder key v1", responderId, key);
    (void)s;  // HKDF-SHA256 with a 32-byte output cannot fail once OpenSSL is up
    return key;
}

Result<std::string> issueToken(const TokenKey& master, std::string_view responderId, int64_t organizationId,
                               int64_t now, int64_t lifetimeSeconds) {
    if (!isPrintableResponderId(responderId)) return Error{"responderId must be 1 to 256 bytes of printable UTF-8"};
    if (lifetimeSeconds <= 0 || lifetimeSeconds > kMaxTokenLifetimeSeconds) return Error{"token lifetime out of range"};
    const int64_t day = utcDay(now);
    std::string kid = std::string(kKidPrefix) + std::to_string(day) + "." + base64UrlEncode(responderId);
    Json header(json_pack("{s:s,s:s,s:s,s:s}", "alg", "dir", "enc", "A256GCM", "kid", kid.c_str(), "typ", "JWT"));
    unsigned char jti[16];
    randombytes_buf(jti, sizeof jti);
    std::string jtiText = base64UrlEncode(std::string_view(reinterpret_cast<const char*>(jti), sizeof jti));
    Json claims(json_object());
    json_object_set_new(claims.get(), "iss", json_string("relaypro"));
    json_object_set_new(claims.get(), "sub", json_stringn(responderId.data(), responderId.size()));
    json_object_set_new(claims.get(), "org", json_integer(organizationId));
    json_object_set_new(claims.get(), "iat", json_integer(now));
    json_object_set_new(claims.get(), "nbf", json_integer(now));
    json_object_set_new(claims.get(), "exp", json_integer(now + lifetimeSeconds));
    json_object_set_new(claims.get(), "jti", json_string(jtiText.c_str()));
    TokenKey key = responderKey(master, responderId);
    unsigned char iv[12];
    randombytes_buf(iv, sizeof iv);
    auto token = encryptCompactDir(
        dumpCompact(header.get()), std::string_view(reinterpret_cast<const char*>(key.data()), key.size()),
        std::string_view(reinterpret_cast<const char*>(iv), sizeof iv), dumpCompact(claims.get()));
    sodium_memzero(key.data(), key.size());
    return token;
}

Result<TokenClaims> verifyToken(std::string_view compact, const TokenKeyLookup& keys, int64_t organizationId,
                                int64_t now, int64_t skewSeconds) {
    auto jwe = parseCompactJwe(compact, kMaxTokenBytes);
    if (!jwe) return jwe.error();
    if (!jwe->encryptedKey.empty()) return Error{"dir tokens carry no encrypted key"};
    if (jwe->iv.size() != 12 || jwe->tag.size() != 16) return Error{"bad IV or tag length"};

    json_error_t err;
    Json header(json_loadb(jwe->header.data(), jwe->header.size(), JSON_REJECT_DUPLICATES, &err));
    if (!header || !json_is_object(header.get())) return Error{"the protected header is not a JSON object"};
    if (json_object_size(header.get()) != 4) return Error{"the protected header must have exactly alg, enc, kid, typ"};
    auto alg = stringMember(header.get(), "alg");
    auto enc = stringMember(header.get(), "enc");
    auto kid = stringMember(header.get(), "kid");
    auto typ = stringMember(header.get(), "typ");
    if (!alg || *alg != "dir") return Error{"alg is not dir"};
    if (!enc || *enc != "A256GCM") return Error{"enc is not A256GCM"};
    if (!typ || *typ != "JWT") return Error{"typ is not JWT"};
    if (!kid || !kid->starts_with(kKidPrefix)) return Error{"kid is not an rp1 key id"};
    std::string_view rest = std::string_view(*kid).substr(kKidPrefix.size());
    size_t dot = rest.find('.');
    if (dot == std::string_view::npos) return Error{"malformed kid"};
    auto day = parseDay(rest.substr(0, dot));
    auto kidResponder = base64UrlDecode(rest.substr(dot + 1));
    if (!day || !kidResponder || !isPrintableResponderId(*kidResponder)) return Error{"malformed kid"};
    auto key = keys(*day, *kidResponder);
    if (!key) return Error{"no key for the token's day (too old, or from the future)"};
    auto plaintext = aesGcmDecrypt(std::string_view(reinterpret_cast<const char*>(key->data()), key->size()), jwe->iv,
                                   jwe->protectedB64, jwe->ciphertext, jwe->tag);
    sodium_memzero(key->data(), key->size());
    if (!plaintext) return Error{"the token does not decrypt (tampered, or another key)"};

    Json claims(json_loadb(plaintext->data(), plaintext->size(), JSON_REJECT_DUPLICATES, &err));
    if (!claims || !json_is_object(claims.get()) || json_object_size(claims.get()) != 7) {
        return Error{"the claims must be exactly iss, sub, org, iat, nbf, exp, jti"};
    }
    TokenClaims c;
    auto iss = stringMember(claims.get(), "iss");
    auto sub = stringMember(claims.get(), "sub");
    auto org = integerMember(claims.get(), "org");
    auto iat = integerMember(claims.get(), "iat");
    auto nbf = integerMember(claims.get(), "nbf");
    auto exp = integerMember(claims.get(), "exp");
    auto jti = stringMember(claims.get(), "jti");
    if (!iss || !sub || !org || !iat || !nbf || !exp || !jti) return Error{"a claim is missing or of the wrong type"};
    if (*iss != "relaypro") return Error{"iss is not relaypro"};
    if (*sub != *kidResponder) return Error{"sub differs from the kid's Responder"};
    if (*org != organizationId) return Error{"org is another organization's"};
    if (*exp - *iat > kMaxTokenLifetimeSeconds || *exp <= *iat) return Error{"lifetime out of range"};
    if (utcDay(*iat) != *day) return Error{"iat does not fall on the kid's day"};
    if (now + skewSeconds < *nbf) return Error{"not yet valid"};
    if (now - skewSeconds >= *exp) return Error{"expired"};
    c.responderId = std::move(*sub);
    c.organizationId = *org;
    c.issuedAt = *iat;
    c.notBefore = *nbf;
    c.expiresAt = *exp;
    c.id = std::move(*jti);
    return c;
}

}  // namespace relaypro
