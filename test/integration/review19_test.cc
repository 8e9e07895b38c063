// Review of issue 19 (drain spread, handshake bound, listen backlog): tests that demonstrate the
// findings. Each one states the behaviour the product should have; a failing test is a finding.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <regex>
#include <thread>

#include "test/support/installation.h"
#include "test/support/net.h"
#include "test/support/process.h"
#include "test/support/relay.h"
#include "test/support/scale.h"
#include "test/support/secrets.h"
#include "test/support/test_files.h"
#include "worker/drain_schedule.h"

namespace relaypro::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// Everything the peer sends until it closes (or `timeout`).
std::string readUntilClosed(int fd, std::chrono::milliseconds timeout) {
    std::string out;
    const auto end = Clock::now() + timeout;
    while (Clock::now() < end) {
        pollfd p{fd, POLLIN, 0};
        int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(end - Clock::now()).count());
        if (::poll(&p, 1, std::max(left, 1)) <= 0) break;
        char buf[4096];
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n <= 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    return out;
}

class Review19 : public ::testing::Test {
protected:
    void SetUp() override {
        echo_ = ChildProcess::spawn({LOADGEN_BINARY, "echo", "--listen", "127.0.0.1:0"}, {}, dir_ / "echo.out",
                                    dir_ / "echo.err");
        ASSERT_TRUE(eventually([&] {
            std::smatch m;
            std::string out = readText(dir_ / "echo.out");
            if (std::regex_search(out, m, std::regex("listening 127\\.0\\.0\\.1:([0-9]+)")))
                echoPort_ = static_cast<uint16_t>(std::stoi(m[1].str()));
            return echoPort_ != 0;
        })) << readText(dir_ / "echo.err");
    }
    std::unique_ptr<Relay> start(const std::string& extra, int workers = 1, bool http = false) {
        std::map<std::string, std::string> env;
        if (http) env["RELAYPRO_HTTP_LISTEN"] = "127.0.0.1:0";
        return installation_.start("consoleAddress: \"localhost:" + std::to_string(echoPort_) +
                                       "\"\norganizationId: 1\nworkers: " + std::to_string(workers) +
                                       "\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\npasswordFile: passwords.txt\n" +
                                       extra,
                                   env);
    }
    long long workerConnections() const {
        auto [code, out] = installation_.cli({"status", "--json"});
        std::smatch m;
        if (code != 0 || !std::regex_search(out, m, std::regex("\"connections\": *([0-9]+)"))) return -1;
        return std::stoll(m[1].str());
    }

    TempDir dir_;
    Installation installation_{dir_, RELAYPRO_BINARY};
    ChildProcess echo_;
    uint16_t echoPort_ = 0;
};

// Finding A (DoS). With the bound then shipped (maxHandshakes 1024, headerTimeout 10 s), one
// unauthenticated client that opened 1,024 TCP connections per worker and sent nothing (no TLS,
// no CPU for the relay) stopped the worker from accepting on every listener for headerTimeout,
// renewable at will. threat-model.md promises "normal clients served meanwhile" for connections
// held before authenticating. Now, with a bound of 16: silent sockets never count.
TEST_F(Review19, SilentConnectionsBeyondTheBoundLockOutNoOne) {
    auto relay = start("limits:\n  maxHandshakes: 16\n", 1, true);
    ASSERT_TRUE(relay->ready());
    ASSERT_NE(relay->httpPort(), 0);
    std::vector<int> silent;
    for (int i = 0; i < 1024; ++i) {
        int fd = connectTo("127.0.0.1", relay->httpsPort());
        ASSERT_GE(fd, 0) << i;
        silent.push_back(fd);
    }
    ASSERT_TRUE(eventually([&] { return workerConnections() == 1024; })) << workerConnections();
    // The plain-HTTP listener has no handshake at all, and is held too.
    {
        int fd = connectTo("127.0.0.1", relay->httpPort());
        ASSERT_GE(fd, 0);
        const std::string req = "GET /relaypro/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        ASSERT_EQ(::write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
        std::string answer = readUntilClosed(fd, 3s);
        EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0U)
            << "plain-HTTP health check unanswered within 3 s: '" << answer << "'";
        ::close(fd);
    }
    // A normal Responder.
    auto t0 = Clock::now();
    Client c;
    bool ok = openTunnel(c, relay->httpsPort(), echoPort_);
    auto took = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0);
    std::printf("normal tunnel: %s after %lld ms\n", ok ? "opened" : "failed", static_cast<long long>(took.count()));
    EXPECT_TRUE(ok && took < 3s) << "a normal client waited " << took.count() << " ms behind 1,024 idle sockets";
    for (int fd : silent) ::close(fd);
}

