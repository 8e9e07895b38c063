// `loadgen fleet` (test/bench/fleet.h) against a real relay with Bearer tokens, the console
// simulator (fleetPrefix) and the generator's echo target: every Responder gets a token and a
// tunnel whose echoes come back, asks for a new token before the old one expires, and after a
// relay restart comes back with resumed TLS and without a console call. What is checked is what
// the fleet and the console counted, polled with a deadline.
#include <gtest/gtest.h>
#include <jansson.h>
#include <unistd.h>

#include <chrono>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "supervisor/listeners.h"
#include "test/support/console.h"
#include "test/support/installation.h"
#include "test/support/json.h"
#include "test/support/net.h"
#include "test/support/process.h"
#include "test/support/relay.h"
#include "test/support/secrets.h"
#include "test/support/test_files.h"

namespace relaypro::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr int kResponders = 50;
constexpr const char* kVerify = "/api/public/relay-pro/responders/verify";

int64_t number(json_t* object, const char* key) {
    return json_integer_value(json_object_get(object, key));
}

// A running `loadgen fleet` and what its timeline says so far.
class Fleet {
public:
    Fleet(const fs::path& dir, std::vector<std::string> args) : dir_(dir) {
        args.insert(args.begin(), {LOADGEN_BINARY, "fleet", "--timeline", (dir / "timeline.jsonl").string()});
        process_ = ChildProcess::spawn(args, {}, dir / "fleet.out", dir / "fleet.err");
    }

    // The per-second lines, and the events.
    [[nodiscard]] std::vector<Json> lines() const {
        std::vector<Json> out;
        for (const auto& line : splitLines(readText(dir_ / "timeline.jsonl"))) {
            json_error_t error;
            if (json_t* j = json_loads(line.c_str(), 0, &error)) out.emplace_back(j);
        }
        return out;
    }
    // A count summed over the seconds so far (`failure`: one of "failures").
    [[nodiscard]] int64_t total(const char* key, bool failure = false) const {
        int64_t sum = 0;
        for (const auto& j : lines()) {
            if (json_object_get(j.get(), "second") == nullptr) continue;
            sum += number(failure ? json_object_get(j.get(), "failures") : j.get(), key);
        }
        return sum;
    }
    // A gauge as the latest whole second saw it.
    [[nodiscard]] int64_t latest(const char* key) const {
        int64_t value = -1;
        for (const auto& j : lines()) {
            if (json_object_get(j.get(), "second") != nullptr && json_object_get(j.get(), "last") == nullptr)
                value = number(j.get(), key);
        }
        return value;
    }
    [[nodiscard]] int events(const std::string& name) const {
        int n = 0;
        for (const auto& j : lines()) {
            const char* e = json_string_value(json_object_get(j.get(), "event"));
            n += e != nullptr && name == e ? 1 : 0;
        }
        return n;
    }
    void signal(int sig) const { process_.signal(sig); }
    // Ends the run (SIGTERM); its exit code, the summary in `summary`.
    int stop(std::string& summary) {
        int code = process_.stop(SIGTERM, 30s);
        summary = readText(dir_ / "fleet.out");
        return code;
    }
    [[nodiscard]] std::string output() const {
        return readText(dir_ / "fleet.err") + readText(dir_ / "timeline.jsonl");
    }

private:
    fs::path dir_;
    ChildProcess process_;
};

class FleetTest : public ::testing::Test {
protected:
    void SetUp() override {
        ConsoleSim::Options options;
        options.host = ip_;
        console_ = std::make_unique<ConsoleSim>(dir_.path(), options);
        ASSERT_TRUE(console_->started());
        console_->setState(R"({"fleetPrefix": "fleet-"})");
        // The echo target where tunnels may go: the console's host, NATS's port.
        echo_ = ChildProcess::spawn({LOADGEN_BINARY, "echo", "--listen", ip_ + ":4222"}, {}, dir_ / "echo.out",
                                    dir_ / "echo.err");
        ASSERT_TRUE(eventually([&] {
            int fd = connectTo(ip_, 4222, 200ms);
            if (fd >= 0) ::close(fd);
            return fd >= 0;
        })) << readText(dir_ / "echo.err");
        // A fixed port on an address of this test's own: the restarted relay is where it was.
        const std::string yaml = console_->registeredConfig() +
                                 "serverName: \"127.0.0.1\"\nworkers: 2\nhttpsProxy:\n  listen: \"" + proxy() +
                                 "\"\nlimits:\n  tokenRequestsPerMinute: 1000000\n"
                                 "  shutdownGrace: 1s\n";  // a stop closes the tunnels soon
        relay_ = std::make_unique<Relay>(dir_, yaml);
        ASSERT_TRUE(relay_->ready()) << relay_->stderrText() << readText(relay_->logFile());
        commandOutput("openssl x509 -in " + (dir_ / "private" / "ca-bundle.pem").string() + " -out " +
                      (dir_ / "ca.pem").string());
    }

