// The production authentication end to end (protocol.md): real curl asks the token endpoint,
// which asks a console (console_sim.py, real HTTPS) through the supervisor; then curl tunnels
// with the Bearer token. Tokens that must fail get 407 invalid_token; an independent peer
// (python3-cryptography + python3-jwcrypto) decrypts RelayPro's tokens; restarts and upgrades
// keep tokens and TLS sessions valid, a new CA bundle does not.
#include <gtest/gtest.h>
#include <jansson.h>
#include <signal.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <iterator>
#include <memory>
#include <regex>
#include <sstream>
#include <thread>

#include "common/jose.h"
#include "common/token.h"
#include "supervisor/ca_bundle.h"
#include "test/support/console.h"
#include "test/support/net.h"
#include "test/support/process.h"
#include "test/support/relay.h"
#include "test/support/secrets.h"
#include "test/support/test_files.h"

namespace relaypro::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kVerifyPath = "/api/public/relay-pro/responders/verify";

std::string jsonString(const std::string& text, const char* member) {
    json_error_t err;
    json_t* j = json_loads(text.c_str(), 0, &err);
    const char* v = json_string_value(json_object_get(j, member));
    std::string out = v != nullptr ? v : "";
    json_decref(j);
    return out;
}

int64_t jsonInteger(const std::string& text, const char* member) {
    json_error_t err;
    json_t* j = json_loads(text.c_str(), 0, &err);
    int64_t v = json_integer_value(json_object_get(j, member));
    json_decref(j);
    return v;
}

// curl's body and, on the last line, the status (-w).
struct HttpResult {
    int status = 0;
    std::string body;
};

HttpResult curl(const std::string& args) {
    CommandResult r = runCommand("curl -s -S --max-time 20 -w '\\n%{http_code}' " + args + " 2>&1");
    HttpResult h;
    size_t nl = r.out.rfind('\n');
    if (nl == std::string::npos) return h;
    h.body = r.out.substr(0, nl);
    h.status = std::atoi(r.out.c_str() + nl + 1);
    return h;
}

class TrustTest : public ::testing::Test {
protected:
    void SetUp() override {
        console_ = std::make_unique<ConsoleSim>(tmp_.path());
        ASSERT_TRUE(console_->started());
        console_->setState(R"({"responders": {"resp-A": "cred-A7hQ", "resp-B": "cred-B3vN"}})");
    }

    std::string configYaml(const std::string& extra = "") const {
        return console_->registeredConfig() + "serverName: \"127.0.0.1\"\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\n" +
               extra;
    }

    std::unique_ptr<Relay> start(const std::string& extra = "", std::map<std::string, std::string> env = {},
                                 const std::string& binary = RELAYPRO_BINARY) {
        auto r = std::make_unique<Relay>(tmp_, configYaml(extra), env, std::vector<std::string>{}, binary);
        EXPECT_TRUE(r->ready()) << r->stderrText() << readText(r->logFile());
        return r;
    }

    fs::path bundleFile() const { return tmp_ / "private" / "ca-bundle.pem"; }

    // The CA certificate, fetched from the relay (a test can trust what it fetched itself).
    fs::path fetchCa(const Relay& r) {
        fs::path out = tmp_ / ("ca-" + std::to_string(r.httpsPort()) + ".pem");
        HttpResult h = curl("-k -o " + out.string() + " https://127.0.0.1:" + std::to_string(r.httpsPort()) +
                            "/relaypro/v1/ca.pem");
        EXPECT_EQ(h.status, 200);
        return out;
    }

    HttpResult requestToken(const Relay& r, const std::string& body, const std::string& extra = "") {
        fs::path ca = fetchCa(r);
        writeText(tmp_ / "token-body.json", body);
        return curl("--cacert " + ca.string() + " -H 'Content-Type: application/json' --data-binary @" +
                    (tmp_ / "token-body.json").string() + " " + extra +
                    " https://127.0.0.1:" + std::to_string(r.httpsPort()) + "/relaypro/v1/token");
    }

    std::string token(const Relay& r, const std::string& id, const std::string& credential) {
        HttpResult h = requestToken(r, R"({"responderId":")" + id + R"(","credential":")" + credential + R"("})");
        EXPECT_EQ(h.status, 200) << h.body;
        std::string t = jsonString(h.body, "token");
        noteSecret(t);
        return t;
    }

