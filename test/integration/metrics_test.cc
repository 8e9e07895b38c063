// The metrics endpoint (metrics.listen) with real clients: its answers to every path and method,
// its place in `status --json`, and a real Prometheus (Debian's package) scraping it every second
// while the test drives tunnels, a reload, an upgrade to another build and a worker's crash. The
// counters Prometheus stored must match what the test did, none may ever go backwards, and the
// shipped alerting rules (packaging/relaypro-alerts.yml) must fire when provoked.
#include <gtest/gtest.h>
#include <jansson.h>
#include <signal.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <regex>
#include <thread>

#include "test/support/installation.h"
#include "test/support/net.h"
#include "test/support/process.h"
#include "test/support/relay.h"
#include "test/support/secrets.h"
#include "test/support/test_files.h"

namespace relaypro::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct HttpAnswer {
    int status = -1;
    std::string head;
    std::string body;
};

// A chunked body's data (Prometheus sends large answers so).
std::string unchunk(const std::string& body) {
    std::string out;
    size_t at = 0;
    while (at < body.size()) {
        const size_t eol = body.find("\r\n", at);
        if (eol == std::string::npos) break;
        const size_t n = std::stoul(body.substr(at, eol - at), nullptr, 16);
        if (n == 0) break;
        out += body.substr(eol + 2, n);
        at = eol + 2 + n + 2;
    }
    return out;
}

HttpAnswer http(uint16_t port, const std::string& method, const std::string& target) {
    Client c;
    HttpAnswer a;
    if (!c.connect("127.0.0.1", port, false)) return a;
    c.send(method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    a.head = c.readHead();
    a.status = statusOf(a.head);
    a.body = c.readAll();
    if (headerOf(a.head, "Transfer-Encoding") == "chunked") a.body = unchunk(a.body);
    return a;
}

std::string urlEncode(const std::string& s) {
    std::string out;
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
            out.push_back(static_cast<char>(c));
        } else {
            char buf[4];
            std::snprintf(buf, sizeof buf, "%%%02X", c);
            out += buf;
        }
    }
    return out;
}

// The value of one sample in the exposition (the line that starts with `series` and a space).
std::optional<double> sampleOf(const std::string& exposition, const std::string& series) {
    for (const auto& line : splitLines(exposition)) {
        if (line.size() > series.size() && line.starts_with(series) && line[series.size()] == ' ') {
            return std::stod(line.substr(series.size() + 1));
        }
    }
    return std::nullopt;
}

class Metrics : public ::testing::Test {
protected:
    void install(const std::string& build) { installation_.install(build); }
    std::unique_ptr<Relay> start(uint16_t echoPort) {
        auto r = installation_.start("consoleAddress: \"localhost:" + std::to_string(echoPort) +
                                     "\"\norganizationId: 1\nworkers: 2\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\n"
                                     "passwordFile: passwords.txt\nmetrics:\n  listen: \"127.0.0.1:0\"\n");
        EXPECT_NE(r->metricsPort(), 0) << "no \"listening\" line of kind metrics";
        return r;
    }
    std::pair<int, std::string> cli(const std::vector<std::string>& args) { return installation_.cli(args); }
    // One tunnel: TLS, CONNECT with the test's Basic credential, `payload` echoed, closed.
    static bool tunnel(const Relay& relay, uint16_t echoPort, const std::string& payload) {
        Client c;
        if (!c.connect("127.0.0.1", relay.httpsPort(), true)) return false;
        c.send("CONNECT localhost:" + std::to_string(echoPort) +
               " HTTP/1.1\r\nProxy-Authorization: " + basicCredential() + "\r\n\r\n");
        if (statusOf(c.readHead()) != 200) return false;
        return c.send(payload) && c.readExactly(payload.size()) == payload;
    }
    TempDir dir_;
    Installation installation_{dir_, RELAYPRO_BINARY};
};

