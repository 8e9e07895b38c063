#include "common/environment.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "test/support/test_files.h"

namespace relaypro {
namespace {

TEST(EnvFile, ParsesCommentsQuotesAndBlankLines) {
    auto r = parseEnvFile(
        "# RelayPro environment\n"
        "\n"
        "RELAYPRO_HTTPS_LISTEN=127.0.0.1:9443\n"
        "  RELAYPRO_PASSWORD_FILE = \"/etc/relay pw\"  # trailing comment\n"
        "AIR_DEPLOYMENT_TOKEN='abc#def'\n"
        "HTTPS_PROXY=http://proxy:3128 # not a comment: unquoted values are taken whole\n"
        "EMPTY=\n"
        "WINDOWS=crlf\r\n",
        "env");
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->size(), 6u);
    EXPECT_EQ((*r)[0].key, "RELAYPRO_HTTPS_LISTEN");
    EXPECT_EQ((*r)[0].value, "127.0.0.1:9443");
    EXPECT_EQ((*r)[0].line, 3u);
    EXPECT_EQ((*r)[1].value, "/etc/relay pw");
    EXPECT_EQ((*r)[2].value, "abc#def");
    EXPECT_EQ((*r)[3].value, "http://proxy:3128 # not a comment: unquoted values are taken whole");
    EXPECT_EQ((*r)[4].value, "");
    EXPECT_EQ((*r)[5].value, "crlf");
}

TEST(EnvFile, QuotedValuesMaySpanLinesWithoutExpansion) {
    auto r = parseEnvFile(
        "AIR_CONSOLE_CA_CERT=\"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\"\n"
        "RELAYPRO_USER=$HOME\n",
        "env");
    ASSERT_TRUE(r.ok()) << r.error().message;
    ASSERT_EQ(r->size(), 2u);
    EXPECT_EQ((*r)[0].value, "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
    EXPECT_EQ((*r)[1].value, "$HOME");
    EXPECT_EQ((*r)[1].line, 5u);
}

TEST(EnvFile, RejectsMalformedLinesWithFileAndLine) {
    struct Case {
        std::string text;
        const char* message;
    } cases[] = {
        {"A=1\nno equals sign\n", "f:2: expected KEY=value"},
        {"1ABC=x\n", "f:1: \"1ABC\" is not a valid variable name"},
        {"A-B=x\n", "f:1: \"A-B\" is not a valid variable name"},
        {"=x\n", "f:1: \"\" is not a valid variable name"},
        {"export A=x\n", "f:1: \"export A\" is not a valid variable name"},
        {"A=\"open\nB=2\n", "f:1: unterminated quoted value"},
        {"A=\"x\" y\n", "f:1: unexpected text after the closing quote"},
        {std::string("A=1\nB=\0\n", 8), "f:2: NUL byte"},
    };
    for (const auto& c : cases) {
        auto r = parseEnvFile(c.text, "f");
        ASSERT_FALSE(r.ok()) << c.text;
        EXPECT_EQ(r.error().message.rfind(c.message, 0), 0u) << r.error().message;
    }
}

Environment inherited(EnvVars vars) {
    return Environment(std::move(vars));
}

TEST(Environment, FileWinsOverInheritedAndRemovedKeysBecomeUnset) {
    Environment env = inherited({{"RELAYPRO_PASSWORD_FILE", "/inherited"},
                                 {"RELAYPRO_HTTPS_LISTEN", "0.0.0.0:1"},
                                 {"AIR_ORGANIZATION_ID", "5"}});
    std::vector<std::string> warnings;
    ASSERT_TRUE(
        env.applyFileText("RELAYPRO_PASSWORD_FILE=/from-file\nRELAYPRO_HTTPS_LISTEN=0.0.0.0:2\n", "f", warnings).ok());
    EXPECT_EQ(env.get("RELAYPRO_PASSWORD_FILE"), "/from-file");
    EXPECT_EQ(env.get("RELAYPRO_HTTPS_LISTEN"), "0.0.0.0:2");
    EXPECT_EQ(env.get("AIR_ORGANIZATION_ID"), "5");  // never in the file: inherited
    EXPECT_EQ(env.sourceOf("RELAYPRO_HTTPS_LISTEN"), "f:2");
    EXPECT_EQ(env.sourceOf("AIR_ORGANIZATION_ID"), "environment");

    // A reload after the key was removed from the file: unset, not the inherited value.
    ASSERT_TRUE(env.applyFileText("RELAYPRO_HTTPS_LISTEN=0.0.0.0:3\n", "f", warnings).ok());
    EXPECT_FALSE(env.get("RELAYPRO_PASSWORD_FILE").has_value());
    EXPECT_EQ(env.get("RELAYPRO_HTTPS_LISTEN"), "0.0.0.0:3");
    EXPECT_TRUE(env.everHeld().contains("RELAYPRO_PASSWORD_FILE"));

    // The state survives a hand-over (upgrade re-exec).
    Environment next = inherited({{"RELAYPRO_PASSWORD_FILE", "/inherited"}});
    next.restoreEverHeld(env.everHeld());
    ASSERT_TRUE(next.applyFileText("", "f", warnings).ok());
    EXPECT_FALSE(next.get("RELAYPRO_PASSWORD_FILE").has_value());
    EXPECT_TRUE(warnings.empty());
}

TEST(Environment, MalformedFileChangesNothing) {
    Environment env;
    std::vector<std::string> warnings;
    ASSERT_TRUE(env.applyFileText("RELAYPRO_HTTPS_LISTEN=0.0.0.0:2\n", "f", warnings).ok());
    EXPECT_FALSE(env.applyFileText("RELAYPRO_HTTPS_LISTEN=0.0.0.0:3\ngarbage\n", "f", warnings).ok());
    EXPECT_EQ(env.get("RELAYPRO_HTTPS_LISTEN"), "0.0.0.0:2");
}

TEST(Environment, WarnsAboutKeysItIgnores) {
    Environment env;
    std::vector<std::string> warnings;
    ASSERT_TRUE(env.applyFileText("PATH=/bin\nRELAYPRO_CONFIG=/x.yml\nRELAYPRO_HTTPS_LISTN=0.0.0.0:1\n"
                                  "RELAYPRO_USER=a\nRELAYPRO_USER=b\n",
                                  "f", warnings)
                    .ok());
    ASSERT_EQ(warnings.size(), 4u);
    EXPECT_EQ(warnings[0], "f:1: PATH is not a RelayPro setting; ignored");
    EXPECT_NE(warnings[1].find("f:2: RELAYPRO_CONFIG cannot be set in the environment file"), std::string::npos);
    EXPECT_EQ(warnings[2], "f:3: unknown variable \"RELAYPRO_HTTPS_LISTN\" — did you mean \"RELAYPRO_HTTPS_LISTEN\"?");
    EXPECT_EQ(warnings[3], "f:5: RELAYPRO_USER is set again; the last value wins");
    EXPECT_FALSE(env.get("PATH").has_value());
    EXPECT_FALSE(env.get("RELAYPRO_CONFIG").has_value());
    EXPECT_EQ(env.get("RELAYPRO_USER"), "b");
}

TEST(Environment, MissingFileIsEmptyUnreadableFileIsAnError) {
    namespace fs = std::filesystem;
    testing::TempDir tmp;
    const fs::path& dir = tmp.path();
    Environment env = inherited({{"RELAYPRO_USER", "x"}});
    std::vector<std::string> warnings;
    EXPECT_TRUE(env.loadFile((dir / "missing.conf").string(), warnings).ok());
    EXPECT_EQ(env.get("RELAYPRO_USER"), "x");
    { std::ofstream(dir / "env.conf") << "RELAYPRO_USER=y\n"; }
    EXPECT_TRUE(env.loadFile((dir / "env.conf").string(), warnings).ok());
    EXPECT_EQ(env.get("RELAYPRO_USER"), "y");
    fs::create_directories(dir / "a-folder.conf");
    auto r = env.loadFile((dir / "a-folder.conf").string(), warnings);
    EXPECT_FALSE(r.ok());
    EXPECT_EQ(env.get("RELAYPRO_USER"), "y");
}

TEST(Environment, TheExampleFileParsesCleanly) {
    Environment env;
    std::vector<std::string> warnings;
    auto s = env.loadFile(std::string(RELAYPRO_SOURCE_DIR) + "/etc/environment.example.conf", warnings);
    ASSERT_TRUE(s.ok()) << s.error().message;
    EXPECT_TRUE(warnings.empty());
}

TEST(Environment, RecognisesItsKeys) {
    for (const char* k : {"RELAYPRO_USER", "AIR_CONSOLE_ADDRESS", "https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY",
                          "http_proxy", "HTTP_PROXY"}) {
        EXPECT_TRUE(isRelayProEnvKey(k)) << k;
    }
    for (const char* k : {"PATH", "HOME", "Https_Proxy", "ALL_PROXY", "RELAYPRO"})
        EXPECT_FALSE(isRelayProEnvKey(k)) << k;
}

}  // namespace
}  // namespace relaypro
