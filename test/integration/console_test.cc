// Registration, heartbeat and migration against the console simulator (console-api.md), with
// real HTTPS, a real squid for proxyEnabled, and config.yml checked byte for byte.
#include "test/support/console.h"

#include <gtest/gtest.h>
#include <jansson.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "test/support/net.h"
#include "test/support/notify.h"
#include "test/support/process.h"
#include "test/support/relay.h"
#include "test/support/secrets.h"
#include "test/support/squid.h"
#include "test/support/test_files.h"

namespace relaypro::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr const char* kRegister = "/api/public/relay-pro/register";
constexpr const char* kHeartbeat = "/api/public/relay-pro/heartbeat";

std::string member(const std::string& json, const char* name) {
    json_error_t err;
    json_t* j = json_loads(json.c_str(), 0, &err);
    json_t* v = json_object_get(j, name);
    std::string out;
    if (json_is_string(v)) {
        out = json_string_value(v);
    } else if (json_is_integer(v)) {
        out = std::to_string(json_integer_value(v));
    }
    json_decref(j);
    return out;
}

std::string fingerprintHex(const fs::path& pem) {
    std::string line = commandOutput("openssl x509 -noout -fingerprint -sha256 -in " + pem.string());
    std::string hex;
    for (char c : line.substr(line.find('=') + 1)) {
        if (c != ':') hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    return hex;
}

// Lines of `text` without those whose key (at column 0) is one of `keys`.
std::string withoutKeys(const std::string& text, const std::vector<std::string>& keys) {
    std::string out;
    for (const auto& line : splitLines(text)) {
        bool drop = false;
        for (const auto& k : keys) drop = drop || line.rfind(k + ":", 0) == 0;
        if (!drop) out += line + "\n";
    }
    return out;
}

class ConsoleTest : public ::testing::Test {
protected:
    std::unique_ptr<Relay> start(const std::string& config, std::map<std::string, std::string> env = {}) {
        fs::path file = tmp_ / "config.yml";
        auto r = std::make_unique<Relay>(tmp_, config, env);
        EXPECT_TRUE(r->ready()) << r->stderrText() << readText(r->logFile());
        return r;
    }
    int tokenStatus(const Relay& r, const std::string& id, const std::string& credential, std::string* body = nullptr,
                    std::string* headers = nullptr) {
        writeText(tmp_ / "body.json", R"({"responderId":")" + id + R"(","credential":")" + credential + R"("})");
        CommandResult c = runCommand("curl -s -k -D " + (tmp_ / "headers.txt").string() +
                                     " -w '\\n%{http_code}' -H 'Content-Type: application/json' --data-binary @" +
                                     (tmp_ / "body.json").string() +
                                     " https://127.0.0.1:" + std::to_string(r.httpsPort()) + "/relaypro/v1/token");
        size_t nl = c.out.rfind('\n');
        if (body != nullptr) *body = c.out.substr(0, nl);
        if (headers != nullptr) *headers = readText(tmp_ / "headers.txt");
        return std::atoi(c.out.c_str() + nl + 1);
    }
    TempDir tmp_;
};

// A fresh installation: the AIR_* inputs name the console, the organization and the deployment
// token; RelayPro registers and stores what the console gave it, and nothing else changes.
TEST_F(ConsoleTest, FreshStartRegistersAndStoresOnlyWhatTheConsoleGave) {
    ConsoleSim console(tmp_.path());
    ASSERT_TRUE(console.started());
    console.setState(R"({"responders": {"resp-A": "cred-A7hQ"}})");
    const std::string original =
        "# RelayPro, as the installer wrote it.\n"
        "httpsProxy:\n"
        "  listen: \"127.0.0.1:0\"   # loopback for this test\n"
        "\n"
        "serverName: \"127.0.0.1\"\n"
        "deploymentToken: \"dt-Wq83nLp\"  # used once\n"
        "# the end\n";
    writeText(tmp_ / "config.yml", original);
    ::chmod((tmp_ / "config.yml").c_str(), 0600);
    auto relay = std::make_unique<Relay>(tmp_, original,
                                         std::map<std::string, std::string>{
                                             {"AIR_CONSOLE_ADDRESS", console.address()},
                                             {"AIR_ORGANIZATION_ID", "1"},
                                             {"AIR_CONSOLE_CA_CERT", console.certFile().string()},
                                         });
    ASSERT_TRUE(relay->ready()) << relay->stderrText();
    ASSERT_TRUE(relay->waitForLog("registered")) << readText(relay->logFile());

    // config.yml: the deploymentToken line went, relayProId/relayId/registeredTo/securityToken
    // came, every other byte (comments, blank line, order) is as it was; the mode stays 0600.
    std::string now = readText(tmp_ / "config.yml");
    EXPECT_EQ(withoutKeys(now, {"relayProId", "relayId", "registeredTo", "securityToken"}),
              withoutKeys(original, {"deploymentToken"}));
    EXPECT_EQ(now.find("dt-Wq83nLp"), std::string::npos);
    EXPECT_NE(now.find("\nrelayId: 3\n"), std::string::npos) << now;
    EXPECT_NE(now.find("\nregisteredTo: \"" + console.address() + "\"\n"), std::string::npos) << now;
    EXPECT_NE(now.find("\nsecurityToken: \"st-"), std::string::npos) << now;
    EXPECT_NE(now.find("\nrelayProId: \""), std::string::npos) << now;
    struct stat st {};
    ASSERT_EQ(::stat((tmp_ / "config.yml").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);

    // What the console received.
    auto calls = console.journal();
    ASSERT_FALSE(calls.empty());
    const ConsoleCall& reg = calls.front();
    EXPECT_EQ(reg.path, kRegister);
    EXPECT_EQ(reg.authorization, "Bearer dt-Wq83nLp");
    EXPECT_EQ(reg.userAgent.rfind("RelayPro/0.", 0), 0u) << reg.userAgent;
    EXPECT_EQ(member(reg.body, "organizationId"), "1");
    EXPECT_EQ(member(reg.body, "os"), "linux");
    EXPECT_EQ(member(reg.body, "arch"), "amd64");
    EXPECT_FALSE(member(reg.body, "hostname").empty());
    EXPECT_FALSE(member(reg.body, "version").empty());
    const fs::path bundle = tmp_ / "private" / "ca-bundle.pem";
    EXPECT_EQ(member(reg.body, "caFingerprint"), fingerprintHex(bundle));
    EXPECT_EQ(member(reg.body, "caCertificate"), commandOutput("openssl x509 -in " + bundle.string()) + "\n");
    std::string relayProId = member(reg.body, "relayProId");
    EXPECT_NE(now.find("relayProId: \"" + relayProId + "\""), std::string::npos);

    // Then heartbeats with the new security token, and Responders get tokens.
    std::string securityToken = now.substr(now.find("securityToken: \"") + 16);
    securityToken = securityToken.substr(0, securityToken.find('"'));
    noteSecret(securityToken);
    ASSERT_TRUE(eventually([&] { return console.count(kHeartbeat) >= 1; }));
    for (const auto& c : console.journal()) {
        if (c.path != kHeartbeat) continue;
        EXPECT_EQ(c.authorization, "Bearer " + securityToken);
        EXPECT_EQ(member(c.body, "relayId"), "3");
        EXPECT_EQ(member(c.body, "caFingerprint"), fingerprintHex(bundle));
        EXPECT_EQ(member(c.body, "relayProId"), relayProId);
        EXPECT_NE(member(c.body, "workers"), "0");
    }
    EXPECT_EQ(tokenStatus(*relay, "resp-A", "cred-A7hQ"), 200);
    std::string log = readText(relay->logFile());
    EXPECT_EQ(log.find("dt-Wq83nLp"), std::string::npos);
    EXPECT_EQ(log.find(securityToken), std::string::npos) << "no security token in the log";

    // A restart does not register again.
    EXPECT_EQ(relay->stop(), 0);
    relay = std::make_unique<Relay>(tmp_, readText(tmp_ / "config.yml"),
                                    std::map<std::string, std::string>{
                                        {"AIR_CONSOLE_ADDRESS", console.address()},
                                        {"AIR_ORGANIZATION_ID", "1"},
                                        {"AIR_CONSOLE_CA_CERT", console.certFile().string()},
                                        {"AIR_DEPLOYMENT_TOKEN", "dt-Wq83nLp"},
                                    });
    ASSERT_TRUE(relay->ready());
    EXPECT_EQ(tokenStatus(*relay, "resp-A", "cred-A7hQ"), 200);
    EXPECT_EQ(console.count(kRegister), 1u);
}

// The console answers 503 four times: the relay serves Basic meanwhile, the token endpoint
// answers 503 with Retry-After, the attempts come at growing intervals, and the fifth succeeds
// without a restart.
TEST_F(ConsoleTest, ConsoleDownAtStartRetriesWithGrowingIntervals) {
    ConsoleSim console(tmp_.path());
    ASSERT_TRUE(console.started());
    console.setState(R"({"responders": {"resp-A": "cred-A7hQ"}, "failNext": 4})");
    writeText(tmp_ / "passwords.txt", kPasswordLine);
    auto relay = start("consoleAddress: \"" + console.address() +
                       "\"\norganizationId: 1\ndeploymentToken: \"dt-Wq83nLp\"\nserverName: \"127.0.0.1\"\n"
                       "passwordFile: passwords.txt\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\n" +
                       console.caYaml());
    Client c;
    ASSERT_TRUE(c.connect("127.0.0.1", relay->httpsPort(), true));
    ASSERT_TRUE(
        c.send("CONNECT " + console.address() + " HTTP/1.1\r\nProxy-Authorization: " + basicCredential() + "\r\n\r\n"));
    EXPECT_EQ(statusOf(c.readHead()), 200) << "Basic works while registration retries";
    std::string body, headers;
    EXPECT_EQ(tokenStatus(*relay, "resp-A", "cred-A7hQ", &body, &headers), 503);
    EXPECT_EQ(member(body, "error"), "not_registered");
    EXPECT_NE(headers.find("Retry-After: "), std::string::npos);

    ASSERT_TRUE(relay->waitForLog("registered", {}, 60s)) << readText(relay->logFile());
    std::vector<double> times;
    for (const auto& call : console.journal()) {
        if (call.path == kRegister) times.push_back(call.time);
    }
    ASSERT_EQ(times.size(), 5u);
    for (size_t i = 2; i < times.size(); ++i) {
        EXPECT_GE(times[i] - times[i - 1], times[i - 1] - times[i - 2] - 0.05) << "interval " << i;
    }
    EXPECT_GT(times[4] - times[3], 2 * (times[1] - times[0]) - 0.05);
    EXPECT_EQ(tokenStatus(*relay, "resp-A", "cred-A7hQ"), 200) << "no restart needed";
}

// A refused deployment token: one clear error naming the fix, no retry storm; a reload with a
// good token (environment file) registers.
TEST_F(ConsoleTest, ABadDeploymentTokenIsOneErrorThenAReloadFixesIt) {
    ConsoleSim console(tmp_.path());
    ASSERT_TRUE(console.started());
    writeText(tmp_ / "environment.conf", "AIR_DEPLOYMENT_TOKEN=dt-wrong\n");
    auto relay = start("consoleAddress: \"" + console.address() +
                       "\"\norganizationId: 1\nserverName: \"127.0.0.1\"\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\n" +
                       console.caYaml());
    ASSERT_TRUE(
        relay->waitForLog("the console refused the deployment token (HTTP 401); get a new deployment token "
                          "from the console, set it as AIR_DEPLOYMENT_TOKEN (or deploymentToken in "
                          "config.yml) and reload; retrying every 5 minutes"))
        << readText(relay->logFile());
    // Give a storm the time to show: it would have sent several by now.
    std::this_thread::sleep_for(3s);
    EXPECT_EQ(console.count(kRegister), 1u);
    EXPECT_EQ(readText(relay->logFile()).find("dt-wrong"), std::string::npos);

    writeText(tmp_ / "environment.conf", "AIR_DEPLOYMENT_TOKEN=dt-Wq83nLp\n");
    relay->signal(SIGHUP);
    ASSERT_TRUE(relay->waitForLog("registered")) << readText(relay->logFile());
    EXPECT_EQ(console.count(kRegister), 2u);
}

// consoleCACert decides whom RelayPro trusts: a console certificate from another CA is refused.
// With proxyEnabled the API calls go through a real squid, and NO_PROXY bypasses it.
TEST_F(ConsoleTest, ConsoleCertificateIsCheckedAndTheProxyIsUsedUnlessBypassed) {
    ConsoleSim console(tmp_.path());
    ASSERT_TRUE(console.started());
    // Another CA.
    commandOutput(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=other "
        "-keyout " +
        (tmp_ / "other.key").string() + " -out " + (tmp_ / "other.pem").string() + " 2>/dev/null");
    std::string otherYaml = "consoleCACert: |\n";
    for (const auto& line : splitLines(readText(tmp_ / "other.pem"))) otherYaml += "  " + line + "\n";
    const std::string base = "consoleAddress: \"" + console.address() +
                             "\"\norganizationId: 1\ndeploymentToken: \"dt-Wq83nLp\"\nserverName: \"127.0.0.1\"\n"
                             "httpsProxy:\n  listen: \"127.0.0.1:0\"\n";
    {
        auto relay = start(base + otherYaml);
        // A failure that names the certificate (on a loaded machine an attempt may first fail
        // otherwise, a timeout say; the next one names it).
        EXPECT_TRUE(eventually(
            [&] {
                for (const auto& l : relay->log()) {
                    if (l["msg"] == "registration failed; retrying" &&
                        l["error"].find("certificate") != std::string::npos) {
                        return true;
                    }
                }
                return false;
            },
            30s))
            << readText(relay->logFile());
        EXPECT_EQ(console.count(kRegister), 0u) << "no request reached a console it does not trust";
        relay->stop();
    }
    if (::access("/usr/sbin/squid", X_OK) != 0) GTEST_SKIP() << "squid is not installed (packaging/install-deps.sh)";
    Squid squid(tmp_, false);
    ASSERT_TRUE(squid.ready()) << squid.errors();
    const std::string proxy = "http://127.0.0.1:" + std::to_string(squid.port());
    {
        TempDir second;
        auto relay = std::make_unique<Relay>(second, base + "proxyEnabled: true\n" + console.caYaml(),
                                             std::map<std::string, std::string>{{"HTTPS_PROXY", proxy}});
        ASSERT_TRUE(relay->ready());
        ASSERT_TRUE(relay->waitForLog("registered")) << readText(relay->logFile());
        relay->stop();  // squid logs a CONNECT when its tunnel ends; libcurl keeps it open until then
        EXPECT_TRUE(eventually(
            [&] { return squid.accessLog().find("CONNECT " + console.address()) != std::string::npos; }, 10s))
            << squid.accessLog();
    }
    std::string before = squid.accessLog();
    {
        TempDir third;
        auto relay = std::make_unique<Relay>(
            third, base + "proxyEnabled: true\n" + console.caYaml(),
            std::map<std::string, std::string>{{"HTTPS_PROXY", proxy}, {"NO_PROXY", "127.0.0.1"}});
        ASSERT_TRUE(relay->ready());
        ASSERT_TRUE(relay->waitForLog("registered")) << readText(relay->logFile());
        relay->stop();
    }
    EXPECT_EQ(console.count(kRegister), 2u);
    std::this_thread::sleep_for(200ms);  // squid logs a CONNECT when it ends; there must be none
    EXPECT_EQ(squid.accessLog(), before);
}

// Heartbeats bring a migration (tunnels to the migration address work until validUntilAt, then
// get 403) and a revocation (the token endpoint and Bearer answer 503, open tunnels flow on).
TEST_F(ConsoleTest, HeartbeatMigrationAndRevocation) {
    ConsoleSim::Options o;
    o.host = privateLoopback();
    o.plainHttp = true;
    o.httpPort = 80;  // a private loopback address of this test's own: port 80 is free
    ConsoleSim console(tmp_.path(), o);
    ASSERT_TRUE(console.started()) << console.output();
    console.setState(R"({"responders": {"resp-A": "cred-A7hQ"}})");
    TestServer next(false, TestServer::echo(), "127.0.0.1");
    const std::string nextAddress = "127.0.0.1:" + std::to_string(next.port());
    auto relay =
        start(console.registeredConfig() + "serverName: \"127.0.0.1\"\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\n",
              {{"RELAYPRO_TEST_HOOKS", "1"}, {"RELAYPRO_TEST_HEARTBEAT_MS", "300"}});
    auto connect = [&](const std::string& target, const std::string& auth) {
        auto c = std::make_unique<Client>();
        EXPECT_TRUE(c->connect("127.0.0.1", relay->httpsPort(), true));
        c->send("CONNECT " + target + " HTTP/1.1\r\nProxy-Authorization: " + auth + "\r\n\r\n");
        return std::make_pair(statusOf(c->readHead()), std::move(c));
    };
    std::string body;
    ASSERT_EQ(tokenStatus(*relay, "resp-A", "cred-A7hQ", &body), 200);
    const std::string bearer = "Bearer " + member(body, "token");
    EXPECT_EQ(connect(nextAddress, bearer).first, 403) << "no migration yet";

    const auto until = std::chrono::system_clock::now() + 10s;
    const std::time_t untilT = std::chrono::system_clock::to_time_t(until);
    char untilText[32];
    std::strftime(untilText, sizeof untilText, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&untilT));
    console.setState(R"({"responders": {"resp-A": "cred-A7hQ"}, "migration": {"consoleAddress": ")" + nextAddress +
                     R"(", "validUntilAt": ")" + untilText + R"("}})");
    ASSERT_TRUE(relay->waitForLog("migration applied")) << readText(relay->logFile());
    auto [status, tunnel] = connect(nextAddress, bearer);
    EXPECT_EQ(status, 200) << "the migration address is allowed";
    ASSERT_TRUE(tunnel->send("to the new console"));
    EXPECT_EQ(tunnel->readExactly(18), "to the new console");
    std::string config = readText(tmp_ / "config.yml");
    EXPECT_NE(config.find("consoleAddress: \"" + nextAddress + "\""), std::string::npos) << config;
    EXPECT_NE(config.find(std::string("validUntilAt: \"") + untilText + "\""), std::string::npos) << config;
    // After validUntilAt: 403 again.
    EXPECT_TRUE(eventually([&] { return connect(nextAddress, bearer).first == 403; }, 30s));

    // A tunnel to the console's port 80, then the console revokes this relay.
    auto [status80, open] = connect(console.host() + ":80", bearer);
    ASSERT_EQ(status80, 200);
    ASSERT_TRUE(open->send("GET / HTTP/1.1\r\nHost: console\r\n\r\n"));
    std::string head = open->readHead();
    ASSERT_EQ(statusOf(head), 200) << head;
    open->readExactly(std::stoul(headerOf(head, "Content-Length")));
    console.setState(R"({"responders": {"resp-A": "cred-A7hQ"}, "revoked": true})");
    ASSERT_TRUE(
        relay->waitForLog("the console revoked this RelayPro (401/403); a new deployment token is needed to "
                          "register again",
                          {{"during", "heartbeat"}}))
        << readText(relay->logFile());
    EXPECT_EQ(tokenStatus(*relay, "resp-A", "cred-A7hQ", &body), 503);
    EXPECT_EQ(member(body, "error"), "not_registered");
    EXPECT_EQ(connect(console.host() + ":80", bearer).first, 503);
    // The open tunnel still carries requests.
    ASSERT_TRUE(open->send("GET /again HTTP/1.1\r\nHost: console\r\n\r\n"));
    head = open->readHead();
    EXPECT_EQ(statusOf(head), 200) << head;
}

