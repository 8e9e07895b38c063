// The console's answers (console-api.md) as RelayPro reads them: the envelope strictly, then
// each endpoint's result; anything else is refused with a reason that never shows the token.
#include "supervisor/console_answers.h"

#include <gtest/gtest.h>

#include <memory>

#include "test/support/json.h"

namespace relaypro {
namespace {

using testing::Json;

Json env(const std::string& body) {
    return Json(parseEnvelope(body));
}

std::string ok(const std::string& result) {
    return R"({"success":true,"statusCode":200,"result":)" + result + R"(,"errors":[]})";
}

TEST(ConsoleAnswers, TheEnvelopeIsCheckedStrictly) {
    EXPECT_TRUE(env(R"({"success":true,"statusCode":200,"result":{"relayId":3},"errors":[]})"));
    EXPECT_TRUE(env(R"({"success":false,"statusCode":401,"result":null,"errors":["no"]})"));
    EXPECT_FALSE(env(R"({"success":"true","statusCode":200,"result":{},"errors":[]})"));
    EXPECT_FALSE(env(R"({"success":true,"statusCode":"200","result":{},"errors":[]})"));
    EXPECT_FALSE(env(R"({"success":true,"statusCode":2.5,"result":{},"errors":[]})"));
    EXPECT_FALSE(env(R"({"success":true,"statusCode":200,"result":[],"errors":[]})"));
    EXPECT_FALSE(env(R"({"success":true,"statusCode":200,"errors":[]})"));
    EXPECT_FALSE(env(R"({"success":true,"statusCode":200,"result":{},"errors":[1]})"));
    EXPECT_FALSE(env(R"({"success":true,"statusCode":200,"result":{}})"));
    EXPECT_FALSE(env(R"({"success":true,"success":true,"statusCode":200,"result":{},"errors":[]})"))
        << "duplicate keys are refused";
    EXPECT_FALSE(env(R"([])"));
    EXPECT_FALSE(env("<html>502 Bad Gateway</html>"));
    EXPECT_FALSE(env(""));
    EXPECT_FALSE(isEnvelope(nullptr));
}

TEST(ConsoleAnswers, RegistrationNeedsARelayIdAndASecurityToken) {
    auto reg = registrationFrom(env(ok(R"({"relayId":3,"securityToken":"s3cr3t","consoleCACert":""})")).get());
    ASSERT_TRUE(reg) << reg.error().message;
    EXPECT_EQ(reg->relayId, 3);
    EXPECT_EQ(reg->securityToken, "s3cr3t");
    EXPECT_EQ(reg->consoleCACert, "");
    EXPECT_TRUE(registrationFrom(env(ok(R"({"relayId":3,"securityToken":"t"})")).get()));
    EXPECT_TRUE(registrationFrom(env(ok(R"({"relayId":3,"securityToken":"t","consoleCACert":null})")).get()));

    const char* refused[] = {
        R"({"relayId":0,"securityToken":"s3cr3t"})",
        R"({"relayId":-1,"securityToken":"s3cr3t"})",
        R"({"relayId":"3","securityToken":"s3cr3t"})",
        R"({"relayId":3.0,"securityToken":"s3cr3t"})",
        R"({"relayId":3})",
        R"({"relayId":3,"securityToken":""})",
        R"({"relayId":3,"securityToken":7})",
        R"({"relayId":3,"securityToken":"s3cr3t","consoleCACert":5})",
        R"({"relayId":3,"securityToken":"s3cr3t","consoleCACert":"not a certificate"})",
        R"(null)",
    };
    for (const char* result : refused) {
        auto r = registrationFrom(env(ok(result)).get());
        ASSERT_FALSE(r) << result;
        EXPECT_EQ(r.error().message.find("s3cr3t"), std::string::npos) << r.error().message;
    }
    EXPECT_FALSE(registrationFrom(
        env(R"({"success":false,"statusCode":200,"result":{"relayId":3,"securityToken":"t"},"errors":[]})").get()));
    EXPECT_FALSE(registrationFrom(nullptr));
}

TEST(ConsoleAnswers, HeartbeatMigrationIsNullOrAValidAddressAndTime) {
    auto none = migrationFrom(env(ok(R"({"migration":null})")).get());
    ASSERT_TRUE(none);
    EXPECT_FALSE(*none);
    auto absent = migrationFrom(env(ok("{}")).get());
    ASSERT_TRUE(absent);
    EXPECT_FALSE(*absent);

    auto m = migrationFrom(
        env(ok(R"({"migration":{"consoleAddress":"https://new.example.com/","validUntilAt":"2026-12-01T00:00:00Z"}})"))
            .get());
    ASSERT_TRUE(m) << m.error().message;
    ASSERT_TRUE(*m);
    EXPECT_EQ((*m)->consoleAddress.host, "new.example.com");
    EXPECT_EQ((*m)->validUntilText, "2026-12-01T00:00:00Z");

    const char* refused[] = {
        R"({"migration":"new.example.com"})",
        R"({"migration":{"consoleAddress":"new.example.com"}})",
        R"({"migration":{"validUntilAt":"2026-12-01T00:00:00Z"}})",
        R"({"migration":{"consoleAddress":"ftp://new.example.com","validUntilAt":"2026-12-01T00:00:00Z"}})",
        R"({"migration":{"consoleAddress":"new.example.com","validUntilAt":"tomorrow"}})",
        R"({"migration":{"consoleAddress":7,"validUntilAt":"2026-12-01T00:00:00Z"}})",
    };
    for (const char* result : refused) EXPECT_FALSE(migrationFrom(env(ok(result)).get())) << result;
    EXPECT_FALSE(migrationFrom(env(ok("null")).get()));
}

TEST(ConsoleAnswers, VerifyIsValidOnlyForThisResponderInThisOrganization) {
    auto valid = [](const std::string& result) { return verifiedValid(env(ok(result)).get(), "r-1", 7); };
    EXPECT_TRUE(valid(R"({"valid":true,"responderId":"r-1","organizationId":7})"));
    EXPECT_FALSE(valid(R"({"valid":false,"responderId":"r-1","organizationId":7})"));
    EXPECT_FALSE(valid(R"({"valid":"true","responderId":"r-1","organizationId":7})"));
    EXPECT_FALSE(valid(R"({"valid":true,"responderId":"r-2","organizationId":7})"));
    EXPECT_FALSE(valid(R"({"valid":true,"responderId":"r-1","organizationId":8})"));
    EXPECT_FALSE(valid(R"({"valid":true,"responderId":"r-1","organizationId":"7"})"));
    EXPECT_FALSE(valid(R"({"valid":true,"organizationId":7})"));
    EXPECT_FALSE(valid(R"({"valid":true,"responderId":"r-1"})"));
    EXPECT_FALSE(valid(R"({"valid":false})"));
    EXPECT_FALSE(valid("null"));
    EXPECT_FALSE(verifiedValid(
        env(R"({"success":false,"statusCode":200,"result":{"valid":true,"responderId":"r-1","organizationId":7},"errors":[]})")
            .get(),
        "r-1", 7));
    // A NUL inside the id does not make a prefix match.
    EXPECT_FALSE(valid(R"({"valid":true,"responderId":"r-1\u0000x","organizationId":7})"));
}

}  // namespace
}  // namespace relaypro
