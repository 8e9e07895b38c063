// Responder tokens: issue, verify, and every way a token must fail (protocol.md, "Token format").
#include "common/token.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

#include "common/jose.h"

namespace relaypro {
namespace {

constexpr int64_t kOrg = 7;
constexpr int64_t kNow = 1'764'000'000;  // 2025-11-24T16:00:00Z
constexpr int64_t kSkew = 60;

TokenKey masterFor(int64_t day) {
    TokenKey m{};
    std::string info = "test master " + std::to_string(day);
    EXPECT_TRUE(hkdfSha256("ikm", "salt", info, m));
    return m;
}

// Holds the masters of `today` and the day before, as a worker does.
TokenKeyLookup lookupAround(int64_t today) {
    return [today](int64_t day, std::string_view responderId) -> std::optional<TokenKey> {
        if (day != today && day != today - 1) return std::nullopt;
        return responderKey(masterFor(day), responderId);
    };
}

std::string keyText(const TokenKey& k) {
    return std::string(reinterpret_cast<const char*>(k.data()), k.size());
}

// A token made by hand with the right key, so a test can break exactly one rule.
std::string forge(const std::string& header, const std::string& claims, const std::string& responderId, int64_t day) {
    auto t =
        encryptCompactDir(header, keyText(responderKey(masterFor(day), responderId)), std::string(12, '\x01'), claims);
    EXPECT_TRUE(t);
    return t ? *t : std::string();
}

std::string headerFor(const std::string& responderId, int64_t day) {
    return R"({"alg":"dir","enc":"A256GCM","kid":"rp1.)" + std::to_string(day) + "." + base64UrlEncode(responderId) +
           R"(","typ":"JWT"})";
}

std::string claimsJson(const std::string& sub, int64_t org, int64_t iat, int64_t nbf, int64_t exp,
                       const std::string& extra = "") {
    return R"({"iss":"relaypro","sub":")" + sub + R"(","org":)" + std::to_string(org) + R"(,"iat":)" +
           std::to_string(iat) + R"(,"nbf":)" + std::to_string(nbf) + R"(,"exp":)" + std::to_string(exp) +
           R"(,"jti":"abc")" + extra + "}";
}

Result<TokenClaims> verifyNow(const std::string& token, int64_t now = kNow) {
    return verifyToken(token, lookupAround(utcDay(now)), kOrg, now, kSkew);
}

TEST(Token, UtcDay) {
    EXPECT_EQ(utcDay(0), 0);
    EXPECT_EQ(utcDay(86399), 0);
    EXPECT_EQ(utcDay(86400), 1);
    EXPECT_EQ(utcDay(kNow), 20416);
    EXPECT_EQ(utcDay(-1), -1);
}

TEST(Token, IssuedTokenVerifiesWithItsClaims) {
    auto t = issueToken(masterFor(utcDay(kNow)), "responder-A", kOrg, kNow, 3600);
    ASSERT_TRUE(t) << t.error().message;
    auto c = verifyNow(*t);
    ASSERT_TRUE(c) << c.error().message;
    EXPECT_EQ(c->responderId, "responder-A");
    EXPECT_EQ(c->organizationId, kOrg);
    EXPECT_EQ(c->issuedAt, kNow);
    EXPECT_EQ(c->notBefore, kNow);
    EXPECT_EQ(c->expiresAt, kNow + 3600);
    EXPECT_FALSE(c->id.empty());

    // The header is exactly the four members, the kid names the day and the Responder.
    auto jwe = parseCompactJwe(*t, kMaxTokenBytes);
    ASSERT_TRUE(jwe);
    EXPECT_EQ(jwe->header, headerFor("responder-A", utcDay(kNow)));
    EXPECT_TRUE(jwe->encryptedKey.empty());
    EXPECT_EQ(jwe->iv.size(), 12U);
    EXPECT_EQ(jwe->tag.size(), 16U);
}

TEST(Token, TwoTokensDifferInIvAndJti) {
    auto a = issueToken(masterFor(utcDay(kNow)), "r", kOrg, kNow, 3600);
    auto b = issueToken(masterFor(utcDay(kNow)), "r", kOrg, kNow, 3600);
    ASSERT_TRUE(a && b);
    EXPECT_NE(*a, *b);
    EXPECT_NE(verifyNow(*a)->id, verifyNow(*b)->id);
}

