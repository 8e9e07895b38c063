#include "common/relay_counters.h"

#include <algorithm>

namespace relaypro::counters {

namespace {

// protocol.md's error codes, in the order of the ids from RefusedBadRequest on.
constexpr std::array<std::string_view, 16> kRefusalCodes = {
    "bad_request",         "target_not_allowed",  "tls_required",          "not_found",
    "method_not_allowed",  "proxy_auth_required", "invalid_token",         "request_timeout",
    "rate_limited",        "header_too_large",    "upstream_unreachable",  "not_registered",
    "console_unavailable", "upstream_timeout",    "version_not_supported", "invalid_credentials",
};
static_assert(static_cast<size_t>(Id::RefusedOther) - static_cast<size_t>(Id::RefusedBadRequest) ==
                  kRefusalCodes.size(),
              "one refusal id per code, then RefusedOther");

constexpr std::string_view kAuth = "relaypro_authentication_attempts";

}  // namespace

Series seriesOf(Id id) {
    const auto n = static_cast<size_t>(id);
    if (id >= Id::RefusedBadRequest && id < Id::RefusedOther) {
        return {"relaypro_requests_refused", "reason", kRefusalCodes[n - static_cast<size_t>(Id::RefusedBadRequest)]};
    }
    switch (id) {
        case Id::TunnelsOpened443:
            return {"relaypro_tunnels_opened", "port", "443"};
        case Id::TunnelsOpened80:
            return {"relaypro_tunnels_opened", "port", "80"};
        case Id::TunnelsOpened4222:
            return {"relaypro_tunnels_opened", "port", "4222"};
        case Id::TunnelsOpenedOther:
            return {"relaypro_tunnels_opened", "port", "other"};
        case Id::BytesToUpstream:
            return {"relaypro_relayed_bytes", "direction", "to_upstream"};
        case Id::BytesToClient:
            return {"relaypro_relayed_bytes", "direction", "to_client"};
        case Id::HandshakesFull:
            return {"relaypro_tls_handshakes", "kind", "full"};
        case Id::HandshakesResumed:
            return {"relaypro_tls_handshakes", "kind", "resumed"};
        case Id::AuthBearerSuccess:
            return {kAuth, "scheme", "bearer", "result", "success"};
        case Id::AuthBearerFailure:
            return {kAuth, "scheme", "bearer", "result", "failure"};
        case Id::AuthBasicSuccess:
            return {kAuth, "scheme", "basic", "result", "success"};
        case Id::AuthBasicFailure:
            return {kAuth, "scheme", "basic", "result", "failure"};
        case Id::AuthCredentialSuccess:
            return {kAuth, "scheme", "credential", "result", "success"};
        case Id::AuthCredentialFailure:
            return {kAuth, "scheme", "credential", "result", "failure"};
        case Id::AuthMissing:
            return {kAuth, "scheme", "none", "result", "failure"};
        case Id::AuthOtherFailure:
            return {kAuth, "scheme", "other", "result", "failure"};
        case Id::TokensIssued:
            return {"relaypro_tokens_issued"};
        case Id::AbandonedBeforeHandshake:
            return {"relaypro_connections_abandoned"};
        case Id::ShedAtAccept:
            return {"relaypro_connections_shed", "at", "accept"};
        case Id::ShedAfterWaiting:
            return {"relaypro_connections_shed", "at", "queue"};
        case Id::SourcePortFallbacks:
            return {"relaypro_upstream_source_port_fallbacks"};
        case Id::RefusedOther:
            return {"relaypro_requests_refused", "reason", "other"};
        default:
            return {};  // the histograms' ids
    }
}

Id refusedId(std::string_view code) {
    const auto* it = std::find(kRefusalCodes.begin(), kRefusalCodes.end(), code);
    if (it == kRefusalCodes.end()) return Id::RefusedOther;
    return static_cast<Id>(static_cast<size_t>(Id::RefusedBadRequest) +
                           static_cast<size_t>(it - kRefusalCodes.begin()));
}

Id tunnelId(uint16_t port) {
    switch (port) {
        case 443:
            return Id::TunnelsOpened443;
        case 80:
            return Id::TunnelsOpened80;
        case 4222:
            return Id::TunnelsOpened4222;
        default:
            return Id::TunnelsOpenedOther;
    }
}

size_t bucketOf(std::chrono::nanoseconds latency) {
    const double seconds = std::chrono::duration<double>(latency).count();
    const auto* it = std::lower_bound(kLatencyBuckets.begin(), kLatencyBuckets.end(), seconds);
    return static_cast<size_t>(it - kLatencyBuckets.begin());  // kLatencyBuckets.size(): +Inf
}

void Set::observe(Id bucket0, Id sum, std::chrono::nanoseconds d) {
    values_[static_cast<size_t>(bucket0) + bucketOf(d)] += 1;
    const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
    values_[static_cast<size_t>(sum)] += static_cast<uint64_t>(std::max<int64_t>(micros, 0));
}

void Set::observeConnect(std::chrono::nanoseconds latency) {
    observe(Id::ConnectLatencyBucket0, Id::ConnectLatencySumMicros, latency);
}

void Set::observeLoopLag(std::chrono::nanoseconds lag) {
    observe(Id::LoopLagBucket0, Id::LoopLagSumMicros, lag);
}

void Set::observeFirstFlightWait(std::chrono::nanoseconds wait) {
    observe(Id::FirstFlightWaitBucket0, Id::FirstFlightWaitSumMicros, wait);
}

}  // namespace relaypro::counters