    [[nodiscard]] std::string proxy() const { return ip_ + ":8443"; }

    // The fleet's arguments: 50 Responders in 2 processes, an echo every half second, quick
    // reconnects, the relay's CA pinned.
    [[nodiscard]] std::vector<std::string> fleetArgs(std::vector<std::string> more) const {
        std::vector<std::string> args{"--proxy",           proxy(),
                                      "--target",          ip_ + ":4222",
                                      "--responders",      std::to_string(kResponders),
                                      "--processes",       "2",
                                      "--cafile",          (dir_ / "ca.pem").string(),
                                      "--servername",      "127.0.0.1",
                                      "--interval",        "0.5",
                                      "--backoff-min",     "100",
                                      "--backoff-max",     "1000",
                                      "--seconds",         "120",
                                      "--console-journal", (dir_ / "console" / "journal.jsonl").string()};
        args.insert(args.end(), more.begin(), more.end());
        return args;
    }

    std::string ip_ = privateLoopback();
    TempDir dir_;
    std::unique_ptr<ConsoleSim> console_;
    ChildProcess echo_;
    std::unique_ptr<Relay> relay_;
};

// Every Responder gets a token (one console verify each), opens its tunnel (a full handshake for
// its first connection only: the tunnel resumes with the token connection's ticket) and its
// echoes come back; with --refresh 3597 of a 3600 s token it asks again about 3 s later, which
// the relay answers from its 60 s verify cache.
TEST_F(FleetTest, EveryResponderGetsATokenATunnelAndEchoesThenRefreshesItsToken) {
    Fleet fleet(dir_.path(), fleetArgs({"--refresh", "3597"}));
    ASSERT_TRUE(eventually([&] { return fleet.latest("open") == kResponders; }, 20s)) << fleet.output();
    EXPECT_EQ(fleet.events("allOpen"), 1);
    EXPECT_EQ(fleet.latest("tokensHeld"), kResponders);
    EXPECT_EQ(console_->count(kVerify), static_cast<size_t>(kResponders));
    ASSERT_TRUE(eventually([&] { return fleet.total("echoes") >= 2 * kResponders; }, 20s)) << fleet.output();

    // The refresh: a second token each, no second verify.
    ASSERT_TRUE(eventually([&] { return fleet.total("tokens") >= 2 * kResponders; }, 20s)) << fleet.output();
    EXPECT_EQ(fleet.latest("tokensHeld"), kResponders);
    EXPECT_EQ(console_->count(kVerify), static_cast<size_t>(kResponders)) << "answered from the verify cache";
    EXPECT_EQ(fleet.total("consoleVerify"), kResponders) << "the fleet counted the journal's verify lines";
    EXPECT_EQ(fleet.total("full"), kResponders) << fleet.output();
    EXPECT_EQ(fleet.total("established"), kResponders);
    EXPECT_EQ(fleet.total("reconnects"), 0);

    std::string summary;
    EXPECT_EQ(fleet.stop(summary), 0) << summary << fleet.output();
    Json s(json_loads(summary.c_str(), 0, nullptr));
    ASSERT_NE(s, nullptr) << summary;
    EXPECT_EQ(number(s.get(), "openAtEnd"), kResponders);
    EXPECT_EQ(number(s.get(), "failed"), 0) << summary;
    EXPECT_GE(number(s.get(), "tokenRequests"), 2 * kResponders);
}