// Finding B. limits.drainTimeout 0 (allowed: 0s … 30 days) with a spread: Worker::drain() plans
// (now, spread) and arms its timer with next(now) before any due() has counted the connections,
// and next() then answers end_: nothing closes during the spread and everything is cut at its end.
TEST(Review19Schedule, AZeroGraceStillSpreadsTheCloses) {
    DrainSchedule s;
    const Clock::time_point now{};
    ASSERT_TRUE(s.plan(now + 0ms, 4s));  // Worker::drain(graceMs = 0, spreadMs = 4000)
    auto first = s.next(now);            // Worker::armDrainTimer(now)
    EXPECT_LT(first, now + 4s) << "the first look is at the end of the spread";
    EXPECT_LT(s.due(first, 1000), 1000U) << "the first look closes everything at once";
}

TEST_F(Review19, AnUpgradeWithNoDrainTimeoutSpreadsItsCloses) {
    constexpr size_t kTunnels = 300;
    auto relay = start("limits:\n  drainTimeout: 0s\n  drainSpread: 4s\n", 1);
    ASSERT_TRUE(relay->ready());
    std::vector<std::unique_ptr<Client>> tunnels;
    for (size_t i = 0; i < kTunnels; ++i) {
        auto c = std::make_unique<Client>();
        ASSERT_TRUE(openTunnel(*c, relay->httpsPort(), echoPort_)) << i;
        tunnels.push_back(std::move(c));
    }
    std::vector<Clock::time_point> closes;
    std::thread watch([&] {
        std::vector<pollfd> fds(kTunnels);
        for (size_t i = 0; i < kTunnels; ++i) fds[i] = {tunnels[i]->fd(), POLLIN, 0};
        const auto deadline = Clock::now() + 40s;
        while (closes.size() < kTunnels && Clock::now() < deadline) {
            if (::poll(fds.data(), fds.size(), 50) < 0) break;
            for (size_t i = 0; i < kTunnels; ++i) {
                if (fds[i].fd < 0 || fds[i].revents == 0) continue;
                closes.push_back(Clock::now());
                fds[i].fd = -1;
            }
        }
    });
    auto [code, out] = installation_.cli({"upgrade"});
    watch.join();
    ASSERT_EQ(code, 0) << out;
    ASSERT_EQ(closes.size(), kTunnels);
    std::sort(closes.begin(), closes.end());
    auto span = std::chrono::duration_cast<std::chrono::milliseconds>(closes.back() - closes.front());
    std::printf("%zu closes over %lld ms\n", closes.size(), static_cast<long long>(span.count()));
    EXPECT_GE(span, 2500ms) << "the spread's closes came in one burst";
}

