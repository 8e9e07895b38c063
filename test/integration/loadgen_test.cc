// The load generator (test/bench/loadgen.cc) against a real relay and its own echo target: a
// short run of every mode, checking what it counts — not how fast (timing lives in BENCHMARKS.md).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test/support/net.h"
#include "test/support/process.h"
#include "test/support/relay.h"
#include "test/support/secrets.h"
#include "test/support/test_files.h"

namespace relaypro::testing {
namespace {

using namespace std::chrono_literals;

// A number member of the generator's one-line JSON report.
double member(const std::string& json, const std::string& key) {
    std::smatch m;
    std::regex re("\"" + key + "\":(-?[0-9.]+)");
    if (!std::regex_search(json, m, re)) return -1;
    return std::stod(m[1].str());
}

// The port a child process announced ("listening 127.0.0.1:PORT") in its output file `out`, once
// it has; 0 if it has not within eventually()'s time.
int announcedPort(const std::filesystem::path& out) {
    int port = 0;
    (void)eventually([&] {
        std::smatch m;
        std::string text = readText(out);
        if (std::regex_search(text, m, std::regex("listening 127\\.0\\.0\\.1:([0-9]+)"))) port = std::stoi(m[1].str());
        return port != 0;
    });
    return port;
}

class Loadgen : public ::testing::Test {
protected:
    void SetUp() override {
        writeText(dir_ / "passwords.txt", kPasswordLine);
        echo_ = ChildProcess::spawn({LOADGEN_BINARY, "echo", "--listen", "127.0.0.1:0"}, {}, dir_ / "echo.out",
                                    dir_ / "echo.err");
        echoPort_ = announcedPort(dir_ / "echo.out");
        ASSERT_NE(echoPort_, 0) << readText(dir_ / "echo.err");
        relay_ = std::make_unique<Relay>(dir_, "consoleAddress: \"127.0.0.1:" + std::to_string(echoPort_) +
                                                   "\"\norganizationId: 1\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\n"
                                                   "passwordFile: passwords.txt\nworkers: 2\n");
        ASSERT_TRUE(relay_->ready()) << relay_->stderrText();
    }

    // Runs the generator through the relay (or through `proxyPort`); returns its exit code, the
    // report in `json`.
    int run(std::vector<std::string> args, std::string& json, bool throughRelay = true, int proxyPort = 0) {
        std::vector<std::string> argv{LOADGEN_BINARY};
        argv.insert(argv.end(), args.begin(), args.end());
        argv.insert(argv.end(), {"--target", "127.0.0.1:" + std::to_string(echoPort_)});
        if (proxyPort == 0 && throughRelay) proxyPort = relay_->httpsPort();
        if (proxyPort != 0) argv.insert(argv.end(), {"--proxy", "127.0.0.1:" + std::to_string(proxyPort)});
        ChildProcess g = ChildProcess::spawn(argv, {}, dir_ / "gen.out", dir_ / "gen.err");
        int code = g.wait(120s);
        json = readText(dir_ / "gen.out");
        return code;
    }