    // GET https://<console>/hello through the relay with the token, as curl does it.
    HttpResult tunnelGet(const Relay& r, const std::string& token, const std::string& extra = "") {
        fs::path ca = fetchCa(r);
        return curl("--proxy https://127.0.0.1:" + std::to_string(r.httpsPort()) + " --proxy-cacert " + ca.string() +
                    " --proxy-header 'Proxy-Authorization: Bearer " + token + "' --cacert " +
                    console_->certFile().string() + " " + extra + " https://" + console_->address() + "/hello");
    }

    // A raw CONNECT with the token: the status and the Proxy-Authenticate fields.
    std::pair<int, std::string> connectWith(uint16_t port, const std::string& token) {
        Client c;
        if (!c.connect("127.0.0.1", port, true)) return {0, ""};
        c.send("CONNECT " + console_->address() + " HTTP/1.1\r\nHost: " + console_->address() +
               "\r\nProxy-Authorization: Bearer " + token + "\r\n\r\n");
        std::string head = c.readHead();
        std::string challenges;
        for (const auto& v : headersOf(head, "Proxy-Authenticate")) challenges += v + ";";
        return {statusOf(head), challenges};
    }

    void expectInvalidToken(uint16_t port, const std::string& token, const std::string& what) {
        auto [status, challenges] = connectWith(port, token);
        EXPECT_EQ(status, 407) << what;
        EXPECT_NE(challenges.find(R"(Bearer realm="RelayPro", error="invalid_token")"), std::string::npos)
            << what << ": " << challenges;
    }

    TempDir tmp_;
    std::unique_ptr<ConsoleSim> console_;
};

int64_t nowSeconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
        .count();
}

