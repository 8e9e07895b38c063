#include "worker/token_endpoint.h"

#include <sodium.h>

#include <algorithm>
#include <utility>
#include <vector>

#include "common/config_values.h"
#include "common/event_time.h"
#include "common/rate_limiter.h"
#include "worker/connection.h"
#include "worker/http_response.h"
#include "worker/server.h"
#include "worker/token_request.h"

namespace relaypro {
namespace {

constexpr auto kVerifyTimeout = std::chrono::seconds(15);
// Unanswered for this long, a verification is asked again (the supervisor ignores a repeat
// while the first is in flight, and a re-executed supervisor has lost it).
constexpr auto kVerifyAskAgain = std::chrono::seconds(1);

}  // namespace

void TokenEndpoint::start() {
    if (c_.head_.chunked || !c_.head_.contentLength) {
        return refuse(400, "bad_request", 0, "the body needs a Content-Length");
    }
    if (*c_.head_.contentLength == 0 || *c_.head_.contentLength > kMaxTokenRequestBody) {
        return refuse(400, "bad_request", 0, "body size out of range");
    }
    bodyExpected_ = static_cast<size_t>(*c_.head_.contentLength);
    size_t have = c_.headBuf_.size() - std::min(c_.head_.headLength, c_.headBuf_.size());
    bodyFromHead_ = std::min(have, bodyExpected_);
    body_.assign(c_.headBuf_, c_.head_.headLength, bodyFromHead_);
    c_.state_ = Connection::State::ReadBody;
    c_.startHeadTimer();  // the body has the head's time limit
    if (body_.size() == bodyExpected_) bodyComplete();
}

bool TokenEndpoint::readBody() {
    size_t before = body_.size();
    body_.resize(bodyExpected_);
    size_t n = 0;
    Io io = c_.client_.read(body_.data() + before, bodyExpected_ - before, n);
    body_.resize(before + n);
    if (io == Io::WantRead || io == Io::WantWrite) {
        c_.clientWants_.add(io);
        return false;
    }
    if (io != Io::Done) {
        c_.close(io == Io::Eof ? "closed_by_client" : "error");
        return false;
    }
    if (body_.size() == bodyExpected_) bodyComplete();
    return c_.state_ != Connection::State::Closed;
}

void TokenEndpoint::bodyComplete() {
    evtimer_del(&c_.timer_);
    auto request = parseTokenRequest(body_);
    sodium_memzero(body_.data(), body_.size());
    if (!request) return refuse(400, "bad_request", 0, request.error().message);
    std::string responderId = std::move(request->responderId);
    std::string credential = std::move(request->credential);
    c_.identity_ = responderId;
    if (!c_.settings_->registered) {
        sodium_memzero(credential.data(), credential.size());
        return refuse(503, "not_registered", 60, "");
    }
    c_.state_ = Connection::State::Verifying;
    c_.ticket_ = c_.nextTicket();
    // Kept (and wiped on the answer or the close) so the request can be asked again: a
    // supervisor that re-executes for an upgrade loses the console calls it had in flight.
    credential_ = std::move(credential);
    verifyDeadline_ = std::chrono::steady_clock::now() + kVerifyTimeout;
    if (!askVerify()) {
        wipeCredential();
        return refuse(503, "not_registered", 60, "");
    }
}

bool TokenEndpoint::askVerify() {
    if (!c_.server_.requestVerify(c_.ticket_, c_.identity_, credential_, RateLimiter::sourceKey(c_.peer_)))
        return false;
    auto left = std::chrono::duration_cast<Duration>(verifyDeadline_ - std::chrono::steady_clock::now());
    timeval tv = toTimeval(std::max(Duration::zero(), std::min<Duration>(kVerifyAskAgain, left)));
    evtimer_add(&c_.timer_, &tv);
    return true;
}

void TokenEndpoint::wipeCredential() {
    sodium_memzero(credential_.data(), credential_.size());
    credential_.clear();
}

bool TokenEndpoint::verified(uint64_t ticket, VerifyResult result, uint32_t retryAfterSeconds) {
    if (c_.state_ != Connection::State::Verifying || ticket != c_.ticket_) return false;
    evtimer_del(&c_.timer_);
    wipeCredential();
    if (result == VerifyResult::Valid || result == VerifyResult::Invalid) {
        c_.server_.counters().add(result == VerifyResult::Valid ? counters::Id::AuthCredentialSuccess
                                                                : counters::Id::AuthCredentialFailure);
    }
    switch (result) {
        case VerifyResult::Valid:
            issueToken();
            break;
        case VerifyResult::Invalid:
            refuse(401, "invalid_credentials", 0, "");
            break;
        case VerifyResult::RateLimited:
            refuse(429, "rate_limited", std::max<uint32_t>(1, retryAfterSeconds), "");
            break;
        case VerifyResult::NotRegistered:
            refuse(503, "not_registered", std::max<uint32_t>(1, retryAfterSeconds), "");
            break;
        case VerifyResult::ConsoleUnavailable:
            refuse(503, "console_unavailable", std::max<uint32_t>(1, retryAfterSeconds), "");
            break;
    }
    return true;
}

void TokenEndpoint::issueToken() {
    const int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    auto token = c_.server_.issueToken(c_.identity_, now);
    if (!token) {
        // Only at a day boundary, for the moment before the new master arrives.
        return refuse(503, "console_unavailable", 1, token.error().message);
    }
    const int64_t lifetime = c_.settings_->tokenLifetime.count();
    Response r;
    r.body = "{\"token\":\"" + *token + "\",\"tokenType\":\"Bearer\",\"expiresIn\":" + std::to_string(lifetime) +
             ",\"expiresAt\":\"" +
             formatRfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(now + lifetime))) + "\"}";
    r.headers.emplace_back("Cache-Control", "no-store");
    sodium_memzero(token->data(), token->size());
    c_.server_.counters().add(counters::Id::TokensIssued);
    c_.server_.log().info("token issued",
                          {{"client", c_.clientText_}, {"responder", c_.identity_}, {"expiresIn", lifetime}});
    c_.respond(std::move(r),
               c_.head_.keepAlive() ? Connection::AfterResponse::NextRequest : Connection::AfterResponse::Close);
}

