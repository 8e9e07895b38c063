// The service and the console (console-api.md): registration and heartbeat through
// console_session.h, the token endpoint's verify calls, and rotation of the keys the workers use.
#include <sodium.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/config_writer.h"
#include "common/event_time.h"
#include "common/test_hooks.h"
#include "supervisor/console_answers.h"
#include "supervisor/service.h"

namespace relaypro {

void Service::verifyResponder(const ipc::VerifyRequest& request, WorkerPool::VerifyDone done) {
    using R = ipc::VerifyAnswer::Result;
    if (!registered(config_)) return done(R::NotRegistered, 60);
    const auto now = std::chrono::steady_clock::now();
    std::string key = verifyCache_.key(request.responderId, request.credential);
    if (auto cached = verifyCache_.find(key, now)) return done(*cached ? R::Valid : R::Invalid, 0);
    json_t* body = json_pack("{s:I,s:s%,s:s%}", "relayId", static_cast<json_int_t>(config_.relayId), "responderId",
                             request.responderId.data(), request.responderId.size(), "credential",
                             request.credential.data(), request.credential.size());
    if (body == nullptr) return done(R::Invalid, 0);  // not UTF-8: workers check this, but are not trusted
    char* text = json_dumps(body, JSON_COMPACT);
    json_decref(body);
    std::string bodyText = text != nullptr ? text : "{}";
    if (text != nullptr) {
        sodium_memzero(text, std::strlen(text));
        std::free(text);
    }
    const std::string responderId = request.responderId;
    const uint64_t askedAt = verifyCache_.epoch();
    const int64_t organizationId = config_.organizationId;
    console_->post("/api/public/relay-pro/responders/verify", config_.securityToken, bodyText, std::chrono::seconds(5),
                   [this, responderId, organizationId, key, askedAt, done = std::move(done)](ConsoleResponse&& r) {
                       if (!r.transportOk || r.status >= 500) {
                           log_->warn("console verify failed",
                                      {{"responder", responderId},
                                       {"status", static_cast<int64_t>(r.status)},
                                       {"error", r.transportOk ? "server error" : r.transportError}});
                           return done(R::ConsoleUnavailable, 5);
                       }
                       if (r.status == 401 || r.status == 403) {
                           consoleRevoked("verify");
                           return done(R::NotRegistered, 60);
                       }
                       if (r.status != 200 || r.envelope == nullptr) {
                           log_->warn("console verify answered unexpectedly",
                                      {{"responder", responderId}, {"status", static_cast<int64_t>(r.status)}});
                           return done(R::ConsoleUnavailable, 5);
                       }
                       // Valid only when the console says so about this Responder, in this relay's organization.
                       bool valid = verifiedValid(r.envelope, responderId, organizationId);
                       verifyCache_.store(key, valid, std::chrono::steady_clock::now(), askedAt);
                       log_->info("responder verified", {{"responder", responderId}, {"valid", valid}});
                       done(valid ? R::Valid : R::Invalid, 0);
                   });
    sodium_memzero(bodyText.data(), bodyText.size());
}

// The console no longer accepts this relay's securityToken (console-api.md): Bearer CONNECTs
// and the token endpoint answer 503 not_registered until it registers again; Basic and open
// tunnels run on.
void Service::consoleRevoked(const std::string& what) {
    if (revoked_) return;
    revoked_ = true;
    verifyCache_.clear();
    log_->error("the console revoked this RelayPro (401/403); a new deployment token is needed to register again",
                {{"during", what}, {"relayId", config_.relayId}});
    pushCurrentSettings();
    evaluateSession();
}

void Service::evaluateSession() {
    if (!session_) return;
    if (!pendingOrganizationId_) return session_->evaluate(config_, revoked_);
    Config next = config_;
    next.organizationId = *pendingOrganizationId_;
    session_->evaluate(next, revoked_, true);
}

void Service::startConsoleSession() {
    if (session_) return;
    ConsoleSession::Hooks hooks;
    hooks.registered = [this](Registration reg) { applyRegistration(std::move(reg)); };
    hooks.revoked = [this](const std::string& during) { consoleRevoked(during); };
    hooks.migration = [this](Migration m) { applyMigration(std::move(m)); };
    hooks.stats = [this] {
        PoolStats st = pool_->stats();
        return HeartbeatStats{st.tunnels, st.totalTunnels, pool_->serving(pool_->current())};
    };
    ConsoleSession::Identity identity{trust_->ca().certificatePem(), trust_->ca().fingerprintHex(), started_};
    // Tests may shorten the heartbeat interval; nothing else can.
    auto interval = testHooks().heartbeatInterval.value_or(std::chrono::milliseconds(60000));
    session_ =
        std::make_unique<ConsoleSession>(base_, *console_, *log_, std::move(hooks), std::move(identity), interval);
    evaluateSession();
}

// console-api.md, register: relayId, registeredTo, securityToken (and consoleCACert) go into
// config.yml, the deploymentToken line goes; the relay serves Bearer from now on.
void Service::applyRegistration(Registration reg) {
    std::vector<ConfigUpdate> updates{ConfigUpdate::integer({"relayId"}, reg.relayId),
                                      ConfigUpdate::string({"registeredTo"}, config_.consoleAddress.text()),
                                      ConfigUpdate::string({"securityToken"}, reg.securityToken)};
    if (!reg.consoleCACert.empty()) updates.push_back(ConfigUpdate::string({"consoleCACert"}, reg.consoleCACert));
    updates.push_back(ConfigUpdate::remove({"deploymentToken"}));
    auto stored = writeConfigUpdates(options_.configPath, updates, env_);
    if (!stored) {
        log_->error("the registration could not be stored in config.yml; it holds until the service stops",
                    {{"error", stored.error().message}, {"config", options_.configPath}});
    }
    rememberUpdates(updates, stored.ok());
    sodium_memzero(updates[2].value.data(), updates[2].value.size());
    config_.relayId = reg.relayId;
    config_.registeredTo = config_.consoleAddress.text();
    config_.securityToken = std::move(reg.securityToken);
    if (!reg.consoleCACert.empty()) config_.consoleCACert = std::move(reg.consoleCACert);
    sodium_memzero(config_.deploymentToken.data(), config_.deploymentToken.size());
    config_.deploymentToken.clear();
    revoked_ = false;
    if (reg.organizationId != config_.organizationId) {
        log_->info("organizationId applied with the registration",
                   {{"organizationId", reg.organizationId}, {"previous", config_.organizationId}});
        config_.organizationId = reg.organizationId;
        snapshotOrganizationInUse();
    }
    if (pendingOrganizationId_ == config_.organizationId) pendingOrganizationId_.reset();
    verifyCache_.clear();
    log_->info("registered", {{"relayId", config_.relayId}, {"console", config_.consoleAddress.text()}});
    pushCurrentSettings();
    evaluateSession();
    notifyReady();  // STATUS says "registered" now
}

// A migration from a heartbeat: applied like a reload of the migration fields, and stored.
void Service::applyMigration(Migration m) {
    if (config_.migration && config_.migration->consoleAddress == m.consoleAddress &&
        config_.migration->validUntilAt == m.validUntilAt) {
        return;
    }
    std::vector<ConfigUpdate> updates{ConfigUpdate::string({"migration", "consoleAddress"}, m.consoleAddress.text()),
                                      ConfigUpdate::string({"migration", "validUntilAt"}, m.validUntilText)};
    auto stored = writeConfigUpdates(options_.configPath, updates, env_);
    if (!stored) {
        log_->error("the migration could not be stored in config.yml; it applies until the service stops",
                    {{"error", stored.error().message}});
    }
    rememberUpdates(updates, stored.ok());
    config_.migration = std::move(m);
    log_->info("migration applied", {{"consoleAddress", config_.migration->consoleAddress.text()},
                                     {"validUntilAt", config_.migration->validUntilText}});
    pushCurrentSettings();
}

void Service::scheduleKeyCheck() {
    if (keyTimer_ == nullptr) keyTimer_ = evtimer_new(base_, &Service::onKeyTimer, this);
    auto wait = Trust::untilNextCheck(std::chrono::system_clock::now()) + std::chrono::milliseconds(1);
    timeval tv = toTimeval(wait);
    evtimer_add(keyTimer_, &tv);
}

void Service::onKeyTimer(int, short, void* arg) {
    auto* self = static_cast<Service*>(arg);
    auto now = std::chrono::system_clock::now();
    if (self->trust_->refresh(now, *self->log_)) {
        self->pool_->pushSecrets(self->trust_->secrets(now));
        self->log_->debug("worker keys rotated");
    }
    self->scheduleKeyCheck();
}

}  // namespace relaypro