TEST_F(TrustTest, CurlGetsATokenThenTunnelsWithIt) {
    auto relay = start();
    HttpResult h =
        requestToken(*relay, R"({"responderId":"resp-A","credential":"cred-A7hQ"})", "-D " + (tmp_ / "h.txt").string());
    ASSERT_EQ(h.status, 200) << h.body;
    EXPECT_EQ(jsonString(h.body, "tokenType"), "Bearer");
    EXPECT_EQ(jsonInteger(h.body, "expiresIn"), 3600);
    auto expiresAt = jsonString(h.body, "expiresAt");
    EXPECT_TRUE(std::regex_match(expiresAt, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)"))) << expiresAt;
    EXPECT_NE(readText(tmp_ / "h.txt").find("Cache-Control: no-store"), std::string::npos);
    std::string t = jsonString(h.body, "token");
    ASSERT_FALSE(t.empty());

    // The console was asked once, with the relay's credential, id and the Responder's pair.
    auto journal = console_->journal();
    ASSERT_EQ(console_->count(kVerifyPath), 1u);
    EXPECT_EQ(journal.back().body, R"({"credential":"cred-A7hQ","relayId":3,"responderId":"resp-A"})");

    HttpResult g = tunnelGet(*relay, t);
    EXPECT_EQ(g.status, 200) << g.body;
    EXPECT_NE(g.body.find(R"("page": "/hello")"), std::string::npos) << g.body;
    ASSERT_TRUE(relay->waitForLog("tunnel closed", {{"responder", "resp-A"}}));

    // A second token request within the cache's minute does not ask the console again.
    EXPECT_FALSE(token(*relay, "resp-A", "cred-A7hQ").empty());
    EXPECT_EQ(console_->count(kVerifyPath), 1u);

    // No token, no credential, no security token in any log line.
    std::string log = readText(relay->logFile());
    EXPECT_EQ(log.find(t.substr(t.size() - 22)), std::string::npos);
    EXPECT_EQ(log.find("cred-A7hQ"), std::string::npos);
    EXPECT_EQ(log.find("st-9f3k2"), std::string::npos);
}

TEST_F(TrustTest, TokensThatMustFailGet407InvalidToken) {
    auto relay = start();
    const uint16_t port = relay->httpsPort();
    std::string a = token(*relay, "resp-A", "cred-A7hQ");
    std::string b = token(*relay, "resp-B", "cred-B3vN");
    ASSERT_EQ(connectWith(port, a).first, 200);
    ASSERT_EQ(connectWith(port, b).first, 200);

    // A's token with B's kid in its header.
    std::string headerB = *base64UrlDecode(b.substr(0, b.find('.')));
    expectInvalidToken(port, base64UrlEncode(headerB) + a.substr(a.find('.')), "A's token with B's kid");
    // One character edited in the header, the IV, the ciphertext and the tag.
    size_t d1 = a.find('.'), d2 = a.find('.', d1 + 1), d3 = a.find('.', d2 + 1), d4 = a.find('.', d3 + 1);
    for (size_t at : {size_t{5}, d2 + 2, d3 + 5, d4 + 5}) {
        std::string edited = a;
        edited[at] = edited[at] == 'A' ? 'B' : 'A';
        expectInvalidToken(port, edited, "edited at " + std::to_string(at));
    }
    // Expired, made with this bundle's real keys (which make a valid token too).
    auto ca = CaBundle::load(bundleFile().string(), std::chrono::system_clock::now());
    ASSERT_TRUE(ca) << ca.error().message;
    const int64_t now = nowSeconds();
    auto expired = issueToken(ca->tokenMaster(utcDay(now - 7200)), "resp-A", 1, now - 7200, 3600);
    ASSERT_TRUE(expired);
    expectInvalidToken(port, *expired, "expired");
    auto fresh = issueToken(ca->tokenMaster(utcDay(now)), "resp-A", 1, now, 3600);
    ASSERT_TRUE(fresh);
    EXPECT_EQ(connectWith(port, *fresh).first, 200) << "the same keys make a valid token";
    auto otherOrg = issueToken(ca->tokenMaster(utcDay(now)), "resp-A", 2, now, 3600);
    expectInvalidToken(port, *otherOrg, "another organization");
    // From another CA bundle.
    auto other = CaBundle::generate(std::chrono::system_clock::now());
    ASSERT_TRUE(other);
    auto foreign = issueToken(other->tokenMaster(utcDay(now)), "resp-A", 1, now, 3600);
    expectInvalidToken(port, *foreign, "another CA bundle");
    expectInvalidToken(port, "not-a-token", "garbage");
    EXPECT_TRUE(relay->waitForLog("request refused", {{"reason", "invalid_token"}}));
}

// Tokens built here with this bundle's real keys, each wrong in one way only: the one built right
// with the same code is accepted, so every refusal is for the flaw it carries.
TEST_F(TrustTest, ForgedTokenFormsGet407AndOpenNoTunnel) {
    auto relay = start("limits:\n  maxHeaderBytes: 128KiB\n  tokenRequestsPerMinute: 200\n");
    const uint16_t port = relay->httpsPort();
    auto ca = CaBundle::load(bundleFile().string(), std::chrono::system_clock::now());
    ASSERT_TRUE(ca) << ca.error().message;
    const int64_t now = nowSeconds();
    const std::string id = "resp-A";
    const std::string kid = "rp1." + std::to_string(utcDay(now)) + "." + base64UrlEncode(id);
    const TokenKey key = responderKey(ca->tokenMaster(utcDay(now)), id);
    const std::string keyBytes(reinterpret_cast<const char*>(key.data()), key.size());
    const std::string iv(12, '\x07');
    auto header = [&](const std::string& alg, const std::string& enc, const std::string& extra = "") {
        return R"({"alg":")" + alg + R"(","enc":")" + enc + R"(","kid":")" + kid + R"(","typ":"JWT")" + extra + "}";
    };
    auto claims = [&](int64_t iat, int64_t nbf, int64_t exp, const std::string& extra = "") {
        return R"({"iss":"relaypro","sub":")" + id + R"(","org":1,"iat":)" + std::to_string(iat) + R"(,"nbf":)" +
               std::to_string(nbf) + R"(,"exp":)" + std::to_string(exp) + R"(,"jti":"Zm9yZ2VkLXRva2VuLWp0aQ")" + extra +
               "}";
    };
    auto make = [&](const std::string& h, const std::string& c) {
        auto t = encryptCompactDir(h, keyBytes, iv, c);
        EXPECT_TRUE(t) << t.error().message;
        return t ? *t : std::string();
    };
    const std::string good = make(header("dir", "A256GCM"), claims(now, now, now + 3600));
    ASSERT_EQ(connectWith(port, good).first, 200) << "the control: built right, it is accepted";

    expectInvalidToken(port, make(header("none", "A256GCM"), claims(now, now, now + 3600)), "alg none");
    expectInvalidToken(port, make(header("A256KW", "A256GCM"), claims(now, now, now + 3600)), "alg A256KW");
    expectInvalidToken(port, make(header("dir", "A128GCM"), claims(now, now, now + 3600)), "enc A128GCM");
    expectInvalidToken(port, make(header("dir", "A256CBC-HS512"), claims(now, now, now + 3600)), "enc CBC");
    expectInvalidToken(port, make(header("dir", "A256GCM", R"(,"zip":"DEF")"), claims(now, now, now + 3600)), "zip");
    expectInvalidToken(port, make(header("dir", "A256GCM", R"(,"crit":["exp"])"), claims(now, now, now + 3600)),
                       "crit");
    expectInvalidToken(port,
                       make(R"({"alg":"dir","alg":"none","enc":"A256GCM","kid":")" + kid + R"(","typ":"JWT"})",
                            claims(now, now, now + 3600)),
                       "a duplicated alg");
    expectInvalidToken(port, make(header("dir", "A256GCM"), claims(now, now + 3600, now + 7200)), "not yet valid");
    expectInvalidToken(port, make(header("dir", "A256GCM"), claims(now, now, now + 25 * 3600)), "lifetime over 24 h");
    expectInvalidToken(port, make(header("dir", "A256GCM"), claims(now, now, now + 3600, R"(,"admin":true)")),
                       "an extra claim");
    // Replayed after it expired: built like `good`, an hour and a second later than its end.
    expectInvalidToken(port, make(header("dir", "A256GCM"), claims(now - 3 * 3600, now - 3 * 3600, now - 2 * 3600)),
                       "replayed after expiry");
    // The tag truncated, cut to nothing, and the token cut after the IV.
    const size_t lastDot = good.rfind('.');
    expectInvalidToken(port, good.substr(0, good.size() - 4), "a truncated tag");
    expectInvalidToken(port, good.substr(0, lastDot + 1), "an empty tag");
    expectInvalidToken(port, good.substr(0, good.find('.', good.find('.', good.find('.') + 1) + 1)), "three parts");
    // 64 KiB: a real encryption of huge claims, and 64 KiB of base64url noise.
    expectInvalidToken(port,
                       make(header("dir", "A256GCM"),
                            claims(now, now, now + 3600, R"(,"pad":")" + std::string(48 * 1024, 'x') + "\"")),
                       "64 KiB of claims");
    expectInvalidToken(port, std::string(64 * 1024, 'A'), "64 KiB of noise");
    // With the default head limit, a 64 KiB token is a head too large: 431, before any check.

    auto small = start("limits:\n  tokenRequestsPerMinute: 200\n");
    Client c;
    ASSERT_TRUE(c.connect("127.0.0.1", small->httpsPort(), true));
    c.send("CONNECT " + console_->address() + " HTTP/1.1\r\nProxy-Authorization: Bearer " +
           std::string(64 * 1024, 'A') + "\r\n\r\n");
    EXPECT_EQ(statusOf(c.readHead()), 431);
    // Every refusal is logged as invalid_token, and none of them opened a tunnel.
    size_t refused = 0;
    size_t tunnels = 0;
    for (const auto& l : relay->log()) {
        refused += l["reason"] == "invalid_token" ? 1U : 0U;
        tunnels += l["msg"] == "tunnel closed" || l["msg"] == "tunnel opened" ? 1U : 0U;
    }
    EXPECT_EQ(refused, 16u);
    EXPECT_LE(tunnels, 1u) << "only the control's tunnel";
}

