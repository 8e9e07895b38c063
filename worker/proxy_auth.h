// Proxy authentication of a CONNECT: a Bearer token (checked here, with the worker's keys) or
// a Basic credential (the testing-only password file, argon2id on the checker thread, the
// decoy hash so that every user takes the same time). A failure waits for the supervisor to
// count it before the 407 goes out; success passes the target policy on to the dial.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/log_record.h"
#include "worker/request_head.h"

namespace relaypro {

class Connection;

class ProxyAuth {
public:
    explicit ProxyAuth(Connection& connection) : c_(connection) {}

    // The CONNECT whose head is complete: rate limit, then its Proxy-Authorization.
    void check();
    // The answers Connection waits for; false when this one is not (a late or stale answer).
    bool passwordChecked(bool ok);
    bool failureCounted(uint64_t ticket);
    // The supervisor did not count in time: the 407 goes out anyway (the count arrives later).
    void countTimedOut();

private:
    void checkBearer(std::string_view token);
    void checkBasic(std::string_view credential);
    void failed(bool invalidToken);
    void challenge(bool invalidToken);
    void authorized(std::string identity, std::string scheme);
    // A 429 or 503 with Retry-After, logged with `fields`; `close`: the connection ends after it.
    void refuseWithRetry(int status, std::string_view code, std::string retryAfter, std::vector<LogField> fields,
                         bool close);

    Connection& c_;
    bool challengeInvalidToken_ = false;  // the 407 waiting in State::Counting
    bool checkingDecoy_ = false;          // State::Authorizing on the decoy hash (unknown or plain user)
    bool decoyVerdict_ = false;           // what that check answers in truth
};

// The scheme named in Proxy-Authorization, for logs: empty when none, "other" when odd.
std::string authSchemeOf(const RequestHead& head);

}  // namespace relaypro
