#include "common/log_record.h"

#include <gtest/gtest.h>
#include <jansson.h>

#include <memory>

#include "test/support/json.h"

namespace relaypro {
namespace {

using testing::Json;

Json parse(const std::string& line) {
    json_error_t err;
    Json j(json_loadb(line.data(), line.size(), JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err));
    EXPECT_TRUE(j) << err.text << " in " << line;
    return j;
}

std::string str(const Json& j, const char* key) {
    json_t* v = json_object_get(j.get(), key);
    return v != nullptr && json_is_string(v) ? std::string(json_string_value(v), json_string_length(v)) : "<missing>";
}

LogRecord record(std::string msg, std::vector<LogField> fields = {}) {
    LogRecord r;
    r.time = std::chrono::system_clock::time_point(std::chrono::microseconds(1795960420123456LL));
    r.level = LogLevel::Info;
    r.msg = std::move(msg);
    r.component = "worker";
    r.pid = 4242;
    r.fields = std::move(fields);
    return r;
}

TEST(LogRecord, FixedKeysFirstThenTheEventsOwn) {
    std::string line = formatLogLine(record("tunnel closed", {{"conn", "7f3a-000123"},
                                                              {"client", "203.0.113.7:51544"},
                                                              {"bytesUp", uint64_t{1834}},
                                                              {"durationMs", 5210},
                                                              {"ok", true},
                                                              {"ratio", 0.5}}));
    EXPECT_EQ(line,
              "{\"time\":\"2026-11-29T13:53:40.123456Z\",\"level\":\"info\",\"msg\":\"tunnel closed\","
              "\"component\":\"worker\",\"pid\":4242,\"conn\":\"7f3a-000123\",\"client\":\"203.0.113.7:51544\","
              "\"bytesUp\":1834,\"durationMs\":5210,\"ok\":true,\"ratio\":0.5}\n");
    Json j = parse(line);
    EXPECT_EQ(json_integer_value(json_object_get(j.get(), "pid")), 4242);
}

TEST(LogRecord, TimeIsUtcWithMicroseconds) {
    EXPECT_EQ(formatLogTime(std::chrono::system_clock::time_point(std::chrono::seconds(0))),
              "1970-01-01T00:00:00.000000Z");
    EXPECT_EQ(formatLogTime(std::chrono::system_clock::time_point(std::chrono::microseconds(1))),
              "1970-01-01T00:00:00.000001Z");
}

TEST(LogRecord, EscapesEverythingIntoValidJson) {
    std::string nasty = std::string("quote\" backslash\\ newline\n tab\t cr\r nul") + std::string(1, '\0') +
                        " bell\a del\x7f bad\xff\xfe utf8 \xc3\xa9 emoji \xf0\x9f\x98\x80 overlong \xc0\xaf";
    std::string line = formatLogLine(record(nasty, {{"key\"with\nquote", nasty}}));
    EXPECT_EQ(line.find('\n'), line.size() - 1);  // one line
    Json j = parse(line);
    std::string msg = str(j, "msg");
    EXPECT_NE(msg.find("quote\" backslash\\ newline\n tab\t cr\r nul"), std::string::npos);
    EXPECT_NE(msg.find(std::string("nul") + std::string(1, '\0')), std::string::npos);
    EXPECT_NE(msg.find("bad\xef\xbf\xbd\xef\xbf\xbd"), std::string::npos);
    EXPECT_NE(msg.find("\xc3\xa9"), std::string::npos);
    EXPECT_NE(msg.find("\xf0\x9f\x98\x80"), std::string::npos);
    EXPECT_EQ(str(j, "key_with_quote"), msg);  // keys are identifiers: other bytes become '_'
}

TEST(LogRecord, FixedKeysCannotBeOverridden) {
    Json j = parse(formatLogLine(record("m", {{"level", "error"}, {"pid", 1}, {"msg", "x"}})));
    EXPECT_EQ(str(j, "level"), "info");
    EXPECT_EQ(str(j, "msg"), "m");
    EXPECT_EQ(json_integer_value(json_object_get(j.get(), "pid")), 4242);
}

TEST(LogRecord, SecretKeysAreRedacted) {
    Json j = parse(formatLogLine(record("m", {{"token", "eyJhbGciOi.x.y"},
                                              {"securityToken", "st-123"},
                                              {"deploymentToken", "dt-456"},
                                              {"password", "hunter2"},
                                              {"credential", "cred"},
                                              {"caPrivateKey", "k"},
                                              {"emptyToken", ""},
                                              {"tokenCount", 5}})));
    EXPECT_EQ(str(j, "token"), "<redacted>");
    EXPECT_EQ(str(j, "securityToken"), "<redacted>");
    EXPECT_EQ(str(j, "deploymentToken"), "<redacted>");
    EXPECT_EQ(str(j, "password"), "<redacted>");
    EXPECT_EQ(str(j, "credential"), "<redacted>");
    EXPECT_EQ(str(j, "caPrivateKey"), "<redacted>");
    EXPECT_EQ(str(j, "emptyToken"), "");
    EXPECT_EQ(str(j, "tokenCount"), "<redacted>");  // any value under a secret-named key
}

TEST(LogRecord, AuthorizationKeepsOnlyTheScheme) {
    Json j = parse(formatLogLine(record("refused", {{"auth", "Bearer eyJhbGciOiJkaXIifQ..abc.def.ghi"},
                                                    {"proxyAuthorization", "Basic dXNlcjpwYXNz"},
                                                    {"authorization", "Weird\x01scheme x"}})));
    EXPECT_EQ(str(j, "auth"), "Bearer");
    EXPECT_EQ(str(j, "proxyAuthorization"), "Basic");
    EXPECT_EQ(str(j, "authorization"), "<redacted>");
}

TEST(LogRecord, CredentialsInsideTextAreReplaced) {
    struct Case {
        std::string in, out;
    } cases[] = {
        {"header was Bearer abcdefghijklmnopqrstuvwxyz0123", "header was Bearer <redacted>"},
        {"got BASIC dXNlcjpwYXNzd29yZA== from client", "got BASIC <redacted> from client"},
        {"token eyJhbGciOiJkaXIifQ..aXY.Y2lwaGVy.dGFn rejected", "token <redacted token> rejected"},
        {"jwt=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig", "jwt=<redacted token>"},
        {"key -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- end",
         "key <redacted private key> end"},
        {"-----BEGIN PRIVATE KEY-----\nMIIE", "<redacted private key>"},
        // Prose stays readable.
        {"Basic authentication is off", "Basic authentication is off"},
        {"Bearer tokens are refused", "Bearer tokens are refused"},
        {"a certificate: -----BEGIN CERTIFICATE-----", "a certificate: -----BEGIN CERTIFICATE-----"},
        {"plain text", "plain text"},
    };
    for (const auto& c : cases) EXPECT_EQ(redactSecrets(c.in), c.out) << c.in;
    Json j = parse(formatLogLine(record("Bearer abcdefghijklmnopqrstuvwxyz0123", {{"detail", "Basic dXNlcjpwYXNz"}})));
    EXPECT_EQ(str(j, "msg"), "Bearer <redacted>");
    EXPECT_EQ(str(j, "detail"), "Basic <redacted>");
}

TEST(LogRecord, LevelsByName) {
    for (auto l : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error}) {
        EXPECT_EQ(parseLogLevel(levelName(l)), l);
    }
    EXPECT_FALSE(parseLogLevel("verbose").has_value());
}

class Collect : public LogOutput {
public:
    void write(const LogRecord& r) override { records.push_back(r); }
    std::vector<LogRecord> records;
};

TEST(Logger, FiltersByLevelAndFillsFixedKeys) {
    Collect out;
    Logger log(&out, "supervisor");
    log.debug("hidden");
    log.info("shown", {{"k", "v"}});
    log.setMinLevel(LogLevel::Debug);
    log.debug("now shown");
    log.setMinLevel(LogLevel::Error);
    log.warn("hidden too");
    log.error("bad");
    ASSERT_EQ(out.records.size(), 3u);
    EXPECT_EQ(out.records[0].msg, "shown");
    EXPECT_EQ(out.records[0].component, "supervisor");
    EXPECT_EQ(out.records[0].pid, ::getpid());
    EXPECT_EQ(out.records[1].level, LogLevel::Debug);
    EXPECT_EQ(out.records[2].level, LogLevel::Error);
}

}  // namespace
}  // namespace relaypro
