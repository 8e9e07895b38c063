#include "worker/proxy_auth.h"

#include <sodium.h>

#include <cctype>
#include <chrono>
#include <utility>

#include "common/event_time.h"
#include "common/password_file.h"
#include "common/rate_limiter.h"
#include "common/text.h"
#include "worker/connection.h"
#include "worker/server.h"

namespace relaypro {
namespace {

// How long a 407 waits for the supervisor to count the failure (it may be re-executing).
constexpr auto kCountTimeout = std::chrono::seconds(2);

}  // namespace

std::string authSchemeOf(const RequestHead& head) {
    if (!head.proxyAuthorization) return "";
    std::string_view v = trimSpace(*head.proxyAuthorization);
    std::string_view scheme = v.substr(0, v.find(' '));
    if (scheme.size() > 16) return "other";
    for (char c : scheme) {
        if (std::isalnum(static_cast<unsigned char>(c)) == 0 && c != '-') return "other";
    }
    return std::string(scheme);
}

void ProxyAuth::check() {
    const RequestHead& head = c_.head_;
    c_.authScheme_.clear();  // this request's, not an earlier one's on the same connection
    if (uint32_t wait = c_.server_.blockedFor(RateLimiter::sourceKey(c_.peer_)); wait > 0) {
        return refuseWithRetry(429, "rate_limited", std::to_string(wait),
                               {{"target", c_.target_}, {"auth", authSchemeOf(head)}}, false);
    }
    if (!head.proxyAuthorization) {
        c_.server_.counters().add(counters::Id::AuthMissing);
        return challenge(false);
    }
    std::string_view value = trimSpace(*head.proxyAuthorization);
    size_t space = value.find(' ');
    std::string_view scheme = value.substr(0, space);
    std::string_view credential =
        space == std::string_view::npos ? std::string_view() : trimSpace(value.substr(space + 1));
    if (equalsIgnoreCase(scheme, "Bearer")) return checkBearer(credential);
    if (!equalsIgnoreCase(scheme, "Basic") || !c_.settings_->passwords) return failed(false);
    checkBasic(credential);
}

void ProxyAuth::checkBearer(std::string_view token) {
    c_.authScheme_ = "Bearer";
    // Tokens are issued and verified once this relay is registered with its console.
    if (!c_.settings_->registered) {
        return refuseWithRetry(503, "not_registered", "60", {{"target", c_.target_}, {"auth", "Bearer"}}, false);
    }
    BearerCheck check = c_.server_.checkBearer(token);
    if (!check.valid) {
        c_.server_.log().debug("token refused", {{"client", c_.clientText_}, {"detail", check.reason}});
        return failed(true);
    }
    authorized(std::move(check.responderId), "Bearer");
}

void ProxyAuth::checkBasic(std::string_view credential) {
    const PasswordFile& passwords = *c_.settings_->passwords;
    c_.authScheme_ = "Basic";
    std::string user, password;
    const PasswordEntry* entry = nullptr;
    if (decodeBasicCredential(credential, user, password)) entry = passwords.find(user);
    // Every user takes the same path, so that the time to the 407 (or the 429 of a full queue)
    // does not tell which users exist. In a file with hashed entries, a user it does not have
    // and a user with a plain entry are checked against the decoy hash (as costly as the
    // file's costliest entry), whose verdict is then replaced by the real one; in a file of plain
    // entries everyone gets one constant-time comparison.
    const std::string& decoy = passwords.decoyHash();
    const bool plain = entry == nullptr || !entry->hashed;
    if (plain && decoy.empty()) {
        bool ok = plainPasswordMatches(entry != nullptr ? entry->secret : user, password) && entry != nullptr;
        sodium_memzero(password.data(), password.size());
        if (!ok) return failed(false);
        return authorized(user, "Basic");
    }
    checkingDecoy_ = plain;
    decoyVerdict_ = entry != nullptr && plain && plainPasswordMatches(entry->secret, password);
    const std::string& hash = plain ? decoy : entry->secret;
    if (!plain && c_.server_.hashVerifier().cached(hash, password)) {
        sodium_memzero(password.data(), password.size());
        return authorized(user, "Basic");
    }
    c_.identity_ = entry != nullptr ? user : std::string();
    c_.state_ = Connection::State::Authorizing;
    if (!c_.server_.hashVerifier().submit(c_.serial_, hash, std::move(password))) {
        // Too many checks queued: a flood of guesses must not grow memory or stall others.
        c_.state_ = Connection::State::ReadHead;
        refuseWithRetry(429, "rate_limited", "1",
                        {{"target", c_.target_}, {"auth", "Basic"}, {"detail", "password checks queued"}}, true);
    }
}

bool ProxyAuth::passwordChecked(bool ok) {
    if (c_.state_ != Connection::State::Authorizing) return false;
    if (checkingDecoy_) ok = decoyVerdict_;  // the decoy only took the time; the verdict is the plain one
    if (!ok) {
        c_.state_ = Connection::State::ReadHead;
        failed(false);
    } else {
        authorized(c_.identity_, "Basic");
    }
    return true;
}

void ProxyAuth::failed(bool invalidToken) {
    c_.server_.counters().add(c_.authScheme_ == "Bearer"  ? counters::Id::AuthBearerFailure
                              : c_.authScheme_ == "Basic" ? counters::Id::AuthBasicFailure
                                                          : counters::Id::AuthOtherFailure);
    // The supervisor counts failures per source across workers. The 407 waits until it has (and
    // has told every worker if the source is now over its limit), so a client that retries
    // after reading it meets the limit exactly, whichever worker takes the retry.
    c_.ticket_ = c_.nextTicket();
    if (!c_.server_.reportAuthFailure(c_.ticket_, RateLimiter::sourceKey(c_.peer_))) return challenge(invalidToken);
    challengeInvalidToken_ = invalidToken;
    c_.state_ = Connection::State::Counting;
    timeval tv = toTimeval(kCountTimeout);
    evtimer_add(&c_.timer_, &tv);
}

bool ProxyAuth::failureCounted(uint64_t ticket) {
    if (c_.state_ != Connection::State::Counting || ticket != c_.ticket_) return false;
    evtimer_del(&c_.timer_);
    countTimedOut();
    return true;
}

void ProxyAuth::countTimedOut() {
    c_.state_ = Connection::State::ReadHead;
    challenge(challengeInvalidToken_);
}

void ProxyAuth::challenge(bool invalidToken) {
    Response r = errorResponse(407, invalidToken ? "invalid_token" : "proxy_auth_required");
    r.headers.emplace_back("Proxy-Authenticate", invalidToken ? R"(Bearer realm="RelayPro", error="invalid_token")"
                                                              : R"(Bearer realm="RelayPro")");
    if (c_.settings_->passwords) r.headers.emplace_back("Proxy-Authenticate", R"(Basic realm="RelayPro")");
    c_.logRefused(407, invalidToken ? "invalid_token" : "proxy_auth_required",
                  {{"target", c_.target_}, {"auth", authSchemeOf(c_.head_)}});
    c_.respond(std::move(r),
               c_.head_.keepAlive() ? Connection::AfterResponse::NextRequest : Connection::AfterResponse::Close);
}

void ProxyAuth::authorized(std::string identity, std::string scheme) {
    c_.server_.counters().add(scheme == "Bearer" ? counters::Id::AuthBearerSuccess : counters::Id::AuthBasicSuccess);
    c_.identity_ = std::move(identity);
    c_.authScheme_ = std::move(scheme);
    const RequestHead& head = c_.head_;
    if (!c_.settings_->policy.allows(head.host, head.hostIsIpv6, head.port, std::chrono::system_clock::now())) {
        c_.state_ = Connection::State::ReadHead;
        return c_.refuse(403, "target_not_allowed");
    }
    c_.state_ = Connection::State::Dialing;
    c_.startDial(DialPurpose::Tunnel);
}

void ProxyAuth::refuseWithRetry(int status, std::string_view code, std::string retryAfter, std::vector<LogField> fields,
                                bool close) {
    Response r = errorResponse(status, code);
    r.headers.emplace_back("Retry-After", std::move(retryAfter));
    c_.logRefused(status, code, std::move(fields));
    c_.respond(std::move(r), close || !c_.head_.keepAlive() ? Connection::AfterResponse::Close
                                                            : Connection::AfterResponse::NextRequest);
}

}  // namespace relaypro