bool TokenEndpoint::verifyTimerFired() {
    if (std::chrono::steady_clock::now() < verifyDeadline_ && askVerify()) return false;  // asked again
    // No answer in kVerifyTimeout: the client may try again soon.
    wipeCredential();
    refuse(503, "console_unavailable", 5, "no answer from the supervisor");
    return true;
}

void TokenEndpoint::finish() {
    sodium_memzero(body_.data(), body_.size());
    std::string().swap(body_);
    bodyExpected_ = 0;
    bodyFromHead_ = 0;
}

void TokenEndpoint::refuse(int status, std::string_view code, uint32_t retryAfter, std::string_view detail) {
    Response r = errorResponse(status, code);
    if (retryAfter > 0) r.headers.emplace_back("Retry-After", std::to_string(retryAfter));
    std::vector<LogField> fields{{"path", std::string(kTokenPath)}};
    if (!c_.identity_.empty()) fields.emplace_back("responder", c_.identity_);
    if (!detail.empty()) fields.emplace_back("detail", std::string(detail));
    c_.logRefused(status, code, std::move(fields));
    // A body that was not read (or not wholly) leaves the connection out of step: close it.
    bool bodyRead = bodyExpected_ > 0 && body_.size() == bodyExpected_;
    c_.respond(std::move(r), status != 400 && bodyRead && c_.head_.keepAlive() ? Connection::AfterResponse::NextRequest
                                                                               : Connection::AfterResponse::Close);
}

}  // namespace relaypro