TEST(Token, ResponderIdsWithAnyPrintableUtf8) {
    for (const std::string& id : std::vector<std::string>{
             std::string("a"), std::string(256, 'x'), std::string("r\xc3\xa9pondeur \xe2\x80\x93 1"),
             std::string("with.dots.and/slash"), std::string("\"quoted\\\"")}) {
        auto t = issueToken(masterFor(utcDay(kNow)), id, kOrg, kNow, 60);
        ASSERT_TRUE(t) << id;
        auto c = verifyNow(*t);
        ASSERT_TRUE(c) << c.error().message;
        EXPECT_EQ(c->responderId, id);
    }
    for (const std::string& id :
         std::vector<std::string>{std::string(), std::string(257, 'x'), std::string("a\nb"), std::string("\xff"),
                                  std::string("a\x7f"), std::string("a\0b", 3)}) {
        EXPECT_FALSE(issueToken(masterFor(utcDay(kNow)), id, kOrg, kNow, 60));
    }
}

TEST(Token, LifetimeBounds) {
    EXPECT_FALSE(issueToken(masterFor(utcDay(kNow)), "r", kOrg, kNow, 0));
    EXPECT_FALSE(issueToken(masterFor(utcDay(kNow)), "r", kOrg, kNow, 24 * 3600 + 1));
    EXPECT_TRUE(issueToken(masterFor(utcDay(kNow)), "r", kOrg, kNow, 24 * 3600));
}

TEST(Token, ExpiryAndNotBeforeHonourTheClockSkew) {
    auto t = issueToken(masterFor(utcDay(kNow)), "r", kOrg, kNow, 3600);
    ASSERT_TRUE(t);
    EXPECT_TRUE(verifyNow(*t, kNow + 3600 + kSkew - 1));
    EXPECT_FALSE(verifyNow(*t, kNow + 3600 + kSkew));
    EXPECT_TRUE(verifyNow(*t, kNow - kSkew));
    EXPECT_FALSE(verifyNow(*t, kNow - kSkew - 1));
}

TEST(Token, YesterdaysTokenIsAcceptedTheDayBeforeYesterdaysIsNot) {
    const int64_t day = utcDay(kNow);
    auto t = issueToken(masterFor(day), "r", kOrg, kNow, 24 * 3600);
    ASSERT_TRUE(t);
    // Still valid the next day: the worker holds yesterday's master.
    EXPECT_TRUE(verifyToken(*t, lookupAround(day + 1), kOrg, kNow + 3600 * 20, kSkew));
    // Two days later the master is gone, whatever the claims say.
    EXPECT_FALSE(verifyToken(*t, lookupAround(day + 2), kOrg, kNow + 3600 * 20, kSkew));
}

TEST(Token, EveryOneCharacterEditIsRejected) {
    auto t = issueToken(masterFor(utcDay(kNow)), "responder-A", kOrg, kNow, 3600);
    ASSERT_TRUE(t);
    const std::string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
    int rejected = 0;
    for (size_t i = 0; i < t->size(); ++i) {
        for (char replacement : {'A', 'g', '_', '.'}) {
            if ((*t)[i] == replacement) continue;
            std::string bad = *t;
            bad[i] = replacement;
            ASSERT_FALSE(verifyNow(bad)) << "position " << i << " -> " << replacement;
            ++rejected;
        }
    }
    EXPECT_GT(rejected, 3 * static_cast<int>(t->size()));
    EXPECT_FALSE(verifyNow(*t + "A"));
    EXPECT_FALSE(verifyNow(t->substr(0, t->size() - 1)));
    EXPECT_FALSE(verifyNow(""));
    EXPECT_FALSE(verifyNow(std::string(kMaxTokenBytes + 1, 'A')));
}

TEST(Token, AnotherRespondersKidIsRejected) {
    const int64_t day = utcDay(kNow);
    auto a = issueToken(masterFor(day), "responder-A", kOrg, kNow, 3600);
    ASSERT_TRUE(a);
    // A's token with B's kid spliced into the header.
    std::string spliced = base64UrlEncode(headerFor("responder-B", day)) + a->substr(a->find('.'));
    auto r = verifyNow(spliced);
    EXPECT_FALSE(r);
    // Claims for A, encrypted under B's key with B's kid: decrypts, but sub is not the kid's Responder.
    std::string forged = forge(headerFor("responder-B", day), claimsJson("responder-A", kOrg, kNow, kNow, kNow + 60),
                               "responder-B", day);
    r = verifyNow(forged);
    ASSERT_FALSE(r);
    EXPECT_NE(r.error().message.find("sub"), std::string::npos) << r.error().message;
}

TEST(Token, ATokenFromAnotherMasterIsRejected) {
    TokenKey other = masterFor(99);
    auto t = issueToken(other, "r", kOrg, kNow, 3600);
    ASSERT_TRUE(t);
    EXPECT_FALSE(verifyNow(*t));
}

