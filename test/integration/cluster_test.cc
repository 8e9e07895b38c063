// Two RelayPro instances sharing one CA bundle behind a real HAProxy (TCP mode, round robin,
// send-proxy-v2) on loopback: a token issued by one instance tunnels through the other, a TLS
// session from one resumes on the other, and the access log shows the real client, not HAProxy.
#include <gtest/gtest.h>
#include <jansson.h>
#include <unistd.h>

#include <regex>

#include "test/support/console.h"
#include "test/support/net.h"
#include "test/support/process.h"
#include "test/support/relay.h"
#include "test/support/secrets.h"
#include "test/support/test_files.h"

namespace relaypro::testing {
namespace {

namespace fs = std::filesystem;

std::string tokenFrom(const std::string& json) {
    json_error_t err;
    json_t* j = json_loads(json.c_str(), 0, &err);
    const char* t = json_string_value(json_object_get(j, "token"));
    std::string out = t != nullptr ? t : "";
    json_decref(j);
    return out;
}

TEST(Cluster, TwoInstancesBehindHaproxyShareTokensSessionsAndSeeTheRealClient) {
    if (::access("/usr/sbin/haproxy", X_OK) != 0)
        GTEST_SKIP() << "haproxy is not installed (packaging/install-deps.sh)";
    TempDir shared, dirA, dirB;
    ConsoleSim console(shared.path());
    ASSERT_TRUE(console.started());
    console.setState(R"({"responders": {"resp-A": "cred-A7hQ"}})");
    const std::string front = privateLoopback();
    const std::string haproxySource = "127.0.0.2";
    std::map<std::string, std::string> env{{"RELAYPRO_CA_BUNDLE_FILE", (shared / "ca-bundle.pem").string()}};
    const std::string config = console.registeredConfig() + "serverName: \"" + front +
                               "\"\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\nproxyProtocol:\n  trustedSources: [\"" +
                               haproxySource + "/32\"]\n";
    Relay a(dirA, config, env);
    ASSERT_TRUE(a.ready()) << a.stderrText();
    Relay b(dirB, config, env);  // loads the bundle A created
    ASSERT_TRUE(b.ready()) << b.stderrText();

    writeText(shared / "haproxy.cfg",
              "global\n  maxconn 200\ndefaults\n  mode tcp\n  timeout connect 5s\n"
              "  timeout client 60s\n  timeout server 60s\nfrontend relays\n  bind " +
                  front +
                  ":9443\n  default_backend instances\nbackend instances\n"
                  "  balance roundrobin\n  server a 127.0.0.1:" +
                  std::to_string(a.httpsPort()) + " send-proxy-v2 source " + haproxySource + "\n  server b 127.0.0.1:" +
                  std::to_string(b.httpsPort()) + " send-proxy-v2 source " + haproxySource + "\n");
    ChildProcess haproxy =
        ChildProcess::spawn({"/usr/sbin/haproxy", "-db", "-f", (shared / "haproxy.cfg").string()},
                            {{"PATH", "/usr/bin:/bin"}}, shared / "haproxy.out", shared / "haproxy.err");
    ASSERT_TRUE(eventually([&] {
        int fd = connectTo(front, 9443, std::chrono::milliseconds(200));
        if (fd >= 0) ::close(fd);
        return fd >= 0;
    })) << readText(shared / "haproxy.err");

    const std::string url = "https://" + front + ":9443";
    const fs::path ca = shared / "ca.pem";
    // Connection 1 (instance a): the CA certificate, trusted from here on (the console pins it).
    ASSERT_EQ(runCommand("curl -s -k -o " + ca.string() + " " + url + "/relaypro/v1/ca.pem").exitCode, 0);
    // Connection 2 (b): a token.
    CommandResult t = runCommand("curl -s -S --cacert " + ca.string() +
                                 " -H 'Content-Type: application/json' --data '{\"responderId\":\"resp-A\","
                                 "\"credential\":\"cred-A7hQ\"}' " +
                                 url + "/relaypro/v1/token");
    std::string token = tokenFrom(t.out);
    ASSERT_FALSE(token.empty()) << t.out;
    // Connections 3 (a) and 4 (b): a tunnel to the console through each instance.
    for (int i = 0; i < 2; ++i) {
        CommandResult g = runCommand("curl -s -S -w ' %{http_code}' --proxy " + url + " --proxy-cacert " + ca.string() +
                                     " --proxy-header 'Proxy-Authorization: Bearer " + token + "' --cacert " +
                                     console.certFile().string() + " https://" + console.address() + "/hello 2>&1");
        EXPECT_NE(g.out.find(" 200"), std::string::npos) << i << ": " << g.out;
    }
    for (const Relay* r : {&a, &b}) {
        ASSERT_TRUE(r->waitForLog("tunnel closed", {{"responder", "resp-A"}})) << readText(r->logFile());
        for (const auto& l : r->log()) {
            if (l["msg"] != "tunnel closed") continue;
            // The client HAProxy reported, not HAProxy's own source address.
            EXPECT_EQ(l["client"].rfind("127.0.0.1:", 0), 0u) << l.text;
        }
    }
    // The token was issued by one instance and used on both.
    int issued = 0;
    for (const Relay* r : {&a, &b}) {
        for (const auto& l : r->log()) issued += l["msg"] == "token issued" ? 1 : 0;
    }
    EXPECT_EQ(issued, 1);

    // TLS: a session from one instance resumes on the other (round robin alternates).
    const fs::path session = shared / "session.pem";
    auto sClient = [&](const std::string& options) {
        CommandResult r = runCommand(
            "printf 'GET /relaypro/v1/health HTTP/1.1\\r\\nHost: r\\r\\nConnection: close\\r\\n\\r\\n' | timeout 20 "
            "openssl s_client -connect " +
            front + ":9443 -CAfile " + ca.string() + " -verify_return_error -ign_eof -tls1_3 " + options + " 2>&1");
        std::smatch m;
        return std::regex_search(r.out, m, std::regex(R"((New|Reused), TLSv1\.3)")) ? std::string(m[0]) : r.out;
    };
    EXPECT_EQ(sClient("-sess_out " + session.string()), "New, TLSv1.3");
    for (int i = 0; i < 4; ++i) EXPECT_EQ(sClient("-sess_in " + session.string()), "Reused, TLSv1.3") << i;
}

}  // namespace
}  // namespace relaypro::testing