// The relay stops (its tunnels closed after the 1 s grace) and starts again with the same private
// folder, so tokens and tickets stay valid: every Responder reconnects once, resuming TLS, with
// the token it holds — no token request, no console call — and SIGUSR1 says all are open again.
TEST_F(FleetTest, ARelayRestartIsRecoveredWithResumedTlsAndNoConsoleCall) {
    Fleet fleet(dir_.path(), fleetArgs({}));
    ASSERT_TRUE(eventually([&] { return fleet.latest("open") == kResponders; }, 20s)) << fleet.output();
    ASSERT_TRUE(eventually([&] { return fleet.total("echoes") >= kResponders; }, 20s)) << fleet.output();
    ASSERT_EQ(console_->count(kVerify), static_cast<size_t>(kResponders));

    EXPECT_EQ(relay_->stop(), 0) << relay_->stderrText();
    relay_.reset();
    relay_ = std::make_unique<Relay>(dir_, readText(dir_ / "config.yml"));  // as the relay left it
    ASSERT_TRUE(relay_->ready()) << relay_->stderrText() << readText(relay_->logFile());
    ASSERT_TRUE(eventually([&] { return fleet.events("recovered") == 1; }, 30s)) << fleet.output();
    // The per-second counts of the recovery are in the next whole second's line.
    ASSERT_TRUE(eventually([&] { return fleet.total("reconnects") == kResponders; }, 5s)) << fleet.output();
    EXPECT_EQ(fleet.total("closed", true), kResponders) << fleet.output();
    EXPECT_EQ(fleet.total("established"), 2 * kResponders);
    EXPECT_EQ(fleet.total("full"), kResponders) << "only each Responder's first connection";
    EXPECT_EQ(fleet.total("resumed"), 2 * kResponders) << "its first tunnel and its reconnect";
    EXPECT_EQ(fleet.total("tokenRequests"), kResponders);
    EXPECT_EQ(console_->count(kVerify), static_cast<size_t>(kResponders)) << "no new verify call";

    fleet.signal(SIGUSR1);
    ASSERT_TRUE(eventually([&] { return fleet.events("status") == 1; }, 5s)) << fleet.output();
    EXPECT_NE(fleet.output().find(R"("event":"status")"), std::string::npos);
    EXPECT_NE(fleet.output().find(R"("allOpen":true)"), std::string::npos) << fleet.output();
    std::string summary;
    EXPECT_EQ(fleet.stop(summary), 0) << summary << fleet.output();
    EXPECT_NE(summary.find(R"("recoveries":1)"), std::string::npos) << summary;
}

// --connect-concurrency: one tunnel connecting at a time per process, the others waiting their
// turn; none is lost in the queue, at the start or in a restart's reconnects.
TEST_F(FleetTest, OneConnectionAtATimeStillOpensEveryTunnelAndRecoversARestart) {
    Fleet fleet(dir_.path(), fleetArgs({"--connect-concurrency", "1"}));
    ASSERT_TRUE(eventually([&] { return fleet.latest("open") == kResponders; }, 20s)) << fleet.output();
    const long queuedAtStart = fleet.total("connectsQueued");
    EXPECT_GT(queuedAtStart, 0) << "no tunnel waited its turn: the limit was not applied";
    EXPECT_EQ(relay_->stop(), 0) << relay_->stderrText();
    relay_.reset();
    relay_ = std::make_unique<Relay>(dir_, readText(dir_ / "config.yml"));
    ASSERT_TRUE(relay_->ready()) << relay_->stderrText() << readText(relay_->logFile());
    ASSERT_TRUE(eventually([&] { return fleet.events("recovered") == 1; }, 30s)) << fleet.output();
    ASSERT_TRUE(eventually([&] { return fleet.total("reconnects") == kResponders; }, 5s)) << fleet.output();
    EXPECT_EQ(fleet.total("established"), 2 * kResponders);
    EXPECT_GT(fleet.total("connectsQueued"), queuedAtStart) << "the reconnects did not wait their turn";
    std::string summary;
    EXPECT_EQ(fleet.stop(summary), 0) << summary << fleet.output();
}