// lifecycle.md, STATUS line: "serving; 2 workers; 1234 tunnels; registered as relay 3 to
// console.example.com" — the relay id and the console (issue 18).
TEST_F(ConsoleTest, TheStatusLineNamesTheRelayIdAndTheConsole) {
    ConsoleSim console(tmp_.path());
    ASSERT_TRUE(console.started());
    NotifyHarness harness(tmp_ / "notify.sock");
    auto relay = start(console.registeredConfig() + "workers: 2\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\n",
                       {{"NOTIFY_SOCKET", (tmp_ / "notify.sock").string()}});
    ASSERT_TRUE(eventually([&] { return !harness.with("READY=1").empty(); }));
    const std::string ready = harness.with("READY=1").front().text;
    EXPECT_NE(
        ready.find("\nSTATUS=serving; 2 workers; 0 tunnels; registered as relay 3 to " + console.address() + "\n"),
        std::string::npos)
        << ready;
}

// Issue 18 (config.md: "organizationId changes take effect at the next registration"): a reload
// that changes organizationId keeps the one in use — tokens issued before go on working and the
// console's verify answers still match — and warns that it needs a registration; a deployment
// token given later starts that registration with the new id, which applies once it succeeds.
TEST_F(ConsoleTest, ANewOrganizationIdWaitsForTheNextRegistration) {
    ConsoleSim console(tmp_.path());
    ASSERT_TRUE(console.started());
    console.setState(R"({"responders": {"resp-A": "cred-A7hQ"}, "organizationId": 1})");
    auto relay =
        start(console.registeredConfig(1) + "serverName: \"127.0.0.1\"\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\n");
    auto connectStatus = [&](const std::string& bearer) {
        Client c;
        EXPECT_TRUE(c.connect("127.0.0.1", relay->httpsPort(), true));
        c.send("CONNECT " + console.address() + " HTTP/1.1\r\nProxy-Authorization: " + bearer + "\r\n\r\n");
        return statusOf(c.readHead());
    };
    auto reloadWith = [&](const std::string& from, const std::string& to) {
        std::string text = readText(tmp_ / "config.yml");
        text.replace(text.find(from), from.size(), to);
        writeText(tmp_ / "config.yml", text);
        size_t reloads = 0;
        for (const auto& l : relay->log()) reloads += l["msg"] == "reload" ? 1U : 0U;
        relay->signal(SIGHUP);
        return eventually([&] {
            size_t n = 0;
            for (const auto& l : relay->log()) n += l["msg"] == "reload" ? 1U : 0U;
            return n > reloads;
        });
    };
    std::string body;
    ASSERT_EQ(tokenStatus(*relay, "resp-A", "cred-A7hQ", &body), 200);
    const std::string bearer = "Bearer " + member(body, "token");
    ASSERT_EQ(connectStatus(bearer), 200);

    ASSERT_TRUE(reloadWith("organizationId: 1", "organizationId: 2")) << readText(relay->logFile());
    EXPECT_TRUE(
        relay->waitForLog("organizationId changed; takes effect at the next registration, which needs a "
                          "deployment token (AIR_DEPLOYMENT_TOKEN or deploymentToken)",
                          {{"level", "warn"}}))
        << readText(relay->logFile());
    std::this_thread::sleep_for(200ms);  // the settings reach the workers
    EXPECT_EQ(connectStatus(bearer), 200) << "a token of the organization in use still works";
    EXPECT_EQ(tokenStatus(*relay, "resp-A", "cred-A7hQ", &body), 200) << body;
    EXPECT_EQ(console.count(kRegister), 0u);

    // The console moved this relay to organization 2 and gave a deployment token: the reload
    // that brings it registers with organizationId 2, which then applies.
    console.setState(R"({"responders": {"resp-A": "cred-A7hQ"}, "organizationId": 2})");
    ASSERT_TRUE(reloadWith("organizationId: 2", "organizationId: 2\ndeploymentToken: \"dt-Wq83nLp\""));
    ASSERT_TRUE(relay->waitForLog("organizationId applied with the registration", {{"organizationId", "2"}}))
        << readText(relay->logFile());
    ASSERT_EQ(console.count(kRegister), 1u);
    for (const auto& c : console.journal()) {
        if (c.path == kRegister) {
            EXPECT_EQ(member(c.body, "organizationId"), "2");
        }
    }
    // The new settings reach the workers: a token of the old organization is refused from then on.
    EXPECT_TRUE(eventually([&] { return connectStatus(bearer) == 407; })) << "a token of the old organization";
    EXPECT_EQ(tokenStatus(*relay, "resp-A", "cred-A7hQ", &body), 200) << body;
    EXPECT_EQ(connectStatus("Bearer " + member(body, "token")), 200);
    EXPECT_EQ(readText(tmp_ / "config.yml").find("dt-Wq83nLp"), std::string::npos);
}

}  // namespace
}  // namespace relaypro::testing
