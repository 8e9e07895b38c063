// The relay with real third-party peers on loopback: a real nats-server behind a tunnel, and a
// real squid as the upstream proxy (proxyEnabled + HTTPS_PROXY, NO_PROXY, squid's own 407).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <memory>

#include "test/support/net.h"
#include "test/support/process.h"
#include "test/support/relay.h"
#include "test/support/secrets.h"
#include "test/support/squid.h"
#include "test/support/test_files.h"

namespace relaypro::testing {
namespace {

using namespace std::chrono_literals;

bool portOpen(const std::string& host, uint16_t port) {
    int fd = connectTo(host, port, 200ms);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

class Peers : public ::testing::Test {
protected:
    void SetUp() override { writeText(tmp_ / "passwords.txt", kPasswordLine); }

    std::unique_ptr<Relay> relay(const std::string& consoleAddress, const std::string& hosts,
                                 const std::string& extraYaml = "", std::map<std::string, std::string> env = {}) {
        writeText(tmp_ / "hosts", hosts);
        env.emplace("RELAYPRO_HOSTS_FILE", (tmp_ / "hosts").string());
        auto r = std::make_unique<Relay>(
            tmp_,
            "consoleAddress: \"" + consoleAddress +
                "\"\norganizationId: 1\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\npasswordFile: passwords.txt\n" +
                extraYaml,
            env);
        EXPECT_TRUE(r->ready()) << r->stderrText() << readText(r->logFile());
        return r;
    }

    static void connect(Client& c, const Relay& r, const std::string& target, int expect = 200) {
        ASSERT_TRUE(c.connect("127.0.0.1", r.httpsPort(), true));
        ASSERT_TRUE(c.send("CONNECT " + target + " HTTP/1.1\r\nHost: " + target +
                           "\r\nProxy-Authorization: " + basicCredential() + "\r\n\r\n"));
        std::string head = c.readHead();
        ASSERT_EQ(statusOf(head), expect) << head;
    }

    TempDir tmp_;
};

TEST_F(Peers, NatsServerOnTheConsolePort4222ThroughATunnel) {
    if (::access("/usr/sbin/nats-server", X_OK) != 0)
        GTEST_SKIP() << "nats-server is not installed (packaging/install-deps.sh)";
    std::string ip = privateLoopback();
    ChildProcess nats = ChildProcess::spawn({"/usr/sbin/nats-server", "-a", ip, "-p", "4222"},
                                            {{"PATH", "/usr/bin:/bin"}}, tmp_ / "nats.out", tmp_ / "nats.err");
    ASSERT_TRUE(eventually([&] { return portOpen(ip, 4222); })) << readText(tmp_ / "nats.err");
    auto r = relay("nats.test", ip + " nats.test\n");
    Client c;
    connect(c, *r, "nats.test:4222");
    std::string info = c.recv(4096);
    ASSERT_EQ(info.rfind("INFO {", 0), 0u) << info;
    ASSERT_TRUE(c.send("CONNECT {\"verbose\":false,\"pedantic\":false}\r\nPING\r\n"));
    EXPECT_EQ(c.readExactly(6), "PONG\r\n");
    ASSERT_TRUE(c.send("SUB greetings 1\r\nPUB greetings 5\r\nhello\r\nPING\r\n"));
    EXPECT_EQ(c.readExactly(std::string("MSG greetings 1 5\r\nhello\r\nPONG\r\n").size()),
              "MSG greetings 1 5\r\nhello\r\nPONG\r\n");
    c.close();
    EXPECT_TRUE(r->waitForLog("tunnel closed", {{"target", "nats.test:4222"}}));
    nats.stop(SIGTERM);
}

TEST_F(Peers, TunnelsGoThroughSquidUnlessNoProxySaysOtherwise) {
    if (::access("/usr/sbin/squid", X_OK) != 0) GTEST_SKIP() << "squid is not installed (packaging/install-deps.sh)";
    Squid squid(tmp_, false);
    ASSERT_TRUE(squid.ready()) << squid.errors();
    TestServer console(false, TestServer::echo());
    std::string target = "localhost:" + std::to_string(console.port());  // a name squid resolves too
    {
        auto r = relay(target, "127.0.0.1 localhost\n", "proxyEnabled: true\n",
                       {{"HTTPS_PROXY", "http://127.0.0.1:" + std::to_string(squid.port())}});
        Client c;
        connect(c, *r, target);
        ASSERT_TRUE(c.send("through squid"));
        EXPECT_EQ(c.readExactly(13), "through squid");
        c.close();
        ASSERT_TRUE(eventually([&] { return squid.accessLog().find("CONNECT " + target) != std::string::npos; }, 10s))
            << squid.accessLog() << squid.errors();
        r->stop();
    }
    std::string before = squid.accessLog();
    {
        auto r =
            relay(target, "127.0.0.1 localhost\n", "proxyEnabled: true\n",
                  {{"HTTPS_PROXY", "http://127.0.0.1:" + std::to_string(squid.port())}, {"NO_PROXY", "localhost"}});
        Client c;
        connect(c, *r, target);
        ASSERT_TRUE(c.send("direct"));
        EXPECT_EQ(c.readExactly(6), "direct");
        c.close();
        r->stop();
    }
    std::this_thread::sleep_for(200ms);  // squid writes its log lines as requests end; there must be none
    EXPECT_EQ(squid.accessLog(), before);
    EXPECT_EQ(console.connections(), 2);
}

// The upstream proxy dies (SIGKILL): the tunnels through it end, new CONNECTs get 502
// upstream_unreachable with the reason logged, and the relay itself serves on.
// An https:// upstream proxy (here a second RelayPro) is checked against the system's trust store
// (common/trust_store; SSL_CERT_FILE stands for the system's bundle), which the worker reads
// before its sandbox closes the file system: with the proxy's CA in the store the tunnel goes
// through; with another CA there it is a 502, and no tunnel reaches the proxy.
TEST_F(Peers, AnHttpsProxyIsCheckedAgainstTheSystemTrustStore) {
    TestServer console(false, TestServer::echo());
    std::string target = "localhost:" + std::to_string(console.port());
    TempDir upstreamDir;
    writeText(upstreamDir.path() / "passwords.txt", kPasswordLine);
    writeText(tmp_ / "hosts", "127.0.0.1 localhost\n");
    Relay upstream(upstreamDir,
                   "consoleAddress: \"" + target +
                       "\"\norganizationId: 1\nserverName: 127.0.0.1\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\n"
                       "passwordFile: passwords.txt\n",
                   {{"RELAYPRO_HOSTS_FILE", (tmp_ / "hosts").string()}});
    ASSERT_TRUE(upstream.ready()) << upstream.stderrText();
    CommandResult ca =
        runCommand("curl -sk https://127.0.0.1:" + std::to_string(upstream.httpsPort()) + "/relaypro/v1/ca.pem");
    ASSERT_NE(ca.out.find("BEGIN CERTIFICATE"), std::string::npos) << ca.out;
    writeText(tmp_ / "upstream-ca.pem", ca.out);
    ASSERT_EQ(runCommand("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
                         "-subj /CN=Another -keyout " +
                         (tmp_ / "other.key").string() + " -out " + (tmp_ / "other-ca.pem").string() + " 2>/dev/null")
                  .exitCode,
              0);
    const std::string proxy = "https://" + kUserPass + "@127.0.0.1:" + std::to_string(upstream.httpsPort());
    {
        auto r = relay(target, "127.0.0.1 localhost\n", "proxyEnabled: true\n",
                       {{"HTTPS_PROXY", proxy}, {"SSL_CERT_FILE", (tmp_ / "upstream-ca.pem").string()}});
        Client c;
        connect(c, *r, target);
        ASSERT_TRUE(c.send("through an https proxy"));
        EXPECT_EQ(c.readExactly(22), "through an https proxy");
        c.close();
        EXPECT_TRUE(upstream.waitForLog("tunnel closed", {{"target", target}}, 10s)) << readText(upstream.logFile());
    }
    auto tunnelsOf = [](const Relay& r) {
        size_t n = 0;
        for (const auto& l : r.log()) n += l["msg"] == "tunnel closed" ? 1U : 0U;
        return n;
    };
    const size_t opened = tunnelsOf(upstream);
    {
        auto r = relay(target, "127.0.0.1 localhost\n", "proxyEnabled: true\n",
                       {{"HTTPS_PROXY", proxy}, {"SSL_CERT_FILE", (tmp_ / "other-ca.pem").string()}});
        Client c;
        connect(c, *r, target, 502);
        EXPECT_TRUE(r->waitForLog("request refused", {{"status", "502"}}, 10s)) << readText(r->logFile());
    }
    EXPECT_EQ(tunnelsOf(upstream), opened) << "a proxy whose certificate failed the check saw a CONNECT";
}

TEST_F(Peers, ADeadUpstreamProxyEndsItsTunnelsAndNewOnesGet502) {
    if (::access("/usr/sbin/squid", X_OK) != 0) GTEST_SKIP() << "squid is not installed (packaging/install-deps.sh)";
    Squid squid(tmp_, false);
    ASSERT_TRUE(squid.ready()) << squid.errors();
    TestServer console(false, TestServer::echo());
    std::string target = "localhost:" + std::to_string(console.port());
    auto r = relay(target, "127.0.0.1 localhost\n", "proxyEnabled: true\n",
                   {{"HTTPS_PROXY", "http://127.0.0.1:" + std::to_string(squid.port())}});
    Client c;
    connect(c, *r, target);
    ASSERT_TRUE(c.send("via squid"));
    ASSERT_EQ(c.readExactly(9), "via squid");
    squid.kill();
    EXPECT_TRUE(c.waitClosed()) << "the tunnel through the dead proxy ends";
    Client refused;
    connect(refused, *r, target, 502);
    EXPECT_TRUE(r->waitForLog("request refused", {{"status", "502"}, {"reason", "upstream_unreachable"}}));
    EXPECT_EQ(console.connections(), 1) << "only the first tunnel reached the console";
    // The relay itself is fine: its health endpoint answers.
    Client health;
    ASSERT_TRUE(health.connect("127.0.0.1", r->httpsPort(), true));
    ASSERT_TRUE(health.send("GET /relaypro/v1/health HTTP/1.1\r\nHost: x\r\n\r\n"));
    EXPECT_EQ(statusOf(health.readHead()), 200);
}

// An upstream proxy that accepts the connection, reads the CONNECT and never answers: the
// client gets 504 upstream_timeout at connectTimeout, and the relay lets the proxy go.
TEST_F(Peers, AProxyThatNeverAnswersTheConnectIs504AtConnectTimeout) {
    auto heads = std::make_shared<std::atomic<int>>(0);
    TestServer stalled(false, [heads](int fd, SSL* ssl) {
        if (!readRequestHead(fd, ssl).empty()) ++*heads;
        char b;
        while (::recv(fd, &b, 1, 0) > 0) {  // silent until the relay gives up and closes
        }
    });
    TestServer console(false, TestServer::echo());
    std::string target = "localhost:" + std::to_string(console.port());
    auto r = relay(target, "127.0.0.1 localhost\n", "proxyEnabled: true\nlimits:\n  connectTimeout: 500ms\n",
                   {{"HTTPS_PROXY", "http://127.0.0.1:" + std::to_string(stalled.port())}});
    Client c;
    connect(c, *r, target, 504);
    EXPECT_TRUE(r->waitForLog("request refused", {{"status", "504"}, {"reason", "upstream_timeout"}}));
    EXPECT_EQ(heads->load(), 1) << "the CONNECT reached the proxy";
    EXPECT_EQ(console.connections(), 0);
}

TEST_F(Peers, SquidsOwn407BecomesA502WithAClearLogLine) {
    if (::access("/usr/sbin/squid", X_OK) != 0) GTEST_SKIP() << "squid is not installed (packaging/install-deps.sh)";
    Squid squid(tmp_, true);
    ASSERT_TRUE(squid.ready()) << squid.errors();
    TestServer console(false, TestServer::echo());
    std::string target = "localhost:" + std::to_string(console.port());
    {
        auto r = relay(target, "127.0.0.1 localhost\n", "proxyEnabled: true\n",
                       {{"https_proxy", "http://127.0.0.1:" + std::to_string(squid.port())}});
        Client c;
        connect(c, *r, target, 502);
        EXPECT_TRUE(r->waitForLog("request refused", {{"status", "502"}, {"reason", "upstream_unreachable"}}));
        bool explained = false;
        for (const auto& l : r->log()) {
            explained = explained || l["detail"].find("status 407") != std::string::npos;
        }
        EXPECT_TRUE(explained);
        r->stop();
    }
    EXPECT_EQ(console.connections(), 0);
    // With the credentials in the proxy URL the same squid lets the tunnel through.
    auto r = relay(target, "127.0.0.1 localhost\n", "proxyEnabled: true\n",
                   {{"https_proxy", "http://sq:sqpass@127.0.0.1:" + std::to_string(squid.port())}});
    Client c;
    connect(c, *r, target);
    ASSERT_TRUE(c.send("authenticated"));
    EXPECT_EQ(c.readExactly(13), "authenticated");
    for (const auto& l : r->log()) EXPECT_EQ(l.text.find("sqpass"), std::string::npos);
}

}  // namespace
}  // namespace relaypro::testing
