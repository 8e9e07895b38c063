// The token endpoint (protocol.md, "Token endpoint"): a Responder's POST with its id and
// credential. The body is read under the head's time limit, the supervisor asks the console
// (asked again while unanswered, 15 s at most), and a valid answer gets a token issued with
// today's master. The credential is wiped as soon as it is no longer needed.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "worker/server_types.h"

namespace relaypro {

class Connection;

class TokenEndpoint {
public:
    explicit TokenEndpoint(Connection& connection) : c_(connection) {}
    ~TokenEndpoint() { wipeCredential(); }
    TokenEndpoint(const TokenEndpoint&) = delete;
    TokenEndpoint& operator=(const TokenEndpoint&) = delete;

    // The token route's head is complete: the body next (state ReadBody).
    void start();
    // State ReadBody. True when the connection can step on at once.
    bool readBody();
    // The supervisor's answer; false when this one is not awaited (a late or stale answer).
    bool verified(uint64_t ticket, VerifyResult result, uint32_t retryAfterSeconds);
    // State Verifying's timer: asks again, or answers 503 once the time is up (then true).
    bool verifyTimerFired();
    // Body bytes that came in the head's buffer (the next request starts after them).
    [[nodiscard]] size_t bodyFromHead() const { return bodyFromHead_; }
    // The request is answered: the body is wiped and dropped.
    void finish();

private:
    void bodyComplete();
    bool askVerify();
    void wipeCredential();
    void issueToken();
    void refuse(int status, std::string_view code, uint32_t retryAfter, std::string_view detail);

    Connection& c_;
    // The body: bytes that came with the head, then the rest as it arrives.
    std::string body_;
    size_t bodyExpected_ = 0;
    size_t bodyFromHead_ = 0;
    std::string credential_;  // while Verifying, to ask again; wiped after
    std::chrono::steady_clock::time_point verifyDeadline_{};
};

}  // namespace relaypro
