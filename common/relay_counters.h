// The counters a worker keeps while it serves and reports to the supervisor on each ping round
// (ipc::Counters), which sums them over every worker, the gone ones included, and exposes them on
// metrics.listen (supervisor/metrics_text.h). A counter is a plain integer the worker's one thread
// adds to: no lock, no system call. Ids are the wire's numbers: new ones are appended, never
// renumbered, so that a supervisor reads the counters of an older build's workers after an upgrade.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

namespace relaypro::counters {

enum class Id : uint16_t {
    // relaypro_tunnels_opened_total{port}
    TunnelsOpened443,
    TunnelsOpened80,
    TunnelsOpened4222,
    TunnelsOpenedOther,
    // relaypro_relayed_bytes_total{direction}
    BytesToUpstream,
    BytesToClient,
    // relaypro_tls_handshakes_total{kind}
    HandshakesFull,
    HandshakesResumed,
    // relaypro_authentication_attempts_total{scheme,result}
    AuthBearerSuccess,
    AuthBearerFailure,
    AuthBasicSuccess,
    AuthBasicFailure,
    AuthCredentialSuccess,  // the token endpoint: the console vouched for the Responder
    AuthCredentialFailure,  // the console did not
    AuthMissing,            // a CONNECT without Proxy-Authorization
    AuthOtherFailure,       // a scheme RelayPro does not take
    // relaypro_tokens_issued_total
    TokensIssued,
    // relaypro_requests_refused_total{reason}: protocol.md's error codes, in its table's order
    RefusedBadRequest,
    RefusedTargetNotAllowed,
    RefusedTlsRequired,
    RefusedNotFound,
    RefusedMethodNotAllowed,
    RefusedProxyAuthRequired,
    RefusedInvalidToken,
    RefusedRequestTimeout,
    RefusedRateLimited,
    RefusedHeaderTooLarge,
    RefusedUpstreamUnreachable,
    RefusedNotRegistered,
    RefusedConsoleUnavailable,
    RefusedUpstreamTimeout,
    RefusedVersionNotSupported,
    RefusedInvalidCredentials,
    RefusedOther,
    // relaypro_connect_answer_seconds: the time from a CONNECT's complete head to its 200, one
    // id per bucket of kLatencyBuckets (not cumulative: the exposition adds them up), then +Inf
    ConnectLatencyBucket0,
    ConnectLatencyBucketInf = ConnectLatencyBucket0 + 12,
    ConnectLatencySumMicros,
    // relaypro_worker_loop_lag_seconds: how late a worker's 25 ms tick ran, i.e. how long its
    // event loop was busy with something else (a stall); buckets as above (issue 19)
    LoopLagBucket0,
    LoopLagBucketInf = LoopLagBucket0 + 12,
    LoopLagSumMicros,
    // relaypro_connections_abandoned_total: accepted with the client's FIN already there (it gave
    // up while queued): closed without a handshake
    AbandonedBeforeHandshake,
    // relaypro_upstream_source_port_fallbacks_total: limits.sourcePorts is set, and connect()
    // chose the port (16 draws found none free, or the source address was not found)
    SourcePortFallbacks,
    // relaypro_connections_shed_total: TLS connections reset before their handshake because the
    // worker was overloaded (issue 19): at="accept", refused as they were accepted
    // (worker/admission.h); at="queue", their ClientHello waited longer than Server::kShedAfter
    // (Ids are appended: a worker of the previous build reports by number during an upgrade.)
    ShedAtAccept,
    ShedAfterWaiting,
    // relaypro_first_flight_wait_seconds: how long a ClientHello waited in its worker's
    // first-flight queue before its turn (served or shed); buckets as above
    FirstFlightWaitBucket0,
    FirstFlightWaitBucketInf = FirstFlightWaitBucket0 + 12,
    FirstFlightWaitSumMicros,
    Count
};

inline constexpr size_t kCount = static_cast<size_t>(Id::Count);

// The upper bounds of the latency histograms (seconds), the console calls' too.
inline constexpr std::array<double, 12> kLatencyBuckets = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                                           0.1,   0.25,   0.5,   1.0,  2.5,   5.0};
static_assert(static_cast<size_t>(Id::ConnectLatencyBucketInf) - static_cast<size_t>(Id::ConnectLatencyBucket0) ==
                  kLatencyBuckets.size(),
              "one id per latency bucket, then +Inf");
static_assert(static_cast<size_t>(Id::LoopLagBucketInf) - static_cast<size_t>(Id::LoopLagBucket0) ==
                  kLatencyBuckets.size(),
              "one id per latency bucket, then +Inf");
static_assert(static_cast<size_t>(Id::FirstFlightWaitBucketInf) - static_cast<size_t>(Id::FirstFlightWaitBucket0) ==
                  kLatencyBuckets.size(),
              "one id per latency bucket, then +Inf");

// Where one id is exposed: its metric family (without _total) and its one or two labels.
struct Series {
    std::string_view family;
    std::string_view label1, value1;
    std::string_view label2, value2;
};
// For every id but the histogram's.
[[nodiscard]] Series seriesOf(Id id);

// The refusal counter of one of protocol.md's error codes (RefusedOther for any other).
[[nodiscard]] Id refusedId(std::string_view code);
// The tunnel counter of a target port.
[[nodiscard]] Id tunnelId(uint16_t port);
// The histogram bucket (an id from ConnectLatencyBucket0 to ConnectLatencyBucketInf) of a latency.
[[nodiscard]] size_t bucketOf(std::chrono::nanoseconds latency);

// One process's counters: indexed by Id.
class Set {
public:
    void add(Id id, uint64_t n = 1) { values_[static_cast<size_t>(id)] += n; }
    void observeConnect(std::chrono::nanoseconds latency);
    void observeLoopLag(std::chrono::nanoseconds lag);
    void observeFirstFlightWait(std::chrono::nanoseconds wait);
    [[nodiscard]] uint64_t get(Id id) const { return values_[static_cast<size_t>(id)]; }
    // The counter itself, for a pump that adds to it directly (the ids after it follow it).
    [[nodiscard]] uint64_t* slot(Id id) { return &values_[static_cast<size_t>(id)]; }
    [[nodiscard]] std::span<const uint64_t, kCount> values() const { return values_; }

private:
    void observe(Id bucket0, Id sum, std::chrono::nanoseconds d);
    std::array<uint64_t, kCount> values_{};
};

}  // namespace relaypro::counters