TEST(Token, EachRuleOfTheFormat) {
    const int64_t day = utcDay(kNow);
    const std::string id = "r1";
    const std::string good = claimsJson(id, kOrg, kNow, kNow, kNow + 60);
    ASSERT_TRUE(verifyNow(forge(headerFor(id, day), good, id, day)));

    struct Case {
        const char* name;
        std::string header;
        std::string claims;
    };
    const std::string kid = R"("kid":"rp1.)" + std::to_string(day) + "." + base64UrlEncode(id) + R"(")";
    std::vector<Case> cases = {
        {"extra header member", R"({"alg":"dir","enc":"A256GCM",)" + kid + R"(,"typ":"JWT","zip":"DEF"})", good},
        {"crit", R"({"alg":"dir","enc":"A256GCM",)" + kid + R"(,"typ":"JWT","crit":[]})", good},
        {"no typ", R"({"alg":"dir","enc":"A256GCM",)" + kid + "}", good},
        {"typ jwt", R"({"alg":"dir","enc":"A256GCM",)" + kid + R"(,"typ":"jwt"})", good},
        {"enc A128GCM", R"({"alg":"dir","enc":"A128GCM",)" + kid + R"(,"typ":"JWT"})", good},
        {"alg A256KW", R"({"alg":"A256KW","enc":"A256GCM",)" + kid + R"(,"typ":"JWT"})", good},
        {"duplicate member", R"({"alg":"dir","alg":"dir","enc":"A256GCM",)" + kid + R"(,"typ":"JWT"})", good},
        {"kid prefix",
         R"({"alg":"dir","enc":"A256GCM","kid":"rp2.)" + std::to_string(day) + "." + base64UrlEncode(id) +
             R"(","typ":"JWT"})",
         good},
        {"kid day with a leading zero",
         R"({"alg":"dir","enc":"A256GCM","kid":"rp1.0)" + std::to_string(day) + "." + base64UrlEncode(id) +
             R"(","typ":"JWT"})",
         good},
        {"kid without Responder",
         R"({"alg":"dir","enc":"A256GCM","kid":"rp1.)" + std::to_string(day) + R"(","typ":"JWT"})", good},
        {"header not an object", R"(["dir"])", good},
        {"wrong iss", headerFor(id, day),
         R"({"iss":"other","sub":"r1","org":7,"iat":)" + std::to_string(kNow) + R"(,"nbf":)" + std::to_string(kNow) +
             R"(,"exp":)" + std::to_string(kNow + 60) + R"(,"jti":"x"})"},
        {"wrong org", headerFor(id, day), claimsJson(id, kOrg + 1, kNow, kNow, kNow + 60)},
        {"org as a string", headerFor(id, day),
         R"({"iss":"relaypro","sub":"r1","org":"7","iat":)" + std::to_string(kNow) + R"(,"nbf":)" +
             std::to_string(kNow) + R"(,"exp":)" + std::to_string(kNow + 60) + R"(,"jti":"x"})"},
        {"exp as a float", headerFor(id, day),
         R"({"iss":"relaypro","sub":"r1","org":7,"iat":)" + std::to_string(kNow) + R"(,"nbf":)" + std::to_string(kNow) +
             R"(,"exp":)" + std::to_string(kNow + 60) + R"(.5,"jti":"x"})"},
        {"extra claim", headerFor(id, day), claimsJson(id, kOrg, kNow, kNow, kNow + 60, R"(,"admin":true)")},
        {"missing jti", headerFor(id, day),
         R"({"iss":"relaypro","sub":"r1","org":7,"iat":)" + std::to_string(kNow) + R"(,"nbf":)" + std::to_string(kNow) +
             R"(,"exp":)" + std::to_string(kNow + 60) + "}"},
        {"duplicate claim", headerFor(id, day), claimsJson(id, kOrg, kNow, kNow, kNow + 60, R"(,"org":7)")},
        {"lifetime over 24 h", headerFor(id, day), claimsJson(id, kOrg, kNow, kNow, kNow + 24 * 3600 + 1)},
        {"exp before iat", headerFor(id, day), claimsJson(id, kOrg, kNow, kNow, kNow - 1)},
        {"expired", headerFor(id, day), claimsJson(id, kOrg, kNow - 7200, kNow - 7200, kNow - 3600)},
        {"not yet valid", headerFor(id, day), claimsJson(id, kOrg, kNow, kNow + 3600, kNow + 7200)},
        {"iat on another day than the kid", headerFor(id, day),
         claimsJson(id, kOrg, kNow - 57600 - 10, kNow - 57600 - 10, kNow + 60)},
        {"claims not JSON", headerFor(id, day), "not json"},
    };
    for (const auto& c : cases) {
        auto r = verifyNow(forge(c.header, c.claims, id, day));
        EXPECT_FALSE(r) << c.name << " was accepted";
    }
}