// Finding C. maxHandshakes is not in the settings snapshot the hand-over carries, and the image
// that takes over pushes settings only when the snapshot's bytes differ: its WorkerSettings say
// 1024 (the default). A worker respawned after an upgrade gets HandshakeBound{1024} whatever
// config.yml says (until the next reload).
TEST_F(Review19, AWorkerRespawnedAfterAnUpgradeKeepsTheHandshakeBound) {
    auto relay = start("limits:\n  maxHandshakes: 2\n", 1);
    ASSERT_TRUE(relay->ready());
    const uint16_t port = relay->httpsPort();
    // Three whole ClientHellos (a silent or trickling socket does not count), the first two
    // answered before the third connects; and when the first was answered.
    auto holdThree = [&] {
        std::vector<int> fds;
        Clock::time_point first{};
        for (int i = 0; i < 3; ++i) {
            fds.push_back(sendClientHello(port));
            EXPECT_GE(fds.back(), 0);
            if (i < 2) {
                EXPECT_TRUE(answered(fds.back()));
            }
            if (i == 0) first = Clock::now();
        }
        return std::make_pair(fds, first);
    };
    // Three connected, one queued: two accepted. Looked at within 1.5 s of the first answer: in
    // 2 s they stop counting (a slower machine skips the look).
    auto queuedBehind = [&](Clock::time_point first) {
        long q = listenQueue(port).first;
        return Clock::now() - first < 1500ms ? q : -2;
    };
    // Control: the freshly started worker honours the bound.
    {
        auto [fds, first] = holdThree();
        long q = queuedBehind(first);
        if (q == -2) GTEST_SKIP() << "too slow a machine to look within 2 s";
        EXPECT_EQ(q, 1) << "before the upgrade";
        for (int fd : fds) ::close(fd);
        ASSERT_TRUE(eventually([&] { return workerConnections() == 0 && listenQueue(port).first == 0; }));
    }
    auto [code, out] = installation_.cli({"upgrade"});
    ASSERT_EQ(code, 0) << out;
    ASSERT_TRUE(eventually([&] { return relay->workerPids().size() >= 2; }));
    const size_t before = relay->workerPids().size();
    const pid_t current = relay->workerPids().back();
    ASSERT_EQ(::kill(current, SIGKILL), 0);
    ASSERT_TRUE(eventually([&] { return relay->workerPids().size() > before; }, 30s)) << "no respawn";
    ASSERT_TRUE(eventually([&] { return workerConnections() == 0; }));
    auto [fds, first] = holdThree();
    long q = queuedBehind(first);
    if (q == -2) GTEST_SKIP() << "too slow a machine to look within 2 s";
    EXPECT_EQ(q, 1) << "respawned after the upgrade";
    for (int fd : fds) ::close(fd);
}

// Finding E. The CLOSE_WAIT shortcut in Server::accept drops a complete request whose client
// half-closed after sending it (HTTP/1.0 style: `printf 'GET …' | nc -N`), without an answer, and
// counts it as abandoned. Deterministic here behind the handshake bound (which also holds the
// plain-HTTP listener); without a bound it is a race the client loses on any busy worker.
TEST_F(Review19, AHalfClosedCompleteRequestIsAnswered) {
    auto relay = start("limits:\n  maxHandshakes: 1\n", 1, true);
    ASSERT_TRUE(relay->ready());
    ASSERT_NE(relay->httpPort(), 0);
    int holder = connectTo("127.0.0.1", relay->httpsPort());
    ASSERT_GE(holder, 0);
    ASSERT_EQ(::write(holder, "\x16", 1), 1);  // a handshake in progress: the bound is reached
    ASSERT_TRUE(eventually([&] { return workerConnections() == 1; }));
    int fd = connectTo("127.0.0.1", relay->httpPort());
    ASSERT_GE(fd, 0);
    const std::string req = "GET /relaypro/v1/health HTTP/1.0\r\nHost: x\r\n\r\n";
    ASSERT_EQ(::write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
    ::shutdown(fd, SHUT_WR);
    // The TLS bound does not hold the plain-HTTP listener, and the half-closed request is answered.
    std::string answer = readUntilClosed(fd, 5s);
    EXPECT_EQ(answer.rfind("HTTP/1.1 200", 0), 0U) << "answer: '" << answer << "'";
    ::close(fd);
    ::close(holder);
}

TEST_F(Review19, HalfClosedRequestsOnAnIdleRelayAreAnswered) {
    auto relay = start("limits:\n  maxHandshakes: 0\n", 1, true);
    ASSERT_TRUE(relay->ready());
    int dropped = 0;
    constexpr int kTries = 40;
    for (int i = 0; i < kTries; ++i) {
        int fd = connectTo("127.0.0.1", relay->httpPort());
        ASSERT_GE(fd, 0);
        const std::string req = "GET /relaypro/v1/health HTTP/1.0\r\nHost: x\r\n\r\n";
        ASSERT_EQ(::write(fd, req.data(), req.size()), static_cast<ssize_t>(req.size()));
        ::shutdown(fd, SHUT_WR);
        std::string answer = readUntilClosed(fd, 3s);
        dropped += answer.rfind("HTTP/1.1 200", 0) == 0 ? 0 : 1;
        ::close(fd);
    }
    std::printf("%d of %d half-closed requests dropped unanswered\n", dropped, kTries);
    EXPECT_EQ(dropped, 0);
}

}  // namespace
}  // namespace relaypro::testing
