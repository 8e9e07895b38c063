#include "supervisor/metrics_text.h"

#include <algorithm>
#include <cstdio>
#include <map>

namespace relaypro {

namespace {

using counters::Id;

// One family at a time: HELP and TYPE once, then its samples.
class Exposition {
public:
    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_.append("# HELP ").append(name).append(" ").append(help).append("\n");
        out_.append("# TYPE ").append(name).append(" ").append(type).append("\n");
    }
    // `labels`: name, value pairs.
    void sample(std::string_view name, std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
                std::string_view value) {
        out_.append(name);
        if (labels.size() != 0) {
            out_.push_back('{');
            bool first = true;
            for (const auto& [label, v] : labels) {
                if (!first) out_.push_back(',');
                first = false;
                out_.append(label).append("=\"").append(escapeLabelValue(v)).append("\"");
            }
            out_.push_back('}');
        }
        out_.append(" ").append(value).append("\n");
    }
    void sample(std::string_view name, std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
                uint64_t value) {
        sample(name, labels, std::to_string(value));
    }
    // A histogram's buckets (cumulative, in increasing `le`, +Inf last), sum and count.
    void histogram(std::string_view name, std::string_view label, std::string_view value,
                   const std::array<uint64_t, counters::kLatencyBuckets.size() + 1>& buckets, uint64_t sumMicros) {
        uint64_t cumulative = 0;
        const std::string bucket = std::string(name) + "_bucket";
        for (size_t i = 0; i < buckets.size(); ++i) {
            cumulative = buckets[i] > UINT64_MAX - cumulative ? UINT64_MAX : cumulative + buckets[i];
            const std::string le = i < counters::kLatencyBuckets.size() ? number(counters::kLatencyBuckets[i]) : "+Inf";
            if (label.empty()) {
                sample(bucket, {{"le", le}}, cumulative);
            } else {
                sample(bucket, {{label, value}, {"le", le}}, cumulative);
            }
        }
        char sum[64];
        std::snprintf(sum, sizeof sum, "%.6f", static_cast<double>(sumMicros) / 1e6);
        if (label.empty()) {
            sample(std::string(name) + "_sum", {}, sum);
            sample(std::string(name) + "_count", {}, cumulative);
        } else {
            sample(std::string(name) + "_sum", {{label, value}}, sum);
            sample(std::string(name) + "_count", {{label, value}}, cumulative);
        }
    }
    static std::string number(double v) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%g", v);
        return buf;
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

// The worker counters, family by family in the catalogue's order (common/relay_counters.h).
void workerCounters(Exposition& x, const MetricsRegistry& r) {
    static constexpr struct {
        std::string_view family;
        std::string_view help;
    } kHelp[] = {
        {"relaypro_tunnels_opened", "Tunnels opened (CONNECT and plain-HTTP forwards), by target port."},
        {"relaypro_relayed_bytes", "Bytes relayed through tunnels, by direction."},
        {"relaypro_tls_handshakes", "TLS handshakes completed with clients, full or resumed with a ticket."},
        {"relaypro_authentication_attempts", "Authentication attempts, by scheme and result."},
        {"relaypro_tokens_issued", "Responder tokens issued by the token endpoint."},
        {"relaypro_connections_abandoned",
         "Connections whose client had given up while they waited in the accept queue: closed without a handshake."},
        {"relaypro_connections_shed",
         "TLS connections reset before their handshake by an overloaded worker: refused at accept, or their "
         "ClientHello waited over 1 s."},
        {"relaypro_requests_refused", "Requests answered with an error, by the error code of the protocol."},
        {"relaypro_upstream_source_port_fallbacks",
         "Upstream connections whose source port connect() chose although limits.sourcePorts is set."},
    };
    for (const auto& [family, help] : kHelp) {
        const std::string name = std::string(family) + "_total";
        x.family(name, "counter", help);
        for (size_t i = 0; i < counters::kCount; ++i) {
            const counters::Series s = counters::seriesOf(static_cast<Id>(i));
            if (s.family != family) continue;
            const uint64_t v = r.total(static_cast<Id>(i));
            if (s.label1.empty()) {
                x.sample(name, {}, v);
            } else if (s.label2.empty()) {
                x.sample(name, {{s.label1, s.value1}}, v);
            } else {
                x.sample(name, {{s.label1, s.value1}, {s.label2, s.value2}}, v);
            }
        }
    }
    auto histogram = [&](const char* name, const char* help, Id bucket0, Id sum) {
        std::array<uint64_t, counters::kLatencyBuckets.size() + 1> buckets{};
        for (size_t i = 0; i < buckets.size(); ++i) {
            buckets[i] = r.total(static_cast<Id>(static_cast<size_t>(bucket0) + i));
        }
        x.family(name, "histogram", help);
        x.histogram(name, "", "", buckets, r.total(sum));
    };
    histogram("relaypro_connect_answer_duration_seconds",
              "Time from a CONNECT's complete request head to its 200 answer (authentication and upstream dial).",
              Id::ConnectLatencyBucket0, Id::ConnectLatencySumMicros);
    histogram("relaypro_worker_loop_lag_seconds",
              "How late a worker's 25 ms tick ran: how long its event loop was busy with other work (a stall).",
              Id::LoopLagBucket0, Id::LoopLagSumMicros);
    histogram("relaypro_first_flight_wait_seconds",
              "How long a ClientHello waited in its worker's first-flight queue before it was processed, or shed "
              "after 1 s (a connection whose client left meanwhile is not counted): the CPU's backlog of new "
              "handshakes.",
              Id::FirstFlightWaitBucket0, Id::FirstFlightWaitSumMicros);
}

void supervisorCounters(Exposition& x, const MetricsRegistry& r) {
    using E = MetricsRegistry::Endpoint;
    using O = MetricsRegistry::Outcome;
    using R = MetricsRegistry::Result;
    constexpr E kEndpoints[] = {E::Register, E::Heartbeat, E::Verify, E::Other};
    x.family("relaypro_console_requests_total", "counter",
             "Calls to the console API, by endpoint and outcome (success: a 2xx answer; refused: another answer; "
             "unreachable: no answer).");
    for (E e : kEndpoints) {
        for (O o : {O::Success, O::Refused, O::Unreachable}) {
            x.sample("relaypro_console_requests_total",
                     {{"endpoint", MetricsRegistry::name(e)}, {"outcome", MetricsRegistry::name(o)}},
                     r.consoleCalls(e, o));
        }
    }
    x.family("relaypro_console_request_duration_seconds", "histogram", "Duration of console API calls, by endpoint.");
    for (E e : kEndpoints) {
        const Histogram& h = r.consoleLatency(e);
        x.histogram("relaypro_console_request_duration_seconds", "endpoint", MetricsRegistry::name(e), h.buckets,
                    h.sumMicros);
    }
    x.family("relaypro_reloads_total", "counter", "Configuration reloads, by result.");
    x.sample("relaypro_reloads_total", {{"result", "success"}}, r.reloads(R::Success));
    x.sample("relaypro_reloads_total", {{"result", "failure"}}, r.reloads(R::Failure));
    x.family("relaypro_upgrades_total", "counter", "Upgrades (relaypro upgrade, SIGUSR2), by result.");
    x.sample("relaypro_upgrades_total", {{"result", "success"}}, r.upgrades(R::Success));
    x.sample("relaypro_upgrades_total", {{"result", "failure"}}, r.upgrades(R::Failure));
    x.family("relaypro_worker_restarts_total", "counter", "Workers that ended unexpectedly and were replaced.");
    x.sample("relaypro_worker_restarts_total", {}, r.workerRestarts());
}

void gauges(Exposition& x, const MetricsSnapshot& s) {
    x.family("relaypro_tunnels_active", "gauge", "Tunnels open now, over every worker of every generation.");
    x.sample("relaypro_tunnels_active", {}, s.tunnelsActive);
    x.family("relaypro_connections_active", "gauge", "Client connections open now.");
    x.sample("relaypro_connections_active", {}, s.connectionsActive);
    x.family("relaypro_workers", "gauge", "Worker processes, by generation and state.");
    std::map<std::pair<uint32_t, std::string>, uint64_t> workers;
    for (const auto& w : s.workers) workers[{w.generation, w.state}] += w.count;
    for (const auto& [key, count] : workers) {
        x.sample("relaypro_workers", {{"generation", std::to_string(key.first)}, {"state", key.second}}, count);
    }
    x.family("relaypro_registration_state", "gauge",
             "1 for the registration state this relay is in (status --json's registration.state), 0 for the others.");
    std::vector<std::string> states = {"registered", "unregistered", "revoked"};
    if (std::find(states.begin(), states.end(), s.registration) == states.end()) states.push_back(s.registration);
    for (const auto& state : states) {
        x.sample("relaypro_registration_state", {{"state", state}}, state == s.registration ? 1 : 0);
    }
    if (s.caNotAfterUnix) {
        x.family("relaypro_ca_certificate_expiry_timestamp_seconds", "gauge",
                 "When the CA certificate of the CA bundle expires (Unix time).");
        x.sample("relaypro_ca_certificate_expiry_timestamp_seconds", {}, std::to_string(*s.caNotAfterUnix));
    }
    x.family("relaypro_build_info", "gauge", "The running build: RelayPro's version and the OpenSSL linked in.");
    x.sample("relaypro_build_info", {{"version", s.version}, {"openssl", s.opensslVersion}}, 1);
    x.family("relaypro_processes", "gauge", "Processes of this relay: the supervisor and its workers.");
    x.sample("relaypro_processes", {}, s.processes);
    x.family("relaypro_resident_memory_bytes", "gauge", "Resident memory, summed over the supervisor and its workers.");
    x.sample("relaypro_resident_memory_bytes", {}, s.residentBytes);
    x.family("relaypro_open_fds", "gauge", "Open file descriptors, summed over the supervisor and its workers.");
    x.sample("relaypro_open_fds", {}, s.descriptors);
}

}  // namespace

std::string escapeLabelValue(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\') {
            out += "\\\\";
        } else if (c == '"') {
            out += "\\\"";
        } else if (c == '\n') {
            out += "\\n";
        } else {
            out.push_back(c);
        }
    }
    return out;
}

std::string renderMetrics(const MetricsRegistry& registry, const MetricsSnapshot& snapshot) {
    Exposition x;
    workerCounters(x, registry);
    supervisorCounters(x, registry);
    gauges(x, snapshot);
    return x.take();
}

}  // namespace relaypro
