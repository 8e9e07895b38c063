#include "common/password_file.h"

#include <gtest/gtest.h>
#include <sodium.h>

namespace relaypro {
namespace {

std::string hashOf(const char* password, unsigned long long ops, size_t mem) {
    char out[crypto_pwhash_STRBYTES];
    EXPECT_EQ(crypto_pwhash_str(out, password, std::strlen(password), ops, mem), 0);
    return out;
}

TEST(PasswordFile, ParsesPlainAndHashedEntriesSkippingCommentsAndBlanks) {
    std::string hash = hashOf("s3cret", 2, 8 << 20);
    auto f = PasswordFile::parse("# testing only\n\nalice:pa:ss:word\r\nbob:" + hash + "\n", "pw");
    ASSERT_TRUE(f.ok()) << f.error().message;
    ASSERT_EQ(f->entries().size(), 2u);
    EXPECT_EQ(f->find("alice")->secret, "pa:ss:word");  // the first colon splits
    EXPECT_FALSE(f->find("alice")->hashed);
    EXPECT_TRUE(f->find("bob")->hashed);
    EXPECT_EQ(f->find("carol"), nullptr);
    EXPECT_TRUE(hashedPasswordMatches(f->find("bob")->secret, "s3cret"));
    EXPECT_FALSE(hashedPasswordMatches(f->find("bob")->secret, "s3cre"));
}

TEST(PasswordFile, RejectsMalformedLinesWithoutEchoingSecrets) {
    struct Case {
        std::string text;
        std::string message;
    } cases[] = {
        {"alice\n", "pw:1: expected user:password"},
        {"# c\n:secret-pw\n", "pw:2: empty user name"},
        {"alice:\n", "pw:1: empty password for user \"alice\""},
        {"alice:a\nalice:b\n", "pw:2: user \"alice\" appears twice"},
        {"alice:pa\x01ss\n", "pw:1: control character in line"},
        {"alice:\xff\xfe\n", "pw:1: the file is not UTF-8"},
        {"alice:$argon2id$v=19$m=65536,t=3$salt$hash\n", "pw:1: the hash of user \"alice\" is not a valid"},
        {"alice:$argon2i$v=19$m=4096,t=3,p=1$c2FsdA$aGFzaA\n", "pw:1: the hash of user \"alice\" is not a valid"},
        {"alice:$argon2id$v=19$m=131072,t=3,p=1$c2FsdA$aGFzaA\n",
         "pw:1: the hash of user \"alice\" costs m=131072 KiB, t=3; at most m=65536 (64 MiB) and t=3 are allowed"},
        {"alice:$argon2id$v=19$m=65536,t=4,p=1$c2FsdA$aGFzaA\n",
         "pw:1: the hash of user \"alice\" costs m=65536 KiB, t=4"},
    };
    for (const auto& c : cases) {
        auto f = PasswordFile::parse(c.text, "pw");
        ASSERT_FALSE(f.ok()) << c.text;
        EXPECT_EQ(f.error().message.rfind(c.message, 0), 0u) << f.error().message;
        EXPECT_EQ(f.error().message.find("secret-pw"), std::string::npos);
    }
    // The cap itself is allowed.
    EXPECT_TRUE(PasswordFile::parse("a:$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$aGFzaA\n", "pw").ok());
}

TEST(PasswordFile, PlainComparisonAndBasicDecoding) {
    EXPECT_TRUE(plainPasswordMatches("pw", "pw"));
    EXPECT_FALSE(plainPasswordMatches("pw", "pW"));
    EXPECT_FALSE(plainPasswordMatches("pw", "pw "));
    EXPECT_FALSE(plainPasswordMatches("pw", ""));
    std::string user, password;
    ASSERT_TRUE(decodeBasicCredential("dTpw", user, password));  // u:p
    EXPECT_EQ(user, "u");
    EXPECT_EQ(password, "p");
    ASSERT_TRUE(decodeBasicCredential("dTo=", user, password));  // "u:" (empty password)
    EXPECT_EQ(password, "");
    EXPECT_FALSE(decodeBasicCredential("dXNlcg==", user, password));  // "user": no colon
    EXPECT_FALSE(decodeBasicCredential("OnA=", user, password));      // ":p": empty user
    EXPECT_FALSE(decodeBasicCredential("not base64!", user, password));
    EXPECT_FALSE(decodeBasicCredential("", user, password));
    EXPECT_FALSE(decodeBasicCredential("/w==", user, password));                  // 0xff: not UTF-8
    EXPECT_FALSE(decodeBasicCredential("dTpw\xbe\xbe\xbe\xbe", user, password));  // bytes outside the alphabet
}

}  // namespace
}  // namespace relaypro
