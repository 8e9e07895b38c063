// The metrics' arithmetic and text: totals over live and gone workers never go backwards, the
// state survives the hand-over's bytes, and the exposition is what Prometheus parses (names,
// HELP and TYPE once per family, label escaping, histogram buckets in order and cumulative).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "common/relay_counters.h"
#include "ipc/messages.h"
#include "supervisor/metrics_endpoint.h"
#include "supervisor/metrics_registry.h"
#include "supervisor/metrics_text.h"

namespace relaypro {
namespace {

using counters::Id;
using namespace std::chrono_literals;

ipc::Counters report(std::initializer_list<std::pair<Id, uint64_t>> values, uint64_t rss = 0, uint64_t fds = 0) {
    ipc::Counters m;
    m.residentBytes = rss;
    m.descriptors = fds;
    for (const auto& [id, v] : values) m.values.emplace_back(static_cast<uint16_t>(id), v);
    return m;
}

TEST(RelayCounters, CodesPortsAndLatenciesMapToTheirIds) {
    EXPECT_EQ(counters::refusedId("bad_request"), Id::RefusedBadRequest);
    EXPECT_EQ(counters::refusedId("invalid_credentials"), Id::RefusedInvalidCredentials);
    EXPECT_EQ(counters::refusedId("something_else"), Id::RefusedOther);
    EXPECT_EQ(counters::tunnelId(443), Id::TunnelsOpened443);
    EXPECT_EQ(counters::tunnelId(4222), Id::TunnelsOpened4222);
    EXPECT_EQ(counters::tunnelId(8443), Id::TunnelsOpenedOther);
    EXPECT_EQ(counters::bucketOf(0ns), 0U);
    EXPECT_EQ(counters::bucketOf(1ms), 0U) << "a bucket holds its upper bound (le)";
    EXPECT_EQ(counters::bucketOf(1001us), 1U);
    EXPECT_EQ(counters::bucketOf(5s), counters::kLatencyBuckets.size() - 1);
    EXPECT_EQ(counters::bucketOf(6s), counters::kLatencyBuckets.size()) << "+Inf";
    // Every id outside the histogram names a series, and no two the same one.
    std::set<std::string> seen;
    for (size_t i = 0; i < counters::kCount; ++i) {
        const auto id = static_cast<Id>(i);
        if ((id >= Id::ConnectLatencyBucket0 && id <= Id::LoopLagSumMicros) ||
            (id >= Id::FirstFlightWaitBucket0 && id <= Id::FirstFlightWaitSumMicros))
            continue;
        counters::Series s = counters::seriesOf(id);
        ASSERT_FALSE(s.family.empty()) << i;
        std::string key = std::string(s.family) + "|" + std::string(s.value1) + "|" + std::string(s.value2);
        EXPECT_TRUE(seen.insert(key).second) << key;
    }
}

TEST(MetricsRegistry, TotalsSumLiveAndGoneWorkersAndNeverGoBackwards) {
    MetricsRegistry r;
    r.workerReported(100, report({{Id::TokensIssued, 5}}));
    r.workerReported(200, report({{Id::TokensIssued, 7}}));
    EXPECT_EQ(r.total(Id::TokensIssued), 12U);
    // A lower report (a compromised worker, or one reordered) does not lower the total.
    r.workerReported(100, report({{Id::TokensIssued, 1}}));
    EXPECT_EQ(r.total(Id::TokensIssued), 12U);
    r.workerGone(100, true);
    EXPECT_EQ(r.total(Id::TokensIssued), 12U) << "a gone worker's counts stay";
    EXPECT_EQ(r.workerRestarts(), 1U);
    // A new worker given the same pid starts from zero without hiding its counts.
    r.workerStarted(100);
    r.workerReported(100, report({{Id::TokensIssued, 2}}));
    EXPECT_EQ(r.total(Id::TokensIssued), 14U);
    // Huge values saturate instead of wrapping.
    r.workerReported(300, report({{Id::TokensIssued, UINT64_MAX - 1}}));
    EXPECT_EQ(r.total(Id::TokensIssued), UINT64_MAX);
    // Ids a newer build knows are skipped.
    ipc::Counters newer = report({{Id::TokensIssued, 3}});
    newer.values.emplace_back(static_cast<uint16_t>(counters::kCount + 5), 9);
    r.workerReported(400, newer);
    EXPECT_EQ(r.total(Id::BytesToClient), 0U);
}

TEST(MetricsRegistry, ProcessFiguresAreThoseOfTheLiveWorkers) {
    MetricsRegistry r;
    r.workerReported(1, report({}, 1000, 10));
    r.workerReported(2, report({}, 3000, 30));
    EXPECT_EQ(r.workersResidentBytes(), 4000U);
    EXPECT_EQ(r.workersDescriptors(), 40U);
    r.workerGone(1, false);
    EXPECT_EQ(r.workersResidentBytes(), 3000U);
    EXPECT_EQ(r.workerRestarts(), 0U);
}

TEST(MetricsRegistry, TheStateCrossesTheHandOverAndGarbageIsRefused) {
    MetricsRegistry r;
    r.workerReported(100, report({{Id::TunnelsOpened443, 4}}));
    r.workerReported(200, report({{Id::TunnelsOpened443, 6}}));
    r.workerGone(200, false);
    r.consoleCall(MetricsRegistry::Endpoint::Verify, MetricsRegistry::Outcome::Refused, 30ms);
    r.reloaded(MetricsRegistry::Result::Success);
    r.upgraded(MetricsRegistry::Result::Failure);
    const std::string bytes = r.serialize();
    MetricsRegistry next;
    ASSERT_TRUE(next.restore(bytes).ok());
    EXPECT_EQ(next.total(Id::TunnelsOpened443), 10U);
    EXPECT_EQ(next.consoleCalls(MetricsRegistry::Endpoint::Verify, MetricsRegistry::Outcome::Refused), 1U);
    EXPECT_EQ(next.consoleLatency(MetricsRegistry::Endpoint::Verify).count(), 1U);
    EXPECT_EQ(next.reloads(MetricsRegistry::Result::Success), 1U);
    EXPECT_EQ(next.upgrades(MetricsRegistry::Result::Failure), 1U);
    // The adopted worker reports again, cumulatively: nothing is counted twice.
    next.workerReported(100, report({{Id::TunnelsOpened443, 5}}));
    EXPECT_EQ(next.total(Id::TunnelsOpened443), 11U);
    // Every truncation and an extra byte are refused, and the registry is left as it was.
    for (size_t n = 0; n < bytes.size(); ++n) {
        EXPECT_FALSE(next.restore(std::string_view(bytes).substr(0, n)).ok()) << n;
    }
    EXPECT_FALSE(next.restore(bytes + "x").ok());
    EXPECT_EQ(next.total(Id::TunnelsOpened443), 11U);
}

TEST(MetricsRegistry, ConsoleEndpointsAreNamedByTheirPath) {
    EXPECT_EQ(MetricsRegistry::endpointOf("/api/public/relay-pro/register"), MetricsRegistry::Endpoint::Register);
    EXPECT_EQ(MetricsRegistry::endpointOf("/api/public/relay-pro/heartbeat"), MetricsRegistry::Endpoint::Heartbeat);
    EXPECT_EQ(MetricsRegistry::endpointOf("/api/public/relay-pro/responders/verify"),
              MetricsRegistry::Endpoint::Verify);
    EXPECT_EQ(MetricsRegistry::endpointOf("/elsewhere"), MetricsRegistry::Endpoint::Other);
}

TEST(MetricsText, LabelValuesAreEscaped) {
    EXPECT_EQ(escapeLabelValue(R"(a"b\c)"), R"(a\"b\\c)");
    EXPECT_EQ(escapeLabelValue("line\nbreak"), "line\\nbreak");
    EXPECT_EQ(escapeLabelValue("plain 1.2.3"), "plain 1.2.3");
}

// Checks the text as the exposition format 0.0.4 says it must be.
struct Parsed {
    std::map<std::string, std::string> types;  // family -> type
    std::map<std::string, double> samples;     // name{labels} -> value
    std::vector<std::pair<std::string, double>> ordered;
};

Parsed parse(const std::string& text) {
    static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
    static const std::regex kSample(
        R"re(([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\["\\n])*",?)*\})? (\S+))re");
    Parsed p;
    std::istringstream in(text);
    std::string line;
    std::set<std::string> helped;
    while (std::getline(in, line)) {
        if (line.starts_with("# HELP ")) {
            std::string name = line.substr(7, line.find(' ', 7) - 7);
            EXPECT_TRUE(std::regex_match(name, kName)) << line;
            EXPECT_TRUE(helped.insert(name).second) << "HELP twice: " << name;
            continue;
        }
        if (line.starts_with("# TYPE ")) {
            std::istringstream t(line.substr(7));
            std::string name, type;
            t >> name >> type;
            EXPECT_TRUE(helped.contains(name)) << "TYPE without HELP: " << name;
            EXPECT_TRUE(p.types.emplace(name, type).second) << "TYPE twice: " << name;
            continue;
        }
        std::smatch m;
        EXPECT_TRUE(std::regex_match(line, m, kSample)) << "not a sample: " << line;
        if (m.empty()) continue;
        const std::string key = line.substr(0, line.rfind(' '));
        p.samples[key] = std::stod(m[5].str());
        p.ordered.emplace_back(key, std::stod(m[5].str()));
    }
    return p;
}

TEST(MetricsText, TheExpositionParsesWithEachFamilyOnceAndHistogramsInOrder) {
    MetricsRegistry r;
    r.workerReported(1, report({{Id::TunnelsOpened443, 3},
                                {Id::BytesToClient, 1000},
                                {Id::ConnectLatencyBucket0, 2},
                                {static_cast<Id>(static_cast<size_t>(Id::ConnectLatencyBucket0) + 3), 1},
                                {Id::ConnectLatencyBucketInf, 1},
                                {Id::ConnectLatencySumMicros, 7500000},
                                {Id::LoopLagBucket0, 40},
                                {static_cast<Id>(static_cast<size_t>(Id::LoopLagBucket0) + 4), 1},
                                {Id::LoopLagSumMicros, 30000},
                                {static_cast<Id>(static_cast<size_t>(Id::FirstFlightWaitBucket0) + 8), 3},
                                {Id::FirstFlightWaitBucketInf, 1},
                                {Id::FirstFlightWaitSumMicros, 2500000}},
                               4096, 12));
    r.consoleCall(MetricsRegistry::Endpoint::Heartbeat, MetricsRegistry::Outcome::Success, 20ms);
    MetricsSnapshot s;
    s.version = "1.2.3 \"quoted\"";
    s.opensslVersion = "3.0.15";
    s.registration = "registered";
    s.caNotAfterUnix = 2000000000;
    s.workers = {{2, "serving", 1}, {2, "serving", 1}, {1, "draining", 1}};
    s.tunnelsActive = 5;
    s.processes = 4;
    const std::string text = renderMetrics(r, s);
    Parsed p = parse(text);
    EXPECT_EQ(p.types["relaypro_tunnels_opened_total"], "counter");
    EXPECT_EQ(p.types["relaypro_connect_answer_duration_seconds"], "histogram");
    EXPECT_EQ(p.types["relaypro_tunnels_active"], "gauge");
    EXPECT_EQ(p.samples["relaypro_tunnels_opened_total{port=\"443\"}"], 3);
    EXPECT_EQ(p.samples["relaypro_relayed_bytes_total{direction=\"to_client\"}"], 1000);
    EXPECT_EQ(p.samples["relaypro_workers{generation=\"2\",state=\"serving\"}"], 2);
    EXPECT_EQ(p.samples["relaypro_workers{generation=\"1\",state=\"draining\"}"], 1);
    EXPECT_EQ(p.samples["relaypro_registration_state{state=\"registered\"}"], 1);
    EXPECT_EQ(p.samples["relaypro_registration_state{state=\"revoked\"}"], 0);
    EXPECT_EQ(p.samples["relaypro_build_info{version=\"1.2.3 \\\"quoted\\\"\",openssl=\"3.0.15\"}"], 1);
    EXPECT_EQ(p.samples["relaypro_console_requests_total{endpoint=\"heartbeat\",outcome=\"success\"}"], 1);
    EXPECT_EQ(p.samples["relaypro_ca_certificate_expiry_timestamp_seconds"], 2000000000);
    // The histogram: buckets in increasing le, cumulative, +Inf last and equal to _count.
    std::vector<std::pair<double, double>> buckets;
    for (const auto& [key, v] : p.ordered) {
        if (!key.starts_with("relaypro_connect_answer_duration_seconds_bucket")) continue;
        std::string le = key.substr(key.find("le=\"") + 4);
        le = le.substr(0, le.find('"'));
        buckets.emplace_back(le == "+Inf" ? HUGE_VAL : std::stod(le), v);
    }
    ASSERT_EQ(buckets.size(), counters::kLatencyBuckets.size() + 1);
    for (size_t i = 1; i < buckets.size(); ++i) {
        EXPECT_LT(buckets[i - 1].first, buckets[i].first);
        EXPECT_LE(buckets[i - 1].second, buckets[i].second);
    }
    EXPECT_EQ(buckets.front().second, 2);
    EXPECT_EQ(buckets.back().second, 4);
    EXPECT_EQ(p.samples["relaypro_connect_answer_duration_seconds_count"], 4);
    EXPECT_DOUBLE_EQ(p.samples["relaypro_connect_answer_duration_seconds_sum"], 7.5);
    // The worker histograms of issue 19 (loop lag, first-flight wait): each its own family, its
    // own buckets (cumulative at the le given).
    auto expectHistogram = [&](const std::string& name, const std::vector<std::pair<std::string, double>>& at,
                               double count, double sum) {
        EXPECT_EQ(p.types[name], "histogram") << name;
        for (const auto& [le, n] : at) EXPECT_EQ(p.samples[name + "_bucket{le=\"" + le + "\"}"], n) << name << le;
        EXPECT_EQ(p.samples[name + "_count"], count) << name;
        EXPECT_DOUBLE_EQ(p.samples[name + "_sum"], sum) << name;
    };
    expectHistogram("relaypro_worker_loop_lag_seconds", {{"0.01", 40}, {"0.025", 41}}, 41, 0.03);
    expectHistogram("relaypro_first_flight_wait_seconds", {{"0.25", 0}, {"0.5", 3}, {"+Inf", 4}}, 4, 2.5);
    // No secret or identity can be in it: nothing of the kind is an input. The only free-form
    // values are the version strings, escaped above.
}

// A compromised worker's huge bucket counts cannot make a higher bucket read lower (review).
TEST(MetricsText, HistogramBucketsSaturateInsteadOfWrapping) {
    MetricsRegistry r;
    r.workerReported(1, report({{Id::ConnectLatencyBucket0, UINT64_MAX},
                                {static_cast<Id>(static_cast<size_t>(Id::ConnectLatencyBucket0) + 1), 5}}));
    Parsed p = parse(renderMetrics(r, MetricsSnapshot{}));
    double previous = 0;
    for (const auto& [key, v] : p.ordered) {
        if (!key.starts_with("relaypro_connect_answer_duration_seconds_bucket")) continue;
        EXPECT_GE(v, previous) << key;
        previous = v;
    }
    EXPECT_GT(previous, 1e19);
}

TEST(MetricsText, AnUnknownRegistrationStateIsListedToo) {
    MetricsRegistry r;
    MetricsSnapshot s;
    s.registration = "registering";
    Parsed p = parse(renderMetrics(r, s));
    EXPECT_EQ(p.samples["relaypro_registration_state{state=\"registering\"}"], 1);
    EXPECT_EQ(p.samples["relaypro_registration_state{state=\"registered\"}"], 0);
}

TEST(MetricsEndpoint, AnswersByPathThenMethodAndRefusesWhatIsNotHttpOne) {
    const MetricsEndpoint::Render render = [] { return std::string("relaypro_x 1\n"); };
    auto status = [&](std::string_view head) { return MetricsEndpoint::answer(head, render).status; };
    EXPECT_EQ(status("GET /metrics HTTP/1.1\r\nHost: a"), 200);
    EXPECT_EQ(status("GET /metrics?name[]=x HTTP/1.0"), 200);
    EXPECT_EQ(status("HEAD /metrics HTTP/1.1"), 200);
    EXPECT_EQ(status("GET / HTTP/1.1"), 404);
    EXPECT_EQ(status("POST /other HTTP/1.1"), 404);
    EXPECT_EQ(status("POST /metrics HTTP/1.1"), 405);
    EXPECT_EQ(status("FOO /metrics HTTP/1.1"), 405);
    for (std::string_view bad : {"", "GET", "GET /metrics", "GET /metrics HTTP/2.0", "GET  /metrics HTTP/1.1",
                                 "GET /metrics HTTP/1.1 x", " /metrics HTTP/1.1", "GET /metrics HTTP/1.10"}) {
        EXPECT_EQ(status(bad), 400) << bad;
    }
    const std::string ok = MetricsEndpoint::answer("GET /metrics HTTP/1.1", render).text;
    EXPECT_TRUE(ok.starts_with("HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"));
    EXPECT_TRUE(ok.ends_with("\r\n\r\nrelaypro_x 1\n"));
    EXPECT_NE(ok.find("Content-Length: 13\r\n"), std::string::npos);
    const std::string head = MetricsEndpoint::answer("HEAD /metrics HTTP/1.1", render).text;
    EXPECT_TRUE(head.ends_with("Content-Length: 13\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"));
    EXPECT_NE(MetricsEndpoint::answer("PUT /metrics HTTP/1.1", render).text.find("Allow: GET, HEAD\r\n"),
              std::string::npos);
}

TEST(CountersMessage, DecodesOnlyIncreasingIdsWithinItsBound) {
    ipc::Counters m = report({{Id::TunnelsOpened443, 1}, {Id::TokensIssued, 2}}, 5, 6);
    ipc::Counters back;
    ASSERT_TRUE(ipc::decodeBody(ipc::frame(m, 1).substr(12), back));
    EXPECT_EQ(back.values, m.values);
    EXPECT_EQ(back.residentBytes, 5U);
    EXPECT_EQ(back.descriptors, 6U);
    ipc::Counters twice = report({{Id::TokensIssued, 1}, {Id::TokensIssued, 2}});
    EXPECT_FALSE(ipc::decodeBody(ipc::frame(twice, 1).substr(12), back)) << "an id twice";
    ipc::Counters down = report({{Id::TokensIssued, 1}, {Id::TunnelsOpened443, 2}});
    EXPECT_FALSE(ipc::decodeBody(ipc::frame(down, 1).substr(12), back)) << "ids out of order";
    ipc::Writer w;
    w.u64(0);
    w.u64(0);
    w.u32(ipc::Counters::kMaxEntries + 1);
    EXPECT_FALSE(ipc::decodeBody(w.data(), back)) << "more entries than allowed";
}

}  // namespace
}  // namespace relaypro
