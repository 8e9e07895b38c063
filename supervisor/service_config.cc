// The configuration in a running service (lifecycle.md, Reload): read the files, build the
// workers' settings beside the running ones, swap only when both are complete.
#include <sodium.h>
#include <sys/resource.h>

#include <algorithm>

#include "common/config_writer.h"
#include "common/name_resolution.h"
#include "common/password_file.h"
#include "common/yaml_doc.h"
#include "supervisor/service.h"

namespace relaypro {
namespace {

// limits.maxConnections auto: (RLIMIT_NOFILE - 64) / 2 per worker, after raising the soft limit
// to the hard one (a tunnel takes two descriptors).
uint64_t connectionShare(const Config& c, unsigned workers) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
        ::getrlimit(RLIMIT_NOFILE, &lim);
    }
    uint64_t perProcess = lim.rlim_cur > 64 ? (lim.rlim_cur - 64) / 2 : 1;
    if (c.limits.maxConnections == 0) return perProcess;
    return std::max<uint64_t>(1, std::min<uint64_t>(perProcess, c.limits.maxConnections / workers));
}

// What config.yml text says at `path` ("" when the key is absent, null or not a scalar): to tell
// whether the operator changed a field since RelayPro's write of it failed.
std::string fieldText(const std::string& yaml, const std::vector<std::string>& path) {
    auto doc = parseYaml(yaml);
    const YamlNode* node = doc && doc->root ? &*doc->root : nullptr;
    for (const auto& key : path) node = node != nullptr && node->isMapping() ? node->find(key) : nullptr;
    return node != nullptr && node->isScalar() ? node->text : "";
}

std::string joined(const std::vector<std::string>& fields) {
    std::string list;
    for (const auto& f : fields) list += (list.empty() ? "" : ",") + f;
    return list;
}

}  // namespace

Result<std::shared_ptr<const WorkerSettings>> Service::buildSettings(const Config& c) {
    std::shared_ptr<const PasswordFile> passwords;
    if (!c.passwordFile.empty()) {
        auto pf = PasswordFile::load(c.passwordFile);
        if (!pf) return pf.error();
        passwords = std::make_shared<const PasswordFile>(std::move(*pf));
    }
    auto names = loadNameResolution(c.hostsFile, c.resolvConfFile);
    if (!names) return names.error();
    maxConnectionsPerWorker_ = connectionShare(c, workers_);
    return WorkerSettings::fromConfig(c, std::move(passwords), std::move(*names), caPem_, maxConnectionsPerWorker_,
                                      registered(c));
}

// Registered: the console gave this relay an id and a security token for the console address
// configured now (console-api.md). The registration itself runs in the console client.
bool Service::registered(const Config& c) const {
    if (revoked_ || c.securityToken.empty() || c.relayId == 0 || c.registeredTo.empty()) return false;
    auto to = parseConsoleAddress(c.registeredTo);
    return to && to->normalized() == c.consoleAddress.normalized();
}

bool Service::pushCurrentSettings() {
    auto settings = buildSettings(config_);
    if (!settings) {
        log_->error("the workers' settings cannot be built", {{"error", settings.error().message}});
        return false;
    }
    pool_->pushSettings(*settings);
    console_->configure(config_, (*settings)->names.hosts);
    return true;
}

Result<Service::Candidate> Service::readFiles(Keep keep) {
    std::vector<std::string> warnings;
    auto texts = readConfigTexts(options_.configPath, options_.envFile);
    if (!texts) return texts.error();
    // What RelayPro wrote and the file could not take stays in effect (a registration above all),
    // unless the operator has changed that field in the file since: then the file wins.
    if (!unsavedUpdates_.empty()) {
        std::erase_if(unsavedUpdates_, [&](const ConfigUpdate& u) {
            if (fieldText(unsavedBase_, u.path) == fieldText(texts->first, u.path)) return false;
            std::string field;
            for (const auto& k : u.path) field += (field.empty() ? "" : ".") + k;
            log_->info("config.yml now sets a field RelayPro could not store; the file's value applies",
                       {{"field", field}});
            return true;
        });
    }
    if (!unsavedUpdates_.empty()) {
        if (auto t = applyConfigUpdates(texts->first, unsavedUpdates_); t) {
            sodium_memzero(texts->first.data(), texts->first.size());
            texts->first = std::move(*t);
        }
    }
    auto snapshot = parseConfigSnapshot(options_.configPath, options_.envFile, std::move(texts->first),
                                        std::move(texts->second), env_, warnings);
    if (!snapshot) return snapshot.error();
    for (const auto& w : warnings) log_->warn(w);
    Candidate c;
    const Config& next = snapshot->config;
    Config merged = next;
    if (keep == Keep::RestartFields) {
        merged = keepRestartFields(config_, next);
    } else {
        merged.httpsListen = config_.httpsListen;  // the listeners stay as bound
        merged.httpListen = config_.httpListen;
        merged.metricsListen = config_.metricsListen;  // as is the metrics endpoint (a restart field)
    }
    // organizationId takes effect at the next registration (config.md), not now: tokens and
    // verifications keep the one in use, and a deployment token, if known, starts that registration.
    if (next.organizationId != config_.organizationId) {
        merged.organizationId = config_.organizationId;
        c.pendingOrganizationId = next.organizationId;
    }
    for (const auto& ch : diffConfigs(config_, next)) {
        bool kept = keep == Keep::RestartFields ? ch.apply == Apply::Restart
                                                : ch.field == "httpsProxy.listen" || ch.field == "RELAYPRO_HTTP_LISTEN";
        if (ch.apply == Apply::NextRegistration) {
            log_->warn(ch.field + " changed; takes effect at the next registration" +
                           (next.deploymentToken.empty() ? ", which needs a deployment token (AIR_DEPLOYMENT_TOKEN or "
                                                           "deploymentToken)"
                                                         : ", which starts now"),
                       {{"field", ch.field}});
        } else if (kept) {
            log_->warn(ch.field + " changed; takes effect after restart", {{"field", ch.field}});
        } else {
            c.changed.push_back(ch.field);
        }
    }
    // A new security token written by the operator (or a registration) ends a revocation.
    c.revoked = revoked_ && merged.securityToken == config_.securityToken;
    const bool wasRevoked = revoked_;
    revoked_ = c.revoked;
    auto settings = buildSettings(merged);
    revoked_ = wasRevoked;
    if (!settings) return settings.error();
    c.settings = std::move(*settings);
    snapshot->config = std::move(merged);
    c.snapshot = std::move(*snapshot);
    return c;
}

