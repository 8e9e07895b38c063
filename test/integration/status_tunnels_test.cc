// `relaypro status --tunnels` (issue 18, part 2) against a real relay registered with the console
// simulator, behind a trusted balancer (every connection starts with a PROXY header, so the
// sources listed are the header's): a Bearer tunnel (its Responder id from the token) and a Basic
// one on the first generation's workers, which drain after an upgrade to relaypro-next, and a
// third tunnel on the new generation. The listing shows each with its source, port, worker, generation, state, age
// and bytes; sorting, limiting, the table and the usage errors are checked on the real command,
// and no token reaches the output or the log.
#include <gtest/gtest.h>
#include <jansson.h>

#include <chrono>
#include <filesystem>
#include <set>
#include <thread>

#include "test/support/console.h"
#include "test/support/net.h"
#include "test/support/process.h"
#include "test/support/relay.h"
#include "test/support/secrets.h"
#include "test/support/test_files.h"

namespace relaypro::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

class StatusTunnels : public ::testing::Test {
protected:
    void SetUp() override {
        writeText(dir_ / "passwords.txt", kPasswordLine);
        install(RELAYPRO_BINARY);
    }
    void install(const std::string& build) {
        fs::copy_file(build, dir_ / "installed.new", fs::copy_options::overwrite_existing);
        fs::permissions(dir_ / "installed.new", fs::perms::owner_all);
        fs::rename(dir_ / "installed.new", installed());
    }
    fs::path installed() const { return dir_ / "relaypro"; }
    std::map<std::string, std::string> env() const { return {{"RELAYPRO_INSTALLED_BINARY", installed().string()}}; }
    // The installed binary with `args` and this relay's config: exit code, stdout, stderr.
    struct Cli {
        int code;
        std::string out, err;
    };
    Cli cli(const std::vector<std::string>& args) {
        std::vector<std::string> argv{installed().string()};
        argv.insert(argv.end(), args.begin(), args.end());
        argv.push_back("--config");
        argv.push_back((dir_ / "config.yml").string());
        auto e = env();
        e["PATH"] = "/usr/bin:/bin";
        e["RELAYPRO_ENV_FILE"] = (dir_ / "environment.conf").string();
        ChildProcess p = ChildProcess::spawn(argv, e, dir_ / "cli.out", dir_ / "cli.err");
        int code = p.wait(120s);
        return {code, readText(dir_ / "cli.out"), readText(dir_ / "cli.err")};
    }
    std::string token(const Relay& r) {
        writeText(dir_ / "body.json", R"({"responderId":"resp-A","credential":"cred-A7hQ"})");
        CommandResult c =
            runCommand("curl -s -k --haproxy-protocol -H 'Content-Type: application/json' --data-binary @" +
                       (dir_ / "body.json").string() + " https://127.0.0.1:" + std::to_string(r.httpsPort()) +
                       "/relaypro/v1/token");
        json_error_t err;
        json_t* j = json_loads(c.out.c_str(), 0, &err);
        std::string t = j != nullptr && json_string_value(json_object_get(j, "token")) != nullptr
                            ? json_string_value(json_object_get(j, "token"))
                            : "";
        if (j != nullptr) json_decref(j);
        return t;
    }
    // A tunnel to the echo server through the relay from `source` (the balancer's PROXY header
    // says so), `bytes` sent and echoed.
    std::unique_ptr<Client> tunnel(const Relay& r, const std::string& authorization, size_t bytes,
                                   const std::string& source) {
        auto c = std::make_unique<Client>();
        const std::string ip = source.substr(0, source.find(':'));
        const std::string port = source.substr(source.find(':') + 1);
        EXPECT_TRUE(c->connect("127.0.0.1", r.httpsPort(), true, {}, "http/1.1",
                               "PROXY TCP4 " + ip + " 127.0.0.1 " + port + " 443\r\n"));
        c->send("CONNECT " + host_ + ":4222 HTTP/1.1\r\nProxy-Authorization: " + authorization + "\r\n\r\n");
        EXPECT_EQ(statusOf(c->readHead()), 200);
        std::string data(bytes, 'x');
        EXPECT_TRUE(c->send(data));
        EXPECT_EQ(c->readExactly(bytes), data);
        return c;
    }

