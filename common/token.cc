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

namespace token_parts {
namespace {

bool isBase64UrlDigit(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

// Consumes `literal` from the front of `in`.
bool take(std::string_view& in, std::string_view literal) {
    if (!in.starts_with(literal)) return false;
    in.remove_prefix(literal.size());
    return true;
}

// An integer as JSON writes it (-?(0|[1-9][0-9]*)), at most 18 digits so that it cannot overflow.
bool takeInteger(std::string_view& in, int64_t& value) {
    bool negative = take(in, "-");
    size_t n = 0;
    while (n < in.size() && in[n] >= '0' && in[n] <= '9') ++n;
    if (n == 0 || n > 18 || (n > 1 && in[0] == '0')) return false;
    int64_t v = 0;
    for (size_t i = 0; i < n; ++i) v = v * 10 + (in[i] - '0');
    value = negative ? -v : v;
    in.remove_prefix(n);
    return true;
}

// A string's contents up to its closing quote, when it needs no unescaping: no backslash, no
// control character, valid UTF-8 (what jansson would return for the same bytes).
bool takePlainString(std::string_view& in, std::string& out) {
    size_t end = in.find('"');
    if (end == std::string_view::npos) return false;
    std::string_view text = in.substr(0, end);
    for (char ch : text) {
        if (ch == '\\' || static_cast<unsigned char>(ch) < 0x20) return false;
    }
    if (!isValidUtf8(text)) return false;
    out.assign(text);
    in.remove_prefix(end + 1);
    return true;
}

}  // namespace

std::optional<std::string> canonicalHeaderKid(std::string_view in) {
    if (!take(in, R"({"alg":"dir","enc":"A256GCM","kid":")")) return std::nullopt;
    size_t n = 0;
    while (n < in.size() && (isBase64UrlDigit(in[n]) || in[n] == '.')) ++n;
    std::string kid(in.substr(0, n));
    in.remove_prefix(n);
    if (!take(in, R"(","typ":"JWT"})") || !in.empty()) return std::nullopt;
    return kid;
}

Result<std::string> jsonHeaderKid(std::string_view text) {
    json_error_t err;
    Json header(json_loadb(text.data(), text.size(), JSON_REJECT_DUPLICATES, &err));
    if (!header || !json_is_object(header.get())) return Error{"the protected header is not a JSON object"};
    if (json_object_size(header.get()) != 4) return Error{"the protected header must have exactly alg, enc, kid, typ"};
    auto alg = stringMember(header.get(), "alg");
    auto enc = stringMember(header.get(), "enc");
    auto kid = stringMember(header.get(), "kid");
    auto typ = stringMember(header.get(), "typ");
    if (!alg || *alg != "dir") return Error{"alg is not dir"};
    if (!enc || *enc != "A256GCM") return Error{"enc is not A256GCM"};
    if (!typ || *typ != "JWT") return Error{"typ is not JWT"};
    if (!kid) return Error{"kid is not a string"};
    return std::move(*kid);
}

Result<std::string> headerKid(std::string_view text) {
    if (auto kid = canonicalHeaderKid(text)) return std::move(*kid);
    return jsonHeaderKid(text);
}

std::optional<Claims> canonicalClaims(std::string_view in) {
    Claims c;
    if (!take(in, R"({"iss":")") || !takePlainString(in, c.iss) || !take(in, R"(,"sub":")") ||
        !takePlainString(in, c.sub) || !take(in, R"(,"org":)") || !takeInteger(in, c.org) || !take(in, R"(,"iat":)") ||
        !takeInteger(in, c.iat) || !take(in, R"(,"nbf":)") || !takeInteger(in, c.nbf) || !take(in, R"(,"exp":)") ||
        !takeInteger(in, c.exp) || !take(in, R"(,"jti":")") || !takePlainString(in, c.jti) || !take(in, "}") ||
        !in.empty()) {
        return std::nullopt;
    }
    return c;
}

Result<Claims> jsonClaims(std::string_view text) {
    json_error_t err;
    Json claims(json_loadb(text.data(), text.size(), JSON_REJECT_DUPLICATES, &err));
    if (!claims || !json_is_object(claims.get()) || json_object_size(claims.get()) != 7) {
        return Error{"the claims must be exactly iss, sub, org, iat, nbf, exp, jti"};
    }
    auto iss = stringMember(claims.get(), "iss");
    auto sub = stringMember(claims.get(), "sub");
    auto org = integerMember(claims.get(), "org");
    auto iat = integerMember(claims.get(), "iat");
    auto nbf = integerMember(claims.get(), "nbf");
    auto exp = integerMember(claims.get(), "exp");
    auto jti = stringMember(claims.get(), "jti");
    if (!iss || !sub || !org || !iat || !nbf || !exp || !jti) return Error{"a claim is missing or of the wrong type"};
    return Claims{std::move(*iss), std::move(*sub), *org, *iat, *nbf, *exp, std::move(*jti)};
}

Result<Claims> claimsOf(std::string_view text) {
    if (auto c = canonicalClaims(text)) return std::move(*c);
    return jsonClaims(text);
}

}  // namespace token_parts

Result<TokenClaims> verifyToken(std::string_view compact, const TokenKeyLookup& keys, int64_t organizationId,
                                int64_t now, int64_t skewSeconds) {
    auto jwe = parseCompactJwe(compact, kMaxTokenBytes);
    if (!jwe) return jwe.error();
    if (!jwe->encryptedKey.empty()) return Error{"dir tokens carry no encrypted key"};
    if (jwe->iv.size() != 12 || jwe->tag.size() != 16) return Error{"bad IV or tag length"};

    auto kid = token_parts::headerKid(jwe->header);
    if (!kid) return kid.error();
    if (!kid->starts_with(kKidPrefix)) return Error{"kid is not an rp1 key id"};
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

    auto claims = token_parts::claimsOf(*plaintext);
    if (!claims) return claims.error();
    if (claims->iss != "relaypro") return Error{"iss is not relaypro"};
    if (claims->sub != *kidResponder) return Error{"sub differs from the kid's Responder"};
    if (claims->org != organizationId) return Error{"org is another organization's"};
    int64_t lifetime = 0;
    if (claims->exp <= claims->iat || __builtin_sub_overflow(claims->exp, claims->iat, &lifetime) ||
        lifetime > kMaxTokenLifetimeSeconds) {
        return Error{"lifetime out of range"};
    }
    if (utcDay(claims->iat) != *day) return Error{"iat does not fall on the kid's day"};
    if (now + skewSeconds < claims->nbf) return Error{"not yet valid"};
    if (now - skewSeconds >= claims->exp) return Error{"expired"};
    TokenClaims c;
    c.responderId = std::move(claims->sub);
    c.organizationId = claims->org;
    c.issuedAt = claims->iat;
    c.notBefore = claims->nbf;
    c.expiresAt = claims->exp;
    c.id = std::move(claims->jti);
    return c;
}

}  // namespace relaypro