    TempDir dir_;
    ChildProcess echo_;
    int echoPort_ = 0;
    std::unique_ptr<Relay> relay_;
};

TEST_F(Loadgen, RateCountsEveryTunnelAndResumesWithTickets) {
    std::string json;
    ASSERT_EQ(run({"rate", "--auth", kLoadgenBasic, "--count", "120", "--concurrency", "8", "--processes", "2"}, json),
              0)
        << json << readText(dir_ / "gen.err");
    EXPECT_EQ(member(json, "succeeded"), 120) << json;
    EXPECT_EQ(member(json, "failed"), 0) << json;
    EXPECT_EQ(member(json, "resumed"), 0) << json;
    EXPECT_GT(member(json, "p50"), 0) << json;

    ASSERT_EQ(run({"rate", "--auth", kLoadgenBasic, "--count", "60", "--concurrency", "4", "--resume"}, json), 0)
        << json;
    EXPECT_EQ(member(json, "succeeded"), 60) << json;
    // The first handshake has no ticket yet; the later ones resume (TLS 1.3 tickets).
    EXPECT_GE(member(json, "resumed"), 50) << json;
}

TEST_F(Loadgen, RefusedTunnelsAreCountedByStatusAndFailTheRun) {
    std::string json;
    EXPECT_EQ(run({"rate", "--auth", "basic:u:wrong", "--count", "10", "--concurrency", "2"}, json), 1) << json;
    EXPECT_EQ(member(json, "succeeded"), 0) << json;
    EXPECT_EQ(member(json, "proxy_refused"), 10) << json;
    EXPECT_EQ(member(json, "407"), 10) << json;
}

TEST_F(Loadgen, DirectBaselineAndSteadyArrival) {
    std::string json;
    ASSERT_EQ(run({"rate", "--direct", "--count", "50", "--concurrency", "5"}, json, false), 0) << json;
    EXPECT_EQ(member(json, "succeeded"), 50) << json;
    ASSERT_EQ(run({"steady", "--auth", kLoadgenBasic, "--arrival", "40", "--seconds", "1"}, json), 0) << json;
    EXPECT_GE(member(json, "succeeded"), 30) << json;
    EXPECT_EQ(member(json, "failed"), 0) << json;
}

TEST_F(Loadgen, BulkMovesEveryByteBothWaysChecked) {
    std::string json;
    ASSERT_EQ(run({"bulk", "--auth", kLoadgenBasic, "--tunnels", "2", "--bytes", "4194304", "--seconds", "60"}, json),
              0)
        << json;
    EXPECT_EQ(member(json, "bytesEachWay"), 2 * 4194304.0) << json;
    EXPECT_GT(member(json, "mbPerSecondEachWay"), 0) << json;
}

TEST_F(Loadgen, BulkOneWayIsCheckedByTheTarget) {
    std::string json;
    ASSERT_EQ(
        run({"bulk", "--one-way", "--auth", kLoadgenBasic, "--tunnels", "2", "--bytes", "4194304", "--seconds", "60"},
            json),
        0)
        << json;
    EXPECT_EQ(member(json, "succeeded"), 2) << json;
    EXPECT_EQ(member(json, "bytesOneWay"), 2 * 4194304.0) << json;
}

// The echo target directly (no relay): a sink that gets other bytes than its stream says so.
TEST_F(Loadgen, TheTargetsSinkRefusesAStreamThatIsNotTheOneAnnounced) {
    Client c;
    ASSERT_TRUE(c.connect("127.0.0.1", static_cast<uint16_t>(echoPort_), false));
    // loadgen's SinkHeader: magic, the stream's seed, its length (host order, as loadgen sends it).
    std::string header = "RPSINK01";
    uint64_t seed = 7, bytes = 100000;
    header.append(reinterpret_cast<const char*>(&seed), sizeof seed);
    header.append(reinterpret_cast<const char*>(&bytes), sizeof bytes);
    ASSERT_TRUE(c.send(header));
    ASSERT_TRUE(c.send(std::string(bytes, '\0')));
    EXPECT_EQ(c.readExactly(4), "BAD\n");
}

// Echo starts with bytes that could begin a sink's header: they come back, in order, with the rest.
TEST_F(Loadgen, TheTargetEchoesBytesThatOnlyBeganLikeASinkHeader) {
    Client c;
    ASSERT_TRUE(c.connect("127.0.0.1", static_cast<uint16_t>(echoPort_), false));
    ASSERT_TRUE(c.send("RPSIN"));
    std::this_thread::sleep_for(50ms);  // most likely a read of its own (either way the echo must match)
    ASSERT_TRUE(c.send("X and the rest"));
    EXPECT_EQ(c.readExactly(19), "RPSINX and the rest");
    std::string big(3 << 20, 'e');  // more than one read, and more than the socket buffers hold
    std::thread writer([&] { EXPECT_TRUE(c.send(big)); });
    std::string back = c.readExactly(big.size(), 30s);
    writer.join();
    EXPECT_EQ(back.size(), big.size());
    EXPECT_TRUE(back == big);
}

// The floors BENCHMARKS.md compares against (test/bench/tls_floor.cc), each driven as run-bench.sh
// drives it: they serve, and every connection or byte arrives.
TEST_F(Loadgen, TheFloorsServeTheGenerator) {
    std::string cert, key;
    makeTestCertificate("127.0.0.1", cert, key);
    writeText(dir_ / "floor.pem", cert);
    writeText(dir_ / "floor.key", key);
    const std::string echo = "127.0.0.1:" + std::to_string(echoPort_);
    struct Case {
        std::vector<std::string> floorArgs, generatorArgs;
        std::string counted;
        double expected;
    };
    const std::vector<Case> cases{
        {{}, {"rate", "--tls-only", "--count", "20", "--concurrency", "4"}, "succeeded", 20},
        {{"--tickets"}, {"rate", "--tls-only", "--resume", "--count", "20", "--concurrency", "2"}, "succeeded", 20},
        {{"--relay", echo}, {"rate", "--auth", kLoadgenBasic, "--count", "20", "--concurrency", "4"}, "succeeded", 20},
        {{"--relay", echo, "--blocking"},
         {"bulk", "--one-way", "--auth", kLoadgenBasic, "--tunnels", "2", "--bytes", "4194304", "--seconds", "60"},
         "bytesOneWay",
         2 * 4194304.0},
    };
    for (size_t i = 0; i < cases.size(); ++i) {
        const Case& c = cases[i];
        std::vector<std::string> argv{TLS_FLOOR_BINARY,
                                      "--listen",
                                      "127.0.0.1:0",
                                      "--cert",
                                      (dir_ / "floor.pem").string(),
                                      "--key",
                                      (dir_ / "floor.key").string()};
        argv.insert(argv.end(), c.floorArgs.begin(), c.floorArgs.end());
        // Files of each case's own: the next floor must not be found by the previous one's line.
        const auto out = dir_ / ("floor-" + std::to_string(i) + ".out");
        const auto err = dir_ / ("floor-" + std::to_string(i) + ".err");
        ChildProcess floor = ChildProcess::spawn(argv, {}, out, err);
        const int port = announcedPort(out);
        ASSERT_NE(port, 0) << readText(err);
        std::string json;
        EXPECT_EQ(run(c.generatorArgs, json, false, port), 0) << json << readText(dir_ / "gen.err") << readText(err);
        EXPECT_EQ(member(json, c.counted), c.expected) << c.generatorArgs[0] << ": " << json;
        EXPECT_EQ(member(json, "failed"), 0) << json;
        floor.stop(SIGTERM);
    }
}

// A blocking connect to 127.0.0.1:port, then a read: true if the peer reset the connection (at
// the connect already, or at the read), false for a FIN, data, a timeout or a refused connect.
bool resetByPeer(int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(static_cast<uint16_t>(port));
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval wait{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    bool reset = false;
    if (::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
        reset = errno == ECONNRESET;
    } else {
        char byte = 0;
        reset = ::recv(fd, &byte, 1, 0) < 0 && errno == ECONNRESET;
    }
    ::close(fd);
    return reset;
}

// The refusal floor (test/bench/refusal_floor.cc) resets every connection it is offered (a reset,
// not a FIN: what RelayPro's refusal at accept sends) and counts each once; with --pause-us, those
// that came during its pause are found together; with --seconds it stops and reports by itself.
TEST_F(Loadgen, TheRefusalFloorResetsEveryConnectionAndCountsIt) {
    struct Case {
        const char* pause;
        bool gather;  // one connection, its reset, then nine during the pause
    };
    for (const Case& c : {Case{"0", false}, Case{"1000000", true}}) {
        const auto out = dir_ / (std::string("refusal-") + c.pause + ".out");
        const auto err = dir_ / (std::string("refusal-") + c.pause + ".err");
        ChildProcess floor =
            ChildProcess::spawn({REFUSAL_FLOOR_BINARY, "--listen", "127.0.0.1:0", "--pause-us", c.pause}, {}, out, err);
        const int port = announcedPort(out);
        ASSERT_NE(port, 0) << readText(err);
        if (c.gather) {
            EXPECT_TRUE(resetByPeer(port));
            // Once it sleeps in its pause of a second (the system call it is in, by number), nine
            // connections at once wait in the accept queue for it.
            const std::string syscall = "/proc/" + std::to_string(floor.pid()) + "/syscall";
            // (nanosleep() is the one system call or the other, as the C library has it.)
            const auto sleeping = [&] {
                const std::string now = readText(syscall);
                return now.rfind(std::to_string(SYS_clock_nanosleep) + " ", 0) == 0 ||
                       now.rfind(std::to_string(SYS_nanosleep) + " ", 0) == 0;
            };
            ASSERT_TRUE(eventually(sleeping)) << readText(syscall);
            std::vector<std::thread> nine;
            std::atomic<int> resets{0};
            for (int i = 0; i < 9; ++i) nine.emplace_back([&] { resets += resetByPeer(port) ? 1 : 0; });
            for (auto& t : nine) t.join();
            EXPECT_EQ(resets.load(), 9);
        } else {
            for (int i = 0; i < 10; ++i) EXPECT_TRUE(resetByPeer(port)) << i;
        }
        floor.stop(SIGTERM);
        const std::string report = readText(out);
        EXPECT_EQ(member(report, "refused"), 10) << report << readText(err);
        EXPECT_EQ(member(report, "notReset"), 0) << report;
        EXPECT_GT(member(report, "cpuSeconds"), 0) << report;
        if (c.gather) {
            EXPECT_EQ(member(report, "wakeups"), 2) << "the nine in one batch: " << report;
        }
    }
    // --seconds: it ends by itself and reports.
    ChildProcess timed = ChildProcess::spawn({REFUSAL_FLOOR_BINARY, "--listen", "127.0.0.1:0", "--seconds", "1"}, {},
                                             dir_ / "timed.out", dir_ / "timed.err");
    EXPECT_EQ(timed.wait(30s), 0) << readText(dir_ / "timed.err");
    EXPECT_EQ(member(readText(dir_ / "timed.out"), "refused"), 0) << readText(dir_ / "timed.out");
}

// The speed probe (test/bench/speed_probe.cc) prints a timed unit of work every 50 ms, and turns
// away what it cannot run.
TEST_F(Loadgen, TheSpeedProbeTimesItsUnitsOfWork) {
    ChildProcess probe =
        ChildProcess::spawn({SPEED_PROBE_BINARY, "--seconds", "1"}, {}, dir_ / "probe.out", dir_ / "probe.err");
    ASSERT_EQ(probe.wait(30s), 0) << readText(dir_ / "probe.err");
    std::istringstream lines(readText(dir_ / "probe.out"));
    std::string line;
    double previous = 0;
    int units = 0;
    while (std::getline(lines, line)) {
        std::istringstream fields(line);
        double when = 0, micros = 0;
        std::string extra;
        ASSERT_TRUE(fields >> when >> micros) << "not two numbers: " << line;
        EXPECT_FALSE(fields >> extra) << "more than two fields: " << line;
        EXPECT_GT(when, previous);
        EXPECT_GT(micros, 0);
        previous = when;
        ++units;
    }
    // One second of 50 ms pauses and units of well under 50 ms on any machine that runs the
    // relay's tests: about 10 to 20 of them.
    EXPECT_GE(units, 2);
    EXPECT_LE(units, 21);
    for (std::vector<std::string> bad : {std::vector<std::string>{}, {"--seconds", "0"}, {"--seconds", "x"}}) {
        bad.insert(bad.begin(), SPEED_PROBE_BINARY);
        ChildProcess refused = ChildProcess::spawn(bad, {}, dir_ / "probe-bad.out", dir_ / "probe-bad.err");
        EXPECT_EQ(refused.wait(10s), 2) << bad.size();
    }
}

TEST_F(Loadgen, IdleHoldsTunnelsAndMeasuresTheRelayFromProc) {
    std::string json;
    ASSERT_EQ(run({"idle", "--auth", kLoadgenBasic, "--tunnels", "60", "--hold", "1", "--interval", "0.3", "--measure",
                   std::to_string(relay_->pid()), "--processes", "2"},
                  json),
              0)
        << json << readText(dir_ / "gen.err");
    EXPECT_EQ(member(json, "held"), 60) << json;
    // Each held tunnel is two descriptors in the relay: the client's and the upstream's.
    EXPECT_GE(member(json, "fdsPerTunnel"), 1.9) << json;
    EXPECT_LE(member(json, "fdsPerTunnel"), 2.1) << json;
    EXPECT_GT(member(json, "rssKiBAfter"), member(json, "rssKiBBefore")) << json;
}

}  // namespace
}  // namespace relaypro::testing