    TempDir dir_;
    std::string host_ = privateLoopback();
};

TEST_F(StatusTunnels, ListsTunnelsOfADrainingAndAServingGeneration) {
    ConsoleSim::Options o;
    o.host = host_;
    ConsoleSim console(dir_.path(), o);
    ASSERT_TRUE(console.started()) << console.output();
    console.setState(R"({"responders": {"resp-A": "cred-A7hQ"}})");
    TestServer echo(false, TestServer::echo(), host_, 4222);
    Relay relay(dir_,
                console.registeredConfig() +
                    "serverName: \"127.0.0.1\"\nworkers: 2\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\n"
                    "passwordFile: passwords.txt\nproxyProtocol:\n  trustedSources: [\"127.0.0.1/32\"]\n",
                env(), {}, installed().string());
    ASSERT_TRUE(relay.ready()) << relay.stderrText() << readText(relay.logFile());

    // Nothing open yet: an empty list, every worker listed.
    Cli empty = cli({"status", "--tunnels"});
    ASSERT_EQ(empty.code, 0) << empty.err;
    EXPECT_NE(empty.out.find("RESPONDER"), std::string::npos) << empty.out;
    EXPECT_NE(empty.out.find("\n0 tunnels\n"), std::string::npos) << empty.out;

    const std::string bearer = token(relay);
    ASSERT_FALSE(bearer.empty());
    const std::string sources[] = {"198.51.100.1:50001", "198.51.100.2:50002", "198.51.100.3:50003"};
    auto first = tunnel(relay, "Bearer " + bearer, 10, sources[0]);
    // Ages are whole milliseconds: the first is made older by more than their rounding, so that
    // --sort age below has an order to find and not a tie.
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    auto second = tunnel(relay, basicCredential(), 100, sources[1]);
    install(RELAYPRO_NEXT_BINARY);
    Cli up = cli({"upgrade"});
    ASSERT_EQ(up.code, 0) << up.out << up.err;
    auto third = tunnel(relay, basicCredential(), 1000, sources[2]);

    Cli listed = cli({"status", "--tunnels", "--json"});
    ASSERT_EQ(listed.code, 0) << listed.err;
    json_error_t err;
    json_t* j = json_loads(listed.out.c_str(), 0, &err);
    ASSERT_NE(j, nullptr) << listed.out;
    json_t* rows = json_object_get(j, "tunnels");
    ASSERT_EQ(json_array_size(rows), 3U) << listed.out;
    EXPECT_EQ(json_integer_value(json_object_get(j, "total")), 3);
    std::map<std::string, json_t*> bySource;
    size_t i = 0;
    json_t* row = nullptr;
    json_array_foreach(rows, i, row) bySource[json_string_value(json_object_get(row, "source"))] = row;
    for (const std::string& source : sources) ASSERT_NE(bySource[source], nullptr) << source << listed.out;
    auto text = [&](size_t t, const char* key) {
        const char* v = json_string_value(json_object_get(bySource[sources[t]], key));
        return std::string(v != nullptr ? v : "(none)");
    };
    auto number = [&](size_t t, const char* key) {
        return json_integer_value(json_object_get(bySource[sources[t]], key));
    };
    EXPECT_EQ(text(0, "responder"), "resp-A");
    EXPECT_EQ(text(1, "responder"), "basic:" + kUserPass.substr(0, kUserPass.find(':')));
    EXPECT_EQ(text(2, "responder"), "basic:" + kUserPass.substr(0, kUserPass.find(':')));
    std::set<pid_t> drainingPids;
    for (size_t t : {0U, 1U}) {
        EXPECT_EQ(number(t, "generation"), 1);
        EXPECT_EQ(text(t, "workerState"), "draining");
        drainingPids.insert(static_cast<pid_t>(number(t, "workerPid")));
    }
    EXPECT_EQ(number(2, "generation"), 2);
    EXPECT_EQ(text(2, "workerState"), "serving");
    EXPECT_EQ(drainingPids.count(static_cast<pid_t>(number(2, "workerPid"))), 0U);
    EXPECT_EQ(number(0, "bytesUp"), 10);
    EXPECT_EQ(number(0, "bytesDown"), 10);
    EXPECT_EQ(number(1, "bytesUp"), 100);
    EXPECT_EQ(number(2, "bytesDown"), 1000);
    for (size_t t : {0U, 1U, 2U}) EXPECT_EQ(number(t, "targetPort"), 4222);
    EXPECT_GE(number(0, "ageMs"), number(1, "ageMs"));
    EXPECT_GE(number(1, "ageMs"), number(2, "ageMs"));
    // Every worker answered: both generations' (the first's drain, holding the tunnels).
    size_t k = 0;
    json_t* w = nullptr;
    std::set<int64_t> generations;
    json_array_foreach(json_object_get(j, "workers"), k, w) {
        EXPECT_TRUE(json_is_true(json_object_get(w, "listed"))) << listed.out;
        generations.insert(json_integer_value(json_object_get(w, "generation")));
    }
    EXPECT_EQ(generations, (std::set<int64_t>{1, 2})) << listed.out;
    json_decref(j);

    // The most bytes first, one row; the oldest first as a table.
    Cli top = cli({"status", "--tunnels", "--json", "--sort", "bytes", "--limit", "1"});
    ASSERT_EQ(top.code, 0) << top.err;
    j = json_loads(top.out.c_str(), 0, &err);
    ASSERT_NE(j, nullptr) << top.out;
    ASSERT_EQ(json_array_size(json_object_get(j, "tunnels")), 1U) << top.out;
    EXPECT_EQ(json_string_value(json_object_get(json_array_get(json_object_get(j, "tunnels"), 0), "source")),
              sources[2]);
    json_decref(j);
    Cli table = cli({"status", "--tunnels", "--sort", "age", "--limit", "2"});
    ASSERT_EQ(table.code, 0) << table.err;
    std::vector<std::string> lines;
    for (size_t at = 0, nl; (nl = table.out.find('\n', at)) != std::string::npos; at = nl + 1)
        lines.push_back(table.out.substr(at, nl - at));
    ASSERT_EQ(lines.size(), 4U) << table.out;  // header, two rows, the count
    EXPECT_EQ(lines[1].rfind("resp-A ", 0), 0U) << table.out;
    EXPECT_NE(lines[1].find(sources[0]), std::string::npos) << table.out;
    EXPECT_NE(lines[1].find("draining"), std::string::npos) << table.out;
    EXPECT_EQ(lines[3], "3 tunnels, 2 shown");

    // Usage errors: exit 2, the reason named.
    Cli bad = cli({"status", "--tunnels", "--sort", "size"});
    EXPECT_EQ(bad.code, 2);
    EXPECT_NE(bad.err.find("--sort needs age or bytes, not \"size\""), std::string::npos) << bad.err;
    bad = cli({"status", "--limit", "5"});
    EXPECT_EQ(bad.code, 2);
    EXPECT_NE(bad.err.find("--sort and --limit go with --tunnels"), std::string::npos) << bad.err;

    // The token is in neither the answers nor the log.
    for (const std::string& out : {listed.out, top.out, table.out}) EXPECT_EQ(out.find(bearer), std::string::npos);
    EXPECT_EQ(readText(relay.logFile()).find(bearer), std::string::npos);

    // A tunnel that closed is no longer listed.
    first.reset();
    EXPECT_TRUE(eventually([&] {
        Cli after = cli({"status", "--tunnels", "--json"});
        json_t* a = json_loads(after.out.c_str(), 0, &err);
        bool two = a != nullptr && json_array_size(json_object_get(a, "tunnels")) == 2U;
        if (a != nullptr) json_decref(a);
        return two;
    }));
}

}  // namespace
}  // namespace relaypro::testing
