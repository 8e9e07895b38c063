#include "supervisor/console_session.h"

#include <sodium.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>

#include "common/config_values.h"
#include "common/event_time.h"
#include "common/pem.h"
#include "supervisor/version.h"

namespace relaypro {
namespace {

constexpr const char* kRegisterPath = "/api/public/relay-pro/register";
constexpr const char* kHeartbeatPath = "/api/public/relay-pro/heartbeat";
constexpr auto kRequestTimeout = std::chrono::seconds(10);

std::string tokenDigest(const std::string& token) {
    unsigned char d[32];
    crypto_generichash(d, sizeof d, reinterpret_cast<const unsigned char*>(token.data()), token.size(), nullptr, 0);
    return std::string(reinterpret_cast<const char*>(d), sizeof d);
}

std::string hostName() {
    char buf[256] = {};
    if (::gethostname(buf, sizeof buf - 1) != 0) return "unknown";
    return buf;
}

std::string arch() {
    struct utsname u {};
    ::uname(&u);
    std::string m = u.machine;
    if (m == "x86_64") return "amd64";
    if (m == "aarch64") return "arm64";
    return m;
}

std::string dump(json_t* j) {
    char* text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    std::string out = text != nullptr ? text : "{}";
    std::free(text);
    return out;
}

// "401", "503", or curl's reason: for logs.
std::string outcome(const ConsoleResponse& r) {
    return r.transportOk ? "HTTP " + std::to_string(r.status) : r.transportError;
}

}  // namespace

ConsoleSession::ConsoleSession(event_base* base, ConsoleClient& client, const Logger& log, Hooks hooks,
                               Identity identity, std::chrono::milliseconds heartbeatInterval)
    : base_(base),
      client_(client),
      log_(log),
      hooks_(std::move(hooks)),
      identity_(std::move(identity)),
      heartbeatInterval_(heartbeatInterval) {
    registerTimer_ = evtimer_new(base_, &ConsoleSession::onRegisterTimer, this);
    heartbeatTimer_ = evtimer_new(base_, &ConsoleSession::onHeartbeatTimer, this);
}

ConsoleSession::~ConsoleSession() {
    cancelAll();
    event_free(registerTimer_);
    event_free(heartbeatTimer_);
}

const char* ConsoleSession::stateName() const {
    switch (state_) {
        case State::Unregistered:
            return "unregistered";
        case State::Registering:
            return "registering";
        case State::Rejected:
            return "rejected";
        case State::Registered:
            return "registered";
        case State::Revoked:
            return "revoked";
    }
    return "unregistered";
}

std::chrono::milliseconds ConsoleSession::backoff(unsigned attempt) {
    const int64_t capMs = std::chrono::duration_cast<std::chrono::milliseconds>(kMaxBackoff).count();
    int64_t d = attempt >= 20 ? capMs : std::min<int64_t>(capMs, int64_t{1000} << attempt);
    int64_t jitter = static_cast<int64_t>(randombytes_uniform(static_cast<uint32_t>(d / 2 + 1)));
    return std::chrono::milliseconds(d / 2 + jitter);
}

void ConsoleSession::cancelAll() {
    if (inFlight_) client_.cancel(*inFlight_);
    inFlight_.reset();
    evtimer_del(registerTimer_);
    evtimer_del(heartbeatTimer_);
}

void ConsoleSession::arm(event* timer, std::chrono::milliseconds delay) {
    timeval tv = toTimeval(delay);
    evtimer_add(timer, &tv);
}

void ConsoleSession::evaluate(const Config& config, bool revoked, bool newOrganization) {
    const bool tokenChanged = config.deploymentToken != config_.deploymentToken;
    config_ = config;
    auto registeredTo = parseConsoleAddress(config.registeredTo);
    const bool sameConsole = registeredTo && registeredTo->normalized() == config.consoleAddress.normalized();
    const bool reRegister = newOrganization && !config.deploymentToken.empty();
    const bool haveCredential =
        !config.securityToken.empty() && config.relayId != 0 && sameConsole && !revoked && !reRegister;
    if (haveCredential) {
        if (state_ != State::Registered) {
            cancelAll();
            state_ = State::Registered;
            heartbeatNow();  // the console learns this instance's version and fingerprint at once
        }
        return;
    }
    if (config.deploymentToken.empty()) {
        cancelAll();
        state_ = revoked ? State::Revoked : State::Unregistered;
        if (!warnedNoToken_) {
            warnedNoToken_ = true;
            log_.warn(revoked ? "not registered: the console revoked this RelayPro; a new deployment token is needed"
                              : "not registered: no deployment token (set AIR_DEPLOYMENT_TOKEN or deploymentToken)",
                      {{"console", config.consoleAddress.text()}});
        }
        return;
    }
    warnedNoToken_ = false;
    if (state_ == State::Rejected && !tokenChanged && tokenDigest(config.deploymentToken) == rejectedToken_) {
        return;  // the refused token again: its 5-minute retry is already scheduled
    }
    if (state_ == State::Registering && !tokenChanged) return;  // an attempt or its retry is pending
    cancelAll();
    state_ = State::Registering;
    attempts_ = 0;
    registerNow();
}

void ConsoleSession::onRegisterTimer(int, short, void* arg) {
    static_cast<ConsoleSession*>(arg)->registerNow();
}

void ConsoleSession::registerNow() {
    json_t* body = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s,s:s}", "organizationId",
                             static_cast<json_int_t>(config_.organizationId), "relayProId", config_.relayProId.c_str(),
                             "hostname", hostName().c_str(), "version", std::string(versionString()).c_str(), "os",
                             "linux", "arch", arch().c_str(), "caCertificate", identity_.caCertificatePem.c_str(),
                             "caFingerprint", identity_.caFingerprint.c_str());
    log_.info("registering with the console", {{"console", config_.consoleAddress.text()}, {"attempt", attempts_ + 1}});
    inFlight_ = client_.post(kRegisterPath, config_.deploymentToken, dump(body), kRequestTimeout,
                             [this](ConsoleResponse&& r) { registrationAnswered(std::move(r)); });
}