// Issue 19's upgrade at scale, small: an upgrade with every Responder's tunnel open and new
// tunnels arriving cuts no tunnel before the drain deadline (10 min here) and fails no new one;
// the held tunnels keep echoing through the old generation.
TEST_F(FleetTest, AnUpgradeCutsNoTunnelAndFailsNoNewOne) {
    const std::string yaml = readText(dir_ / "config.yml") + "passwordFile: passwords.txt\n";
    EXPECT_EQ(relay_->stop(), 0) << relay_->stderrText();
    relay_.reset();
    Installation installation(dir_, RELAYPRO_BINARY);
    relay_ = installation.start(yaml);
    ASSERT_TRUE(relay_->ready());
    Fleet fleet(dir_.path(), fleetArgs({}));
    ASSERT_TRUE(eventually([&] { return fleet.latest("open") == kResponders; }, 20s)) << fleet.output();
    // New tunnels at 40 a second for 6 s (Basic), the upgrade in their middle.
    ChildProcess steady = ChildProcess::spawn({LOADGEN_BINARY, "steady", "--proxy", proxy(), "--target", ip_ + ":4222",
                                               "--auth", kLoadgenBasic, "--arrival", "40", "--seconds", "6"},
                                              {}, dir_ / "steady.out", dir_ / "steady.err");
    std::this_thread::sleep_for(2s);  // some arrivals before the switch (their count is checked below)
    installation.install(RELAYPRO_NEXT_BINARY);
    auto [code, out] = installation.cli({"upgrade"});
    ASSERT_EQ(code, 0) << out;
    EXPECT_EQ(steady.wait(60s), 0) << readText(dir_ / "steady.out") << readText(dir_ / "steady.err");
    Json report(json_loads(readText(dir_ / "steady.out").c_str(), 0, nullptr));
    ASSERT_NE(report, nullptr);
    EXPECT_GE(number(report.get(), "started"), 200);
    EXPECT_EQ(number(report.get(), "failed"), 0);
    // The held tunnels: still open and echoing after the switch, none closed or failed.
    const int64_t echoes = fleet.total("echoes");
    ASSERT_TRUE(eventually([&] { return fleet.total("echoes") >= echoes + 2 * kResponders; }, 20s)) << fleet.output();
    EXPECT_EQ(fleet.latest("open"), kResponders);
    EXPECT_EQ(fleet.total("reconnects"), 0) << fleet.output();
    std::string summary;
    EXPECT_EQ(fleet.stop(summary), 0) << summary << fleet.output();
    Json s(json_loads(summary.c_str(), 0, nullptr));
    ASSERT_NE(s, nullptr) << summary;
    EXPECT_EQ(number(s.get(), "failed"), 0) << summary;
}

