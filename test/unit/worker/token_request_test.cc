// The token endpoint's body: exactly responderId and credential, within protocol.md's limits.
#include "worker/token_request.h"

#include <gtest/gtest.h>

namespace relaypro {
namespace {

TEST(TokenRequest, AcceptsExactlyTheTwoMembersWithinLimits) {
    auto r = parseTokenRequest(R"({"credential":"c-1","responderId":"r\u00e9sp"})");
    ASSERT_TRUE(r) << r.error().message;
    EXPECT_EQ(r->responderId, "r\xc3\xa9sp");
    EXPECT_EQ(r->credential, "c-1");
    EXPECT_TRUE(parseTokenRequest(R"({"responderId":")" + std::string(256, 'r') + R"(","credential":")" +
                                  std::string(8192, 'c') + R"("})"));
}

TEST(TokenRequest, RefusesEverythingElse) {
    for (std::string body :
         {std::string(""), std::string("null"), std::string("[]"), std::string("{}"),
          std::string(R"({"responderId":"r"})"), std::string(R"({"credential":"c"})"),
          std::string(R"({"responderId":"r","credential":"c","x":1})"),
          std::string(R"({"responderId":"r","responderId":"s","credential":"c"})"),
          std::string(R"({"responderId":1,"credential":"c"})"), std::string(R"({"responderId":"r","credential":null})"),
          std::string(R"({"responderId":"","credential":"c"})"), std::string(R"({"responderId":"r","credential":""})"),
          std::string(R"({"responderId":"a\nb","credential":"c"})"),
          std::string(R"({"responderId":"a\u007fb","credential":"c"})"),
          std::string(R"({"responderId":"a\u0000b","credential":"c"})"),
          R"({"responderId":")" + std::string(257, 'r') + R"(","credential":"c"})",
          R"({"responderId":"r","credential":")" + std::string(8193, 'c') + R"("})",
          std::string(R"({"responderId":"r","credential":"c"} trailing)"),
          std::string(kMaxTokenRequestBody + 1, ' ')}) {
        EXPECT_FALSE(parseTokenRequest(body)) << body.substr(0, 80);
    }
}

}  // namespace
}  // namespace relaypro