// The fast path reads issueToken's own spelling; every other spelling of the same JSON goes to
// jansson and gives the same answer; what jansson rejects stays rejected.
TEST(TokenParts, TheFastPathReadsIssuedSpellingAndJanssonReadsTheRest) {
    using namespace token_parts;
    const std::string header = headerFor("r1", 20417);
    ASSERT_TRUE(canonicalHeaderKid(header));
    EXPECT_EQ(*canonicalHeaderKid(header), "rp1.20417.cjE");
    for (const std::string& other :
         {std::string(R"({"typ":"JWT","alg":"dir","enc":"A256GCM","kid":"rp1.20417.cjE"})"),
          std::string(R"( {"alg":"dir","enc":"A256GCM","kid":"rp1.20417.cjE","typ":"JWT"})"),
          std::string(R"({"alg":"dir","enc":"A256GCM","kid":"rp1.20417.\u0063jE","typ":"JWT"})")}) {
        EXPECT_FALSE(canonicalHeaderKid(other)) << other;
        auto kid = headerKid(other);
        ASSERT_TRUE(kid) << other << ": " << kid.error().message;
        EXPECT_EQ(*kid, "rp1.20417.cjE");
    }
    EXPECT_FALSE(headerKid(R"({"alg":"dir","enc":"A256GCM","kid":"rp1.20417.cjE","typ":"JWT","zip":"DEF"})"));
    EXPECT_FALSE(headerKid(R"({"alg":"dir","enc":"A256GCM","kid":"rp1.20417.cjE","typ":"JWT"} x)"));
    EXPECT_FALSE(headerKid(R"({"alg":"dir","enc":"A256GCM","kid":"a","kid":"b","typ":"JWT"})"));

    const std::string claims = claimsJson("r1", 7, kNow, kNow, kNow + 60);
    auto fast = canonicalClaims(claims);
    ASSERT_TRUE(fast);
    EXPECT_EQ(fast->sub, "r1");
    EXPECT_EQ(fast->org, 7);
    EXPECT_EQ(fast->exp, kNow + 60);
    EXPECT_EQ(fast->jti, "abc");
    // An escaped sub, an integer of 19 digits, a float, a duplicate claim: jansson decides.
    const std::string escaped = claimsJson(R"(a\"b)", 7, kNow, kNow, kNow + 60);
    EXPECT_FALSE(canonicalClaims(escaped));
    ASSERT_TRUE(claimsOf(escaped));
    EXPECT_EQ(claimsOf(escaped)->sub, "a\"b");
    const std::string big = claimsJson("r1", 1234567890123456789, kNow, kNow, kNow + 60);
    EXPECT_FALSE(canonicalClaims(big));
    ASSERT_TRUE(claimsOf(big));
    EXPECT_EQ(claimsOf(big)->org, 1234567890123456789);
    EXPECT_FALSE(claimsOf(R"({"iss":"relaypro","sub":"r1","org":7.0,"iat":1,"nbf":1,"exp":2,"jti":"abc"})"));
    EXPECT_FALSE(claimsOf(R"({"iss":"relaypro","sub":"r1","org":07,"iat":1,"nbf":1,"exp":2,"jti":"abc"})"));
    EXPECT_FALSE(claimsOf(claimsJson("r1", 7, kNow, kNow, kNow + 60, R"(,"jti":"x")")));
    EXPECT_FALSE(claimsOf(claimsJson("r\x01", 7, kNow, kNow, kNow + 60)));      // a raw control character
    EXPECT_FALSE(claimsOf(claimsJson("r\xc3\x28", 7, kNow, kNow, kNow + 60)));  // not UTF-8
}

// A lifetime computed from extreme integers must not overflow (UBSan would see it).
TEST(Token, ExtremeTimesAreOutOfRange) {
    const std::string id = "r1";
    const int64_t day = utcDay(kNow);
    EXPECT_FALSE(verifyNow(forge(headerFor(id, day), claimsJson(id, kOrg, kNow, kNow, INT64_MAX), id, day)));
    EXPECT_FALSE(verifyNow(forge(headerFor(id, day), claimsJson(id, kOrg, INT64_MIN, kNow, kNow + 60), id, day)));
}

}  // namespace
}  // namespace relaypro