void Service::commit(Candidate&& c) {
    sodium_memzero(configText_.data(), configText_.size());
    sodium_memzero(envFileText_.data(), envFileText_.size());
    env_ = std::move(c.snapshot.env);
    config_ = std::move(c.snapshot.config);
    configText_ = std::move(c.snapshot.configText);
    envFileText_ = std::move(c.snapshot.envFileText);
    revoked_ = c.revoked;
    pendingOrganizationId_ = c.pendingOrganizationId;
    if (pendingOrganizationId_) snapshotOrganizationInUse();
    pool_->pushSettings(c.settings);
    pool_->setHandshakeBound(handshakeBound(config_.limits.maxHandshakes, workers_, ::sysconf(_SC_NPROCESSORS_ONLN)));
    pool_->setSourcePorts(config_.limits.sourcePortLow, config_.limits.sourcePortHigh);
    applyListenBacklog();
    checkSourcePorts();
    console_->configure(config_, c.settings->names.hosts);
    verifyCache_.clear();
    evaluateSession();
    log_->setMinLevel(config_.debugLogging ? LogLevel::Debug : LogLevel::Info);
}

Result<std::string> Service::applyConfig(Keep keep) {
    auto c = readFiles(keep);
    if (!c) return c.error();
    std::string changed = joined(c->changed);
    commit(std::move(*c));
    return changed;
}

// The snapshot an upgrade hands over names the organization in use (not config.yml's, which waits
// for a registration): the next image keeps it too. Only the snapshot: RelayPro never writes
// organizationId into config.yml.
void Service::snapshotOrganizationInUse() {
    const std::vector<ConfigUpdate> inUse{ConfigUpdate::integer({"organizationId"}, config_.organizationId)};
    if (auto text = applyConfigUpdates(configText_, inUse); text) {
        sodium_memzero(configText_.data(), configText_.size());
        configText_ = std::move(*text);
    }
}

void Service::rememberUpdates(const std::vector<ConfigUpdate>& updates, bool stored) {
    if (auto text = applyConfigUpdates(configText_, updates); text) {
        sodium_memzero(configText_.data(), configText_.size());
        configText_ = std::move(*text);
    }
    // A field written now replaces what was waiting for it; one the file did not take waits.
    std::erase_if(unsavedUpdates_, [&](const ConfigUpdate& u) {
        return std::any_of(updates.begin(), updates.end(), [&](const ConfigUpdate& n) { return n.path == u.path; });
    });
    if (!stored) {
        unsavedUpdates_.insert(unsavedUpdates_.end(), updates.begin(), updates.end());
        // The file as it is now: an operator's later change of one of these fields wins over it.
        if (auto texts = readConfigTexts(options_.configPath, options_.envFile); texts) {
            sodium_memzero(unsavedBase_.data(), unsavedBase_.size());
            unsavedBase_ = std::move(texts->first);
        }
    }
}

void Service::reload() {
    notifyReloading();
    auto changed = applyConfig(Keep::RestartFields);
    if (!changed) {
        const std::string& why = changed.error().message;
        log_->error("reload failed; keeping the running configuration", {{"error", why}});
        metrics_.reloaded(MetricsRegistry::Result::Failure);
        notifyReady("; reload failed: " + why.substr(0, 200));
        return;
    }
    log_->info("reload", {{"changed", *changed}});
    metrics_.reloaded(MetricsRegistry::Result::Success);
    notifyReady();
}

}  // namespace relaypro