TEST_F(TrustTest, AnIndependentPeerDecryptsTheTokens) {
    if (::access("/usr/lib/python3/dist-packages/jwcrypto", F_OK) != 0)
        GTEST_SKIP() << "python3-jwcrypto is not installed (packaging/install-deps.sh)";
    auto relay = start();
    std::string t = token(*relay, "resp-A", "cred-A7hQ");
    const int64_t before = nowSeconds();
    CommandResult peer = runCommand("/usr/bin/python3 " + std::string(RELAYPRO_SOURCE_DIR) +
                                    "/test/support/jwe_peer.py " + bundleFile().string() + " " + t + " 2>&1");
    ASSERT_EQ(peer.exitCode, 0) << peer.out;
    json_error_t err;
    json_t* j = json_loads(peer.out.c_str(), 0, &err);
    ASSERT_NE(j, nullptr) << peer.out;
    json_t* header = json_object_get(j, "header");
    json_t* claims = json_object_get(j, "claims");
    EXPECT_EQ(json_object_size(header), 4u);
    EXPECT_STREQ(json_string_value(json_object_get(header, "alg")), "dir");
    EXPECT_STREQ(json_string_value(json_object_get(header, "enc")), "A256GCM");
    EXPECT_STREQ(json_string_value(json_object_get(header, "typ")), "JWT");
    EXPECT_EQ(json_object_size(claims), 7u);
    EXPECT_STREQ(json_string_value(json_object_get(claims, "iss")), "relaypro");
    EXPECT_STREQ(json_string_value(json_object_get(claims, "sub")), "resp-A");
    EXPECT_EQ(json_integer_value(json_object_get(claims, "org")), 1);
    const int64_t iat = json_integer_value(json_object_get(claims, "iat"));
    EXPECT_LE(std::abs(iat - before), 5);
    EXPECT_EQ(json_integer_value(json_object_get(claims, "nbf")), iat);
    EXPECT_EQ(json_integer_value(json_object_get(claims, "exp")), iat + 3600);
    EXPECT_GE(std::strlen(json_string_value(json_object_get(claims, "jti"))), 16u);
    EXPECT_EQ(std::string(json_string_value(json_object_get(header, "kid"))),
              "rp1." + std::to_string(utcDay(iat)) + "." + base64UrlEncode("resp-A"));
    json_decref(j);
}