// The restart storm's floor (run-lifecycle.sh, STORM_BACKLOGS with "floor"): test/bench/tls_floor
// with the relay's CA bundle takes the relay's place on its address and port, and every Responder
// comes back to it as to a restarted relay: its ticket resumes (the floor derives RelayPro's
// ticket keys), its token verifies (and a made-up one gets a 407), its CONNECT reaches the echo
// target named in the request line from a port of --source-ports, and its echoes come back. Two
// processes of at most 30 connections each carry the 50; the relay, back in its place, resumes
// the tickets the floor issued.
TEST_F(FleetTest, TheStormFloorResumesTheRelaysTicketsAndCarriesTheTunnels) {
    Fleet fleet(dir_.path(), fleetArgs({}));
    ASSERT_TRUE(eventually([&] { return fleet.latest("open") == kResponders; }, 20s)) << fleet.output();
    const std::string config = readText(dir_ / "config.yml");
    EXPECT_EQ(relay_->stop(), 0) << relay_->stderrText();
    relay_.reset();
    std::string cert, key;
    makeTestCertificate("127.0.0.1", cert, key);  // not the relay's: a full handshake would fail
    writeText(dir_ / "floor.pem", cert);
    writeText(dir_ / "floor.key", key);
    // Source ports outside the kernel's range: no connect() of its own picks them.
    auto [kernelLow, kernelHigh] = localPortRange();
    const int low = kernelLow >= 2048 ? kernelLow - 1024 : kernelHigh + 1;
    ASSERT_LE(low + 1023, 65535);
    ChildProcess floor = ChildProcess::spawn(
        {TLS_FLOOR_BINARY, "--listen", proxy(), "--cert", (dir_ / "floor.pem").string(), "--key",
         (dir_ / "floor.key").string(), "--ca-bundle", (dir_ / "private" / "ca-bundle.pem").string(), "--verify-tokens",
         "1", "--relay", "head", "--source-ports", std::to_string(low) + "-" + std::to_string(low + 1023),
         "--processes", "2", "--max-pairs", "30"},
        {}, dir_ / "floor.out", dir_ / "floor.err");
    ASSERT_TRUE(eventually([&] { return readText(dir_ / "floor.out").find("listening") != std::string::npos; }))
        << readText(dir_ / "floor.err");
    ASSERT_TRUE(eventually([&] { return fleet.events("recovered") == 1; }, 30s)) << fleet.output();
    ASSERT_TRUE(eventually([&] { return fleet.total("reconnects") == kResponders; }, 5s)) << fleet.output();
    EXPECT_EQ(fleet.total("full"), kResponders) << "only each Responder's first connection, to the relay";
    EXPECT_EQ(fleet.total("resumed"), 2 * kResponders) << "its first tunnel (relay) and its reconnect (floor)";
    EXPECT_EQ(fleet.total("closed", true), kResponders) << "the relay's stop, and no other failure";
    const int64_t echoes = fleet.total("echoes");
    ASSERT_TRUE(eventually([&] { return fleet.total("echoes") >= echoes + 2 * kResponders; }, 20s)) << fleet.output();
    EXPECT_EQ(fleet.latest("open"), kResponders);
    // Every upstream connection came from the given range, with both parities: the sockets
    // towards this test's echo target ("Recv-Q Send-Q Local:Port Peer:Port"), one a Responder.
    const std::string peers = commandOutput("ss -tnH state established dst " + ip_ + ":4222");
    int upstreams = 0;
    bool odd = false;
    bool even = false;
    for (const auto& line : splitLines(peers)) {
        std::smatch m;
        ASSERT_TRUE(std::regex_search(line, m, std::regex(R"(^\s*\d+\s+\d+\s+\S+:(\d+)\s)"))) << line;
        const int port = std::stoi(m[1].str());
        EXPECT_TRUE(port >= low && port <= low + 1023) << line;
        (port % 2 != 0 ? odd : even) = true;
        ++upstreams;
    }
    EXPECT_EQ(upstreams, kResponders) << peers;
    EXPECT_TRUE(odd && even) << peers;
    // Both serving processes held tunnels, neither more than 30: the Responders' connections to
    // the floor's address and port, by the process that holds each ("users:(("tls_floor",pid=N,...").
    const std::string held = commandOutput("ss -tnpH state established src " + proxy());
    std::map<std::string, int> perProcess;
    for (const auto& line : splitLines(held)) {
        std::smatch m;
        ASSERT_TRUE(std::regex_search(line, m, std::regex(R"(pid=(\d+))"))) << line;
        ++perProcess[m[1].str()];
    }
    EXPECT_EQ(perProcess.size(), 2U) << held;
    int total = 0;
    for (const auto& [pid, n] : perProcess) {
        EXPECT_LE(n, 30) << "process " << pid;
        total += n;
    }
    EXPECT_EQ(total, kResponders) << held;
    // A made-up token: 407, and no tunnel (curl then exits 56).
    const std::string code = commandOutput("curl -s -o /dev/null -w '%{http_connect}' -p --proxy https://" + proxy() +
                                           " --proxy-insecure --proxy-header 'Proxy-Authorization: Bearer made.up' "
                                           "http://" +
                                           ip_ + ":4222/ || true");  // curl: 56
    EXPECT_EQ(code, "407");

    // The relay back in its place: the tickets the floor issued resume there.
    EXPECT_EQ(floor.stop(SIGTERM), 0) << readText(dir_ / "floor.err");
    // Its serving processes ended before it did: nothing listens there any more.
    const int fd = connectTo(ip_, 8443, 200ms);
    EXPECT_LT(fd, 0) << "a serving process outlived the floor";
    if (fd >= 0) ::close(fd);
    relay_ = std::make_unique<Relay>(dir_, config);
    ASSERT_TRUE(relay_->ready()) << relay_->stderrText() << readText(relay_->logFile());
    ASSERT_TRUE(eventually([&] { return fleet.events("recovered") == 2; }, 30s)) << fleet.output();
    ASSERT_TRUE(eventually([&] { return fleet.total("reconnects") == 2 * kResponders; }, 5s)) << fleet.output();
    EXPECT_EQ(fleet.total("resumed"), 3 * kResponders) << fleet.output();
    EXPECT_EQ(fleet.total("full"), kResponders) << fleet.output();
    std::string summary;
    EXPECT_EQ(fleet.stop(summary), 0) << summary << fleet.output();
}

}  // namespace
}  // namespace relaypro::testing