TEST_F(Metrics, TheEndpointAnswersMetricsOnlyAndIsListedInStatus) {
    TestServer echo(false, TestServer::echo());
    auto relay = start(echo.port());
    ASSERT_TRUE(tunnel(*relay, echo.port(), "ping"));
    HttpAnswer a = http(relay->metricsPort(), "GET", "/metrics");
    ASSERT_EQ(a.status, 200) << a.head;
    EXPECT_EQ(headerOf(a.head, "Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
    EXPECT_NE(a.body.find("# TYPE relaypro_tunnels_opened_total counter\n"), std::string::npos) << a.body;
    EXPECT_NE(a.body.find("relaypro_build_info{version=\""), std::string::npos);
    EXPECT_NE(a.body.find("relaypro_workers{generation=\"1\",state=\"serving\"} 2\n"), std::string::npos) << a.body;
    EXPECT_GT(sampleOf(a.body, "relaypro_resident_memory_bytes").value_or(0), 1e6);
    EXPECT_GT(sampleOf(a.body, "relaypro_open_fds").value_or(0), 10);
    EXPECT_EQ(sampleOf(a.body, "relaypro_processes"), 3);
    // The query string is not part of the path.
    EXPECT_EQ(http(relay->metricsPort(), "GET", "/metrics?x=1").status, 200);
    EXPECT_EQ(http(relay->metricsPort(), "HEAD", "/metrics").status, 200);
    for (const char* path : {"/", "/metric", "/metrics/", "/relaypro/v1/health", "/../metrics"}) {
        EXPECT_EQ(http(relay->metricsPort(), "GET", path).status, 404) << path;
    }
    for (const char* method : {"POST", "PUT", "DELETE", "OPTIONS", "PATCH"}) {
        HttpAnswer m = http(relay->metricsPort(), method, "/metrics");
        EXPECT_EQ(m.status, 405) << method;
        EXPECT_EQ(headerOf(m.head, "Allow"), "GET, HEAD") << method;
    }
    // Nothing the test authenticated with, nor any address of a client, is in it.
    a = http(relay->metricsPort(), "GET", "/metrics");
    EXPECT_TRUE(secretsIn(a.body).empty());
    EXPECT_EQ(a.body.find("127.0.0.1"), std::string::npos);

    auto [code, out] = cli({"status", "--json"});
    ASSERT_EQ(code, 0) << out;
    EXPECT_NE(out.find(R"({"kind":"metrics","address":"127.0.0.1:)" + std::to_string(relay->metricsPort()) + "\"}"),
              std::string::npos)
        << out;
}

// relaypro_worker_loop_lag_seconds: every worker ticks every 25 ms and counts how late the tick
// ran. Idle, the ticks are on time (a lag taken against the wrong clock, or one that counted the
// period, would not be); a worker stopped for 400 ms (SIGSTOP, then SIGCONT) is a loop held that
// long: one tick counts a lag above 0.25 s.
TEST_F(Metrics, AStalledWorkerLoopShowsInTheLoopLag) {
    TestServer echo(false, TestServer::echo());
    auto relay = start(echo.port());
    struct Lag {
        double all = -1, within10ms = -1, within250ms = -1;
    };
    auto lag = [&] {  // one scrape, so that the buckets agree
        HttpAnswer a = http(relay->metricsPort(), "GET", "/metrics");
        auto bucket = [&](const char* le) {
            return sampleOf(a.body, std::string("relaypro_worker_loop_lag_seconds_bucket{le=\"") + le + "\"}")
                .value_or(-1);
        };
        return Lag{bucket("+Inf"), bucket("0.01"), bucket("0.25")};
    };
    // The ticks come in (both workers, 40 a second each), nearly all within 10 ms of their time.
    ASSERT_TRUE(eventually([&] { return lag().all >= 80; }, 10s)) << lag().all;
    const Lag before = lag();
    EXPECT_GE(before.within10ms, 0.8 * before.all) << before.within10ms << " of " << before.all;
    const std::vector<pid_t> workers = relay->workerPids();
    ASSERT_EQ(workers.size(), 2U);
    ASSERT_EQ(::kill(workers[0], SIGSTOP), 0);
    std::this_thread::sleep_for(400ms);  // the stall itself, not a wait for something
    ASSERT_EQ(::kill(workers[0], SIGCONT), 0);
    EXPECT_TRUE(eventually(
        [&] {
            const Lag now = lag();
            return now.all - now.within250ms >= before.all - before.within250ms + 1;
        },
        10s));
}

// An idle worker wakes for its 25 ms tick and little else: not for the 1 ms polls that a
// libevent timer makes while CLOCK_MONOTONIC_COARSE catches up with it (about 150 a second
// before the tick became a timerfd). Its voluntary context switches are its wake-ups (a
// preemption on a busy machine is not one of them).
TEST_F(Metrics, AnIdleWorkerWakesAboutFortyTimesASecond) {
    TestServer echo(false, TestServer::echo());
    auto relay = start(echo.port());
    const std::vector<pid_t> workers = relay->workerPids();
    ASSERT_EQ(workers.size(), 2U);
    auto wakeups = [](pid_t pid) {
        for (const auto& line : splitLines(readText("/proc/" + std::to_string(pid) + "/status"))) {
            if (line.starts_with("voluntary_ctxt_switches:"))
                return int64_t{std::stoll(line.substr(line.find(':') + 1))};
        }
        return int64_t{-1};
    };
    const int64_t before = wakeups(workers[1]);
    ASSERT_GE(before, 0);
    const auto start = std::chrono::steady_clock::now();
    std::this_thread::sleep_for(2s);  // the window counted
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double perSecond = static_cast<double>(wakeups(workers[1]) - before) / seconds;
    EXPECT_GT(perSecond, 20) << "the tick runs";
    EXPECT_LT(perSecond, 90) << "more than the tick wakes it";
}

// The endpoint runs on the supervisor's loop: what a client can make it hold is bounded (review of
// issue 18: evhttp's timeouts restarted with every byte, and it had no connection cap).
TEST_F(Metrics, TheEndpointBoundsWhatAClientCanHold) {
    TestServer echo(false, TestServer::echo());
    auto relay = start(echo.port());
    // A request line that is not HTTP/1.x, and a head over 8 KiB.
    EXPECT_EQ(http(relay->metricsPort(), "GET", "/metrics HTTP/2.0\r\nX:").status, 400);
    Client big;
    ASSERT_TRUE(big.connect("127.0.0.1", relay->metricsPort(), false));
    big.send("GET /metrics HTTP/1.1\r\nX: " + std::string(9000, 'a'));
    EXPECT_EQ(statusOf(big.readHead()), 431);
    // 64 connections that send nothing take every place; the next is closed as it comes.
    std::vector<std::unique_ptr<Client>> idle;
    for (int i = 0; i < 64; ++i) {
        idle.push_back(std::make_unique<Client>());
        ASSERT_TRUE(idle.back()->connect("127.0.0.1", relay->metricsPort(), false));
    }
    // The kernel's queue hands connections over in order: this one is the 65th.
    Client extra;
    ASSERT_TRUE(extra.connect("127.0.0.1", relay->metricsPort(), false));
    EXPECT_TRUE(extra.waitClosed(5s)) << "over the cap";
    // A client that trickles its head is cut at the deadline (10 s from accept) however it sends.
    for (const char* part : {"G", "E", "T"}) {
        ASSERT_TRUE(idle.front()->send(part));
        std::this_thread::sleep_for(1s);
    }
    for (auto& c : idle) EXPECT_TRUE(c->waitClosed(15s));
    EXPECT_EQ(http(relay->metricsPort(), "GET", "/metrics").status, 200) << "the places are free again";
}

// Prometheus, as Debian ships it, scraping every second on loopback.
class Prometheus {
public:
    Prometheus(const fs::path& dir, uint16_t target, const fs::path& rules) {
        // The shipped rules, with their `for:` waits cut to nothing so that the test sees them fire.
        std::string text = readText(rules);
        text = std::regex_replace(text, std::regex("for: [0-9]+[smh]"), "for: 0s");
        writeText(dir / "rules.yml", text);
        writeText(dir / "prometheus.yml",
                  "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                  "rule_files:\n  - rules.yml\nscrape_configs:\n  - job_name: relaypro\n"
                  "    static_configs:\n      - targets: ['127.0.0.1:" +
                      std::to_string(target) + "']\n");
        process_ = ChildProcess::spawn(
            {"/usr/bin/prometheus", "--config.file=" + (dir / "prometheus.yml").string(),
             "--storage.tsdb.path=" + (dir / "tsdb").string(), "--web.listen-address=127.0.0.1:0"},
            {{"PATH", "/usr/bin:/bin"}, {"HOME", dir.string()}}, dir / "prometheus.out", dir / "prometheus.err");
        logs_ = dir / "prometheus.err";
        // It says where it listens (it bound port 0).
        static const std::regex kListening(R"(msg="Listening on" address=127\.0\.0\.1:([0-9]+))");
        eventually(
            [&] {
                std::smatch m;
                const std::string said = log();
                if (!std::regex_search(said, m, kListening)) return false;
                port_ = static_cast<uint16_t>(std::stoi(m[1].str()));
                return true;
            },
            30s);
    }
    ~Prometheus() {
        if (process_.running()) process_.stop(SIGTERM);
    }
    [[nodiscard]] uint16_t port() const { return port_; }
    [[nodiscard]] std::string log() const { return readText(logs_); }
    // The result vector of an instant query: labels (as JSON text) -> value.
    std::map<std::string, double> query(const std::string& promql) const {
        std::map<std::string, double> out;
        HttpAnswer a = http(port_, "GET", "/api/v1/query?query=" + urlEncode(promql));
        json_error_t err;
        json_t* root = json_loads(a.body.c_str(), 0, &err);
        json_t* result = json_object_get(json_object_get(root, "data"), "result");
        size_t i = 0;
        json_t* item = nullptr;
        json_array_foreach(result, i, item) {
            char* labels = json_dumps(json_object_get(item, "metric"), JSON_SORT_KEYS | JSON_COMPACT);
            const char* v = json_string_value(json_array_get(json_object_get(item, "value"), 1));
            out[labels != nullptr ? labels : ""] = v != nullptr ? std::stod(v) : std::nan("");
            std::free(labels);
        }
        json_decref(root);
        return out;
    }
    // The single value of a query that sums to one series; NaN when it has none.
    [[nodiscard]] double scalar(const std::string& promql) const {
        auto r = query(promql);
        return r.size() == 1 ? r.begin()->second : std::nan("");
    }
    std::string raw(const std::string& promql) const {
        return http(port_, "GET", "/api/v1/query?query=" + urlEncode(promql)).body;
    }
    std::string alerts() const { return http(port_, "GET", "/api/v1/alerts").body; }
    // The metric names Prometheus has that match `pattern`.
    std::vector<std::string> names(const std::regex& pattern) const {
        std::vector<std::string> out;
        json_error_t err;
        json_t* root = json_loads(http(port_, "GET", "/api/v1/label/__name__/values").body.c_str(), 0, &err);
        size_t i = 0;
        json_t* item = nullptr;
        json_array_foreach(json_object_get(root, "data"), i, item) {
            const char* n = json_string_value(item);
            if (n != nullptr && std::regex_match(n, pattern)) out.emplace_back(n);
        }
        json_decref(root);
        return out;
    }

private:
    ChildProcess process_;
    uint16_t port_ = 0;
    fs::path logs_;
};

TEST_F(Metrics, PrometheusCountersSurviveReloadUpgradeAndCrash) {
    if (!fs::exists("/usr/bin/prometheus")) {
        GTEST_SKIP() << "Debian's prometheus package is not installed (packaging/install-deps.sh installs it)";
    }
    TestServer echo(false, TestServer::echo());
    auto relay = start(echo.port());
    TempDir promDir;
    Prometheus prometheus(promDir.path(), relay->metricsPort(),
                          fs::path(RELAYPRO_SOURCE_DIR) / "packaging/relaypro-alerts.yml");
    ASSERT_NE(prometheus.port(), 0) << prometheus.log();
    ASSERT_TRUE(eventually([&] { return prometheus.scalar("up{job=\"relaypro\"}") == 1; }, 30s)) << prometheus.log();
    const std::string payload = "ping";
    int tunnels = 0;
    auto some = [&](int n) {
        for (int i = 0; i < n; ++i) {
            ASSERT_TRUE(tunnel(*relay, echo.port(), payload)) << i;
            ++tunnels;
        }
    };
    // The relay's own figure, as the next scrape will see it.
    auto relayReports = [&](const std::string& series, double want) {
        std::optional<double> seen;
        bool ok = eventually([&] {
            seen = sampleOf(http(relay->metricsPort(), "GET", "/metrics").body, series);
            return seen == want;
        });
        if (!ok) ADD_FAILURE() << series << " is " << seen.value_or(-1) << ", not " << want;
        return ok;
    };
    some(20);
    relay->signal(SIGHUP);
    ASSERT_TRUE(relay->waitForLog("reload"));
    some(20);
    // A tunnel held open across the upgrade keeps the old generation draining with its counters.
    Client held;
    ASSERT_TRUE(held.connect("127.0.0.1", relay->httpsPort(), true));
    held.send("CONNECT localhost:" + std::to_string(echo.port()) +
              " HTTP/1.1\r\nProxy-Authorization: " + basicCredential() + "\r\n\r\n");
    ASSERT_EQ(statusOf(held.readHead()), 200);
    ++tunnels;
    install(RELAYPRO_NEXT_BINARY);
    auto [code, out] = cli({"upgrade", "--timeout", "60"});
    ASSERT_EQ(code, 0) << out;
    some(20);
    ASSERT_TRUE(held.send(payload) && held.readExactly(payload.size()) == payload);
    held.close();
    // A worker of the new generation crashes once its counts were reported; its counts stay.
    ASSERT_TRUE(relayReports("relaypro_tunnels_opened_total{port=\"other\"}", tunnels));
    ASSERT_TRUE(relayReports("relaypro_relayed_bytes_total{direction=\"to_client\"}",
                             tunnels * static_cast<double>(payload.size())));
    std::vector<pid_t> workers = relay->workerPids();
    ASSERT_GE(workers.size(), 4U);
    ::kill(workers.back(), SIGKILL);
    ASSERT_TRUE(relay->waitForLog("worker exited unexpectedly"));
    some(10);
    // Failed authentication: CONNECTs without credentials, more than one a second over the rule's
    // five minutes (rate() divides by the whole window).
    constexpr int kFailures = 400;
    for (int i = 0; i < kFailures; ++i) {
        Client c;
        ASSERT_TRUE(c.connect("127.0.0.1", relay->httpsPort(), true));
        c.send("CONNECT localhost:" + std::to_string(echo.port()) + " HTTP/1.1\r\n\r\n");
        ASSERT_EQ(statusOf(c.readHead()), 407);
    }
    ASSERT_TRUE(relayReports("relaypro_authentication_attempts_total{scheme=\"none\",result=\"failure\"}", kFailures));

    // What Prometheus stored matches what the test did.
    const double bytes = tunnels * static_cast<double>(payload.size());
    EXPECT_TRUE(eventually([&] { return prometheus.scalar("sum(relaypro_tunnels_opened_total)") == tunnels; }, 30s))
        << prometheus.scalar("sum(relaypro_tunnels_opened_total)") << " != " << tunnels;
    EXPECT_TRUE(eventually(
        [&] { return prometheus.scalar("relaypro_relayed_bytes_total{direction=\"to_upstream\"}") == bytes; }, 30s));
    EXPECT_EQ(prometheus.scalar("relaypro_relayed_bytes_total{direction=\"to_client\"}"), bytes);
    EXPECT_EQ(prometheus.scalar("relaypro_authentication_attempts_total{scheme=\"basic\",result=\"success\"}"),
              tunnels);
    EXPECT_TRUE(eventually(
        [&] {
            return prometheus.scalar("relaypro_authentication_attempts_total{scheme=\"none\",result=\"failure\"}") ==
                   kFailures;
        },
        30s));
    EXPECT_EQ(prometheus.scalar("relaypro_requests_refused_total{reason=\"proxy_auth_required\"}"), kFailures);
    EXPECT_EQ(prometheus.scalar("relaypro_connect_answer_duration_seconds_count"), tunnels);
    EXPECT_EQ(prometheus.scalar("sum(relaypro_tls_handshakes_total)"), tunnels + kFailures);
    EXPECT_EQ(prometheus.scalar("relaypro_reloads_total{result=\"success\"}"), 1);
    EXPECT_EQ(prometheus.scalar("relaypro_upgrades_total{result=\"success\"}"), 1);
    EXPECT_EQ(prometheus.scalar("relaypro_worker_restarts_total"), 1);
    EXPECT_EQ(prometheus.scalar("relaypro_tunnels_active"), 0);
    EXPECT_EQ(prometheus.scalar("relaypro_registration_state{state=\"unregistered\"}"), 1);
    EXPECT_GT(prometheus.scalar("relaypro_ca_certificate_expiry_timestamp_seconds - time()"), 86400 * 365);
    // The build changed during the upgrade: Prometheus saw both.
    EXPECT_EQ(prometheus.query("count_over_time(relaypro_build_info[10m])").size(), 2U);
    // No counter series ever went backwards, across the reload, the upgrade and the crash. resets()
    // drops the name, so each family is asked on its own.
    auto names = prometheus.names(std::regex("relaypro_.+(_total|_bucket|_count|_sum)"));
    EXPECT_GE(names.size(), 14U) << "every counter family and histogram";
    for (const auto& name : names) {
        EXPECT_FALSE(prometheus.query("resets(" + name + "[10m])").empty())
            << name << prometheus.raw("resets(" + name + "[10m])");
        auto went = prometheus.query("resets(" + name + "[10m]) > 0");
        EXPECT_TRUE(went.empty()) << name << " went backwards: " << went.begin()->first;
    }
    // The alert rules fire.
    EXPECT_TRUE(eventually(
        [&] {
            std::string a = prometheus.alerts();
            return a.find("\"alertname\":\"RelayProAuthenticationFailuresSpiking\"") != std::string::npos &&
                   a.find("\"state\":\"firing\"") != std::string::npos;
        },
        30s))
        << prometheus.alerts()
        << prometheus.raw("sum by (instance) (rate(relaypro_authentication_attempts_total{result=\"failure\"}[5m]))");
    // A rule whose condition does not hold stays quiet.
    EXPECT_EQ(prometheus.alerts().find("RelayProCaCertificateExpiring"), std::string::npos);
}

}  // namespace
}  // namespace relaypro::testing