TEST_F(TrustTest, TokenEndpointAnswers) {
    auto relay = start("limits:\n  tokenRequestsPerMinute: 8\n");
    auto status = [&](const std::string& body) { return requestToken(*relay, body).status; };
    EXPECT_EQ(status("not json"), 400);
    EXPECT_EQ(status(R"({"responderId":"resp-A"})"), 400);
    EXPECT_EQ(status(R"({"responderId":"resp-A","credential":"cred-A7hQ","extra":1})"), 400);
    EXPECT_EQ(status(R"({"responderId":"","credential":"cred-A7hQ"})"), 400);
    EXPECT_EQ(status(R"({"responderId":"a\nb","credential":"cred-A7hQ"})"), 400);
    EXPECT_EQ(status(R"({"responderId":")" + std::string(257, 'r') + R"(","credential":"c"})"), 400);
    EXPECT_EQ(status(R"({"responderId":"r","credential":")" + std::string(8193, 'c') + R"("})"), 400);
    EXPECT_EQ(console_->count(kVerifyPath), 0u) << "malformed requests never reach the console";
    HttpResult wrong = requestToken(*relay, R"({"responderId":"resp-A","credential":"nope"})");
    EXPECT_EQ(wrong.status, 401);
    EXPECT_EQ(jsonString(wrong.body, "error"), "invalid_credentials");
    // Over the per-source rate: 429 with Retry-After (8 per minute, 1 used above that counted).
    int limited = 0;
    for (int i = 0; i < 10 && limited == 0; ++i) {
        HttpResult h = requestToken(*relay, R"({"responderId":"resp-B","credential":"cred-B3vN"})",
                                    "-D " + (tmp_ / "h429.txt").string());
        if (h.status == 429) {
            ++limited;
            EXPECT_EQ(jsonString(h.body, "error"), "rate_limited");
            std::string head = readText(tmp_ / "h429.txt");
            EXPECT_NE(head.find("Retry-After: "), std::string::npos) << head;
        } else {
            EXPECT_EQ(h.status, 200);
        }
    }
    EXPECT_EQ(limited, 1);
}