void ConsoleSession::retryRegistration(std::chrono::milliseconds delay, const std::string& why) {
    log_.warn("registration failed; retrying",
              {{"error", why}, {"retryInMs", static_cast<int64_t>(delay.count())}, {"attempt", attempts_ + 1}});
    ++attempts_;
    arm(registerTimer_, delay);
}

void ConsoleSession::registrationAnswered(ConsoleResponse&& r) {
    inFlight_.reset();
    if (!r.transportOk || r.status >= 500) return retryRegistration(backoff(attempts_), outcome(r));
    if (r.status == 401 || r.status == 403) {
        state_ = State::Rejected;
        rejectedToken_ = tokenDigest(config_.deploymentToken);
        log_.error("the console refused the deployment token (" + outcome(r) +
                       "); get a new deployment token from the console, set it as AIR_DEPLOYMENT_TOKEN (or "
                       "deploymentToken in config.yml) and reload; retrying every 5 minutes",
                   {{"console", config_.consoleAddress.text()}});
        arm(registerTimer_, kRejectedRetry);
        return;
    }
    if (r.status != 200) return retryRegistration(backoff(attempts_), "unexpected answer (" + outcome(r) + ")");
    auto reg = registrationFrom(r.envelope);
    if (!reg) {
        return retryRegistration(backoff(attempts_), "unexpected answer (" + outcome(r) + "): " + reg.error().message);
    }
    attempts_ = 0;
    reg->organizationId = config_.organizationId;
    // The hook stores the registration and evaluates again, which starts the heartbeats.
    if (hooks_.registered) hooks_.registered(std::move(*reg));
}

void ConsoleSession::onHeartbeatTimer(int, short, void* arg) {
    static_cast<ConsoleSession*>(arg)->heartbeatNow();
}

void ConsoleSession::heartbeatNow() {
    arm(heartbeatTimer_, heartbeatInterval_);
    if (inFlight_) return;  // the previous one has not been answered yet
    HeartbeatStats s = hooks_.stats ? hooks_.stats() : HeartbeatStats{};
    json_t* body =
        json_pack("{s:I,s:s,s:s,s:s,s:I,s:I,s:I,s:s}", "relayId", static_cast<json_int_t>(config_.relayId),
                  "relayProId", config_.relayProId.c_str(), "version", std::string(versionString()).c_str(),
                  "startedAt", formatRfc3339(identity_.startedAt).c_str(), "activeTunnels",
                  static_cast<json_int_t>(s.activeTunnels), "totalTunnels", static_cast<json_int_t>(s.totalTunnels),
                  "workers", static_cast<json_int_t>(s.workers), "caFingerprint", identity_.caFingerprint.c_str());
    inFlight_ = client_.post(kHeartbeatPath, config_.securityToken, dump(body), kRequestTimeout,
                             [this](ConsoleResponse&& r) { heartbeatAnswered(std::move(r)); });
}

void ConsoleSession::heartbeatAnswered(ConsoleResponse&& r) {
    inFlight_.reset();
    if (r.transportOk && (r.status == 401 || r.status == 403)) {
        cancelAll();
        state_ = State::Revoked;
        if (hooks_.revoked) hooks_.revoked("heartbeat");  // evaluates again: may register anew
        return;
    }
    if (!r.transportOk || r.status != 200 || !r.success()) {
        log_.warn("heartbeat failed", {{"error", outcome(r)}});
        return;
    }
    auto migration = migrationFrom(r.envelope);
    if (!migration) {
        log_.warn("the console sent a migration that is not valid; ignored", {{"error", migration.error().message}});
        return;
    }
    if (!*migration) return;
    if (hooks_.migration) hooks_.migration(std::move(**migration));
}

}  // namespace relaypro