// A token-endpoint flood from one source: beyond limits.tokenRequestsPerMinute every request is
// 429 with Retry-After before the console is asked, so the console sees no storm.
TEST_F(TrustTest, ATokenEndpointFloodIsRateLimitedBeforeTheConsole) {
    auto relay = start("limits:\n  tokenRequestsPerMinute: 10\n");
    const auto began = std::chrono::steady_clock::now();
    constexpr int kThreads = 4;
    constexpr int kEach = 50;
    std::atomic<int> limited{0};
    std::atomic<int> answered{0};
    std::atomic<int> other{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
        threads.emplace_back([&, t] {
            for (int i = 0; i < kEach; ++i) {
                // A Responder of its own each time: the console's answer cache cannot hide a call.
                std::string body = R"({"responderId":"flood-)" + std::to_string(t) + "-" + std::to_string(i) +
                                   R"(","credential":"cred-A7hQ"})";
                Client c;
                if (!c.connect("127.0.0.1", relay->httpsPort(), true)) {
                    ++other;
                    continue;
                }
                c.send(
                    "POST /relaypro/v1/token HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                    "Content-Length: " +
                    std::to_string(body.size()) + "\r\n\r\n" + body);
                std::string head = c.readHead();
                const int status = statusOf(head);
                if (status == 429 && std::atoi(headerOf(head, "Retry-After").c_str()) >= 1) {
                    ++limited;
                } else if (status == 401) {
                    ++answered;  // the console was asked and does not know this Responder
                } else {
                    ++other;
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - began);
    // The bucket holds 10 and refills one every 6 s.
    const int allowed = 10 + static_cast<int>(seconds.count() / 6) + 1;
    EXPECT_EQ(other.load(), 0);
    EXPECT_EQ(limited + answered, kThreads * kEach);
    EXPECT_LE(answered.load(), allowed);
    EXPECT_GE(answered.load(), 10);
    EXPECT_EQ(console_->count(kVerifyPath), static_cast<size_t>(answered.load())) << "the console saw only those";
}

TEST_F(TrustTest, ConsoleAnswersDecideTheStatus) {
    auto relay = start("", {{"RELAYPRO_HTTP_LISTEN", "127.0.0.1:0"}});
    // Plain HTTP: 403 tls_required, and the console is not asked.
    HttpResult plain =
        curl("-H 'Content-Type: application/json' --data '{}' http://127.0.0.1:" + std::to_string(relay->httpPort()) +
             "/relaypro/v1/token");
    EXPECT_EQ(plain.status, 403);
    EXPECT_EQ(jsonString(plain.body, "error"), "tls_required");

    // Each case asks about another Responder: answers are cached per Responder and credential.
    auto ask = [&](const std::string& mode, const std::string& id, const std::string& extra = "") {
        console_->setState(R"({"responders": {")" + id + R"(": "cred-A7hQ"}, "verifyMode": ")" + mode + R"("})");
        return requestToken(*relay, R"({"responderId":")" + id + R"(","credential":"cred-A7hQ"})", extra);
    };
    EXPECT_EQ(ask("wrongOrg", "r1").status, 401) << "an answer for another organization is not valid";
    EXPECT_EQ(ask("wrongId", "r2").status, 401) << "an answer about another Responder is not valid";
    HttpResult down = ask("unavailable", "r3", "-D " + (tmp_ / "h503.txt").string());
    EXPECT_EQ(down.status, 503);
    EXPECT_EQ(jsonString(down.body, "error"), "console_unavailable");
    EXPECT_NE(readText(tmp_ / "h503.txt").find("Retry-After: "), std::string::npos);
    EXPECT_EQ(ask("garbage", "r4").status, 503);
    // A console that does not answer in 5 s: 503 console_unavailable.
    HttpResult slow = ask("slow", "r5");
    EXPECT_EQ(slow.status, 503);
    EXPECT_EQ(jsonString(slow.body, "error"), "console_unavailable");
    EXPECT_EQ(ask("normal", "r6").status, 200);

    // The console revokes the relay: 503 not_registered for token requests and Bearer CONNECTs.
    console_->setState(R"({"responders": {"resp-A": "cred-A7hQ"}})");
    std::string t = token(*relay, "resp-A", "cred-A7hQ");
    ASSERT_EQ(connectWith(relay->httpsPort(), t).first, 200);
    HttpResult revoked = ask("revoked", "r7");
    EXPECT_EQ(revoked.status, 503);
    EXPECT_EQ(jsonString(revoked.body, "error"), "not_registered");
    EXPECT_TRUE(
        relay->waitForLog("the console revoked this RelayPro (401/403); a new deployment token is needed "
                          "to register again"));
    EXPECT_TRUE(eventually([&] { return connectWith(relay->httpsPort(), t).first == 503; }));
}

TEST_F(TrustTest, RestartKeepsTokensANewCaBundleDoesNot) {
    std::string t;
    std::string fingerprint;
    {
        auto relay = start();
        t = token(*relay, "resp-A", "cred-A7hQ");
        ASSERT_EQ(connectWith(relay->httpsPort(), t).first, 200);
        EXPECT_EQ(relay->stop(), 0);
    }
    {
        auto relay = start();
        EXPECT_EQ(connectWith(relay->httpsPort(), t).first, 200) << "a restart keeps tokens valid";
        EXPECT_EQ(relay->stop(), 0);
    }
    fs::remove(bundleFile());
    auto relay = start();
    ASSERT_TRUE(relay->waitForLog("CA bundle created"));
    expectInvalidToken(relay->httpsPort(), t, "after a new CA bundle");
}

// openssl s_client against the relay: one HTTP request, then the server closes. Returns the
// "New, …" / "Reused, …" line and whether the output shows a session ticket.
struct Handshake {
    std::string line;
    bool ticket = false;
};

Handshake sClient(uint16_t port, const fs::path& ca, const std::string& options) {
    CommandResult r = runCommand(
        "printf 'GET /relaypro/v1/health HTTP/1.1\\r\\nHost: r\\r\\nConnection: close\\r\\n\\r\\n' | "
        "timeout 20 openssl s_client -connect 127.0.0.1:" +
        std::to_string(port) + " -CAfile " + ca.string() + " -verify_return_error -ign_eof " + options + " 2>&1");
    Handshake h;
    std::smatch m;
    if (std::regex_search(r.out, m, std::regex(R"((New|Reused), (TLSv1\.[23]))"))) h.line = m[0];
    h.ticket = r.out.find("TLS session ticket:") != std::string::npos;
    return h;
}

// Issue 15, item 5: a compromised worker asks the supervisor to verify Responders for sources of
// its choosing, which gets past the per-source bucket and would flood the console with the
// relay's own credential. A connection waits for one verification at a time, so a worker needs
// no more in flight than its share of maxConnections: beyond it, the supervisor answers "console
// unavailable" at once and logs it, and the console sees no more calls than that. The worker is
// not replaced (clients hanging up on a slow console can push an honest one there).
TEST_F(TrustTest, AWorkerIsHeldToItsShareOfVerifications) {
    auto relay = start("workers: 1\nlimits:\n  maxConnections: 10\n", {{"RELAYPRO_TEST_HOOKS", "1"}});
    console_->setState(R"({"verifyMode": "slow", "slowSeconds": 30})");
    const pid_t worker = relay->workerPids().back();
    ASSERT_EQ(::kill(worker, SIGTTOU), 0);  // 200 verifications, each for another source
    ASSERT_TRUE(
        relay->waitForLog("a worker asks for more token verifications at once than it has connections; the "
                          "rest are refused",
                          {{"workerPid", std::to_string(worker)}, {"cap", "10"}}));
    EXPECT_TRUE(eventually([&] { return console_->count(kVerifyPath) == 10; })) << "the share went to the console";
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    EXPECT_EQ(console_->count(kVerifyPath), 10u) << "and nothing more";
    EXPECT_FALSE(relay->waitForLog("replacing a worker", {}, std::chrono::milliseconds(0)));
    EXPECT_EQ(::kill(worker, 0), 0) << "the worker serves on";
}

// The same for authentication failures: every worker refuses a source once it has failed often
// enough, so a worker reporting failures for sources of its choosing could lock Responders out.
// Beyond 2,000 in one second a worker's reports are not counted, and that is logged; the worker
// is not replaced (a burst of clients can push an honest one there).
TEST_F(TrustTest, AWorkerIsHeldToItsCapOfFailures) {
    auto relay = start("workers: 1\nlimits:\n  tokenRequestsPerMinute: 1\n", {{"RELAYPRO_TEST_HOOKS", "1"}});
    const pid_t worker = relay->workerPids().back();
    ASSERT_EQ(::kill(worker, SIGTTIN), 0);  // 5,000 failures at once, each for another source
    ASSERT_TRUE(relay->waitForLog(
        "a worker reports more authentication failures than it may; the rest of this second's are not counted",
        {{"workerPid", std::to_string(worker)}, {"cap", "2000"}}));
    EXPECT_FALSE(relay->waitForLog("replacing a worker", {}, std::chrono::milliseconds(500)));
    EXPECT_EQ(::kill(worker, 0), 0) << "the worker serves on";
    HttpResult health = curl("-k https://127.0.0.1:" + std::to_string(relay->httpsPort()) + "/relaypro/v1/health");
    EXPECT_EQ(health.status, 200);
}

// An upgrade re-executes the supervisor, and the console calls it had in flight are lost with
// the old image. A token request waiting on one is asked again by its worker, answered by the
// new image, and the Responder gets its token — not a 503 after 15 s.
TEST_F(TrustTest, ATokenRequestInFlightDuringAnUpgradeIsAnswered) {
    auto relay = start("workers: 1\n", {{"RELAYPRO_INSTALLED_BINARY", RELAYPRO_NEXT_BINARY}});
    // The first call hangs at the console (30 s: longer than the test) ...
    console_->setState(R"({"responders": {"resp-A": "cred-A7hQ"}, "verifyMode": "slow", "slowSeconds": 30})");
    HttpResult answer;
    std::thread client([&] { answer = requestToken(*relay, R"({"responderId":"resp-A","credential":"cred-A7hQ"})"); });
    EXPECT_TRUE(eventually([&] { return console_->count(kVerifyPath) == 1; }));
    // ... the console is quick again for the next one, and the supervisor re-executes.
    console_->setState(R"({"responders": {"resp-A": "cred-A7hQ"}})");
    CommandResult up = runCommand(std::string("RELAYPRO_ENV_FILE=") + (tmp_ / "environment.conf").string() + " " +
                                  RELAYPRO_BINARY + " upgrade --config " + (tmp_ / "config.yml").string() + " 2>&1");
    client.join();
    ASSERT_EQ(up.exitCode, 0) << up.out;
    EXPECT_EQ(answer.status, 200) << answer.body;
    noteSecret(jsonString(answer.body, "token"));
    EXPECT_EQ(console_->count(kVerifyPath), 2u) << "the lost call and the one asked again";
    EXPECT_TRUE(relay->waitForLog("upgrade: re-executing the supervisor"));
}

// Issue 16, item 4: the installed binary's check-config, started by an upgrade, gets stdio and
// nothing of the supervisor's (test/tools/fd_probe stands in for the installed binary and
// records what it was started with).
TEST_F(TrustTest, TheUpgradesConfigurationCheckHoldsOnlyStdio) {
    const fs::path probed = tmp_ / "check-config-fds.txt";
    auto relay = start("workers: 1\n",
                       {{"RELAYPRO_INSTALLED_BINARY", FD_PROBE_BINARY}, {"RELAYPRO_FD_PROBE_OUT", probed.string()}});
    EXPECT_TRUE(eventually([&] { return console_->count("/api/public/relay-pro/heartbeat") > 0; }));
    CommandResult up = runCommand(std::string("RELAYPRO_ENV_FILE=") + (tmp_ / "environment.conf").string() + " " +
                                  RELAYPRO_BINARY + " upgrade --config " + (tmp_ / "config.yml").string() + " 2>&1");
    EXPECT_EQ(up.exitCode, 0) << up.out;
    EXPECT_EQ(readText(probed), "0 1 2\n");
}

// TLS 1.3 tickets under the CA-derived hourly key: a session resumes on every worker, after a
// restart and after an in-place upgrade; TLS 1.2 gets no ticket at all.
TEST_F(TrustTest, TlsSessionsResumeAcrossWorkersRestartsAndUpgrades) {
    const fs::path session = tmp_ / "session.pem";
    std::map<std::string, std::string> env{{"RELAYPRO_INSTALLED_BINARY", RELAYPRO_NEXT_BINARY}};
    std::string t;
    {
        auto relay = start("workers: 2\n", env);
        fs::path ca = fetchCa(*relay);
        Handshake first = sClient(relay->httpsPort(), ca, "-tls1_3 -sess_out " + session.string());
        EXPECT_EQ(first.line, "New, TLSv1.3");
        EXPECT_TRUE(first.ticket);
        // Accepts are spread over both workers by the kernel: every one resumes.
        for (int i = 0; i < 6; ++i) {
            EXPECT_EQ(sClient(relay->httpsPort(), ca, "-tls1_3 -sess_in " + session.string()).line, "Reused, TLSv1.3")
                << i;
        }
        // TLS 1.2: a full handshake every time, and no ticket is issued.
        const fs::path session12 = tmp_ / "session12.pem";
        Handshake t12 = sClient(relay->httpsPort(), ca, "-tls1_2 -sess_out " + session12.string());
        EXPECT_EQ(t12.line, "New, TLSv1.2");
        EXPECT_FALSE(t12.ticket);
        // Without a ticket or a server-side cache there is nothing to resume: openssl saves no
        // session, or one that the server does not take.
        if (fs::exists(session12)) {
            EXPECT_EQ(sClient(relay->httpsPort(), ca, "-tls1_2 -sess_in " + session12.string()).line, "New, TLSv1.2");
        }

        // An in-place upgrade (another build): tokens and sessions stay valid.
        t = token(*relay, "resp-A", "cred-A7hQ");
        CommandResult up =
            runCommand(std::string("RELAYPRO_ENV_FILE=") + (tmp_ / "environment.conf").string() + " " +
                       RELAYPRO_BINARY + " upgrade --config " + (tmp_ / "config.yml").string() + " 2>&1");
        ASSERT_EQ(up.exitCode, 0) << up.out << readText(relay->logFile());
        EXPECT_EQ(connectWith(relay->httpsPort(), t).first, 200) << "a token survives an upgrade";
        EXPECT_EQ(sClient(relay->httpsPort(), ca, "-tls1_3 -sess_in " + session.string()).line, "Reused, TLSv1.3");
        EXPECT_EQ(relay->stop(), 0);
    }
    auto relay = start();
    fs::path ca = fetchCa(*relay);
    EXPECT_EQ(sClient(relay->httpsPort(), ca, "-tls1_3 -sess_in " + session.string()).line, "Reused, TLSv1.3")
        << "a session survives a restart";
    EXPECT_EQ(connectWith(relay->httpsPort(), t).first, 200);
}

}  // namespace
}  // namespace relaypro::testing
