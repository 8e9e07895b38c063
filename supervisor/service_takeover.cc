// The take-over after an upgrade's re-exec (lifecycle.md, Upgrade): this image adopts what the
// previous one handed over, serves, and only then considers the files.
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include "common/config_writer.h"
#include "common/file_io.h"
#include "ipc/snapshot.h"
#include "supervisor/cli.h"
#include "supervisor/service.h"
#include "supervisor/version.h"

namespace relaypro {
namespace {

// The secrets of a hand-over are wiped when the take-over is done with them.
struct WipeHandover {
    HandoverState& s;
    explicit WipeHandover(HandoverState& state) : s(state) {}
    WipeHandover(const WipeHandover&) = delete;
    WipeHandover& operator=(const WipeHandover&) = delete;
    ~WipeHandover() { wipeHandoverSecrets(s); }
};

}  // namespace

int Service::takeOver(int handoverFd) {
    auto state = readHandover(handoverFd);
    if (!state) return fatal(kExitFailure, "cannot take over from the previous image: " + state.error().message);
    WipeHandover wipe{*state};
    (void)openOwnImage();  // a failure shows when a worker must be started from it
    for (const auto& l : state->listeners) {
        ::fcntl(l.fd, F_SETFD, FD_CLOEXEC);
        listeners_.push_back(l);
    }
    UniqueFd upgradeReply(state->upgradeReplyFd);
    if (upgradeReply) ::fcntl(upgradeReply.get(), F_SETFD, FD_CLOEXEC);
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    std::string snapshotProblem;
    if (int rc = adoptConfig(*state, snapshotProblem); rc != 0) return rc;
    if (int rc = openLog(false); rc != 0) return rc;
    sink_->restoreDropped(state->droppedLogLines, state->droppedLogLinesTotal);
    unsavedUpdates_ = std::move(state->unsavedUpdates);
    unsavedBase_ = std::move(state->unsavedBase);
    log_->info("supervisor re-executed", {{"version", std::string(versionString())},
                                          {"workers", state->workers.size()},
                                          {"handoverFormat", state->format}});
    if (state->format >= 2 && !snapshotProblem.empty()) {
        log_->error("the configuration handed over does not parse with this build; config.yml is used instead",
                    {{"error", snapshotProblem}});
    }
    if (auto s = ensurePrivateFolder(); !s) log_->error(s.error().describe());
    if (int rc = adoptTrust(*state); rc != 0) return rc;
    workers_ = workerCount(config_);
    // The settings the workers run with, as they are (the password and hosts files are read again
    // below, with config.yml).
    auto settings = state->format >= 2 ? ipc::decodeSettings(state->settingsBytes)
                                       : Result<std::shared_ptr<const WorkerSettings>>(Error{"none handed over"});
    if (settings) {
        maxConnectionsPerWorker_ = (*settings)->maxConnections;
    } else {
        settings = buildSettings(config_);
        if (!settings)
            return fatal(kExitFailure, "cannot take over the workers' settings: " + settings.error().message);
    }
    if (int rc = createLoop(*settings); rc != 0) return rc;
    adoptMetrics(*state);
    serveMetrics();
    pool_->setExitedTunnels(state->exitedTunnels);
    pool_->adopt(state->workers, state->currentGeneration, executable_.get(), workers_);
    if (state->format < 2) {
        pool_->pushSettings(*settings);
        pool_->pushSecrets(trust_->secrets(std::chrono::system_clock::now()));
    }
    started_ = std::chrono::system_clock::time_point(std::chrono::milliseconds(state->startedUnixMs));
    openControl(state->controlFd >= 0 ? std::optional<int>(state->controlFd) : std::nullopt);
    if (!control_) return kExitFailure;
    recreateMissingControlSocket();
    coalescePendingUpgradeSignal();
    installHandlers();
    childrenExited();  // any worker that ended while the images changed
    // Only now the files: what changed during the switch applies; what cannot be used is a
    // failed reload that changes nothing.
    notifyReady(applyFilesAfterTakeOver());
    serve();
    log_->info("upgrade: done", {{"generation", pool_->current()}, {"version", std::string(versionString())}});
    metrics_.upgraded(MetricsRegistry::Result::Success);
    // The `relaypro upgrade` that waits hears it from this image, now that it serves.
    if (upgradeReply) {
        ControlSocket::answerOn(upgradeReply.release(), json_pack("{s:b,s:I}", "ok", 1, "generation",
                                                                  static_cast<json_int_t>(pool_->current())));
    }
    return 0;
}

// What the previous image checked and ran with, whatever the files say now: this image must
// never validate its way out of a hand-over (issue 16). A previous image of format 1 handed over
// no snapshot: then the files are all there is.
int Service::adoptConfig(HandoverState& state, std::string& snapshotProblem) {
    env_.restoreEverHeld({state.everHeldEnv.begin(), state.everHeldEnv.end()});
    std::vector<std::string> ignored;  // the previous image logged them
    auto snapshot = state.format >= 2
                        ? parseConfigSnapshot(options_.configPath, options_.envFile, state.configText,
                                              state.envFileText, env_, ignored)
                        : Result<ConfigSnapshot>(Error{"the previous image handed over no configuration"});
    if (!snapshot) {
        snapshotProblem = snapshot.error().message;
        std::vector<std::string> warnings;
        snapshot = loadConfigSnapshot(options_.configPath, options_.envFile, env_, warnings);
        if (!snapshot) {
            return fatal(kExitFailure, "cannot take over from the previous image: " + snapshotProblem +
                                           "; and config.yml: " + snapshot.error().message);
        }
    }
    env_ = std::move(snapshot->env);
    config_ = std::move(snapshot->config);
    configText_ = std::move(snapshot->configText);
    envFileText_ = std::move(snapshot->envFileText);
    // The listeners stay as they were bound, and as they were configured when bound.
    if (auto https = parseHostPort(state.httpsListen); https) config_.httpsListen = *https;
    config_.httpListen.reset();
    if (auto http = parseHostPort(state.httpListen); http) config_.httpListen = *http;
    if (state.format < 2) {
        for (const auto& l : state.listeners) {
            if (auto a = parseHostPort(l.address); a && l.kind == ListenerKind::Http) config_.httpListen = *a;
        }
    }
    revoked_ = state.revoked;
    return 0;
}

// The CA and the certificate in use are taken over; the files are considered later
// (applyFilesAfterTakeOver).
int Service::adoptTrust(HandoverState& state) {
    auto handedCa = state.format >= 2 ? CaBundle::fromPem(state.caBundlePem, std::chrono::system_clock::now())
                                      : Result<CaBundle>(Error{"no CA handed over"});
    if (handedCa) {
        trust_ = std::make_unique<Trust>(
            Trust::adopt(std::move(*handedCa), config_, TlsMaterial{state.certificateChainPem, state.privateKeyPem}));
    } else {
        // Format 1 (the release before) handed over no CA: read the bundle, or create one as that
        // release did.
        auto trust =
            Trust::open(config_, *log_, TlsMaterial{state.certificateChainPem, state.privateKeyPem}, state.format < 2);
        if (!trust) return fatal(kExitFailure, "cannot take over the CA: " + trust.error().message);
        trust_ = std::make_unique<Trust>(std::move(*trust));
    }
    caPem_ = trust_->ca().certificatePem();
    return 0;
}

// The control socket's file went with a removed private folder: `status` could no longer reach
// us. A new socket replaces the adopted one only once it exists (the adopted one keeps serving
// whoever still holds it otherwise), and the adopted one is closed without unlinking.
void Service::recreateMissingControlSocket() {
    struct stat st {};
    if (::lstat(config_.controlSocketPath().c_str(), &st) == 0 || errno != ENOENT) return;
    auto fresh = ControlSocket::open(base_, config_.controlSocketPath(), *log_, controlHandler(), isWorker());
    if (!fresh) {
        log_->error("the control socket's file is gone and cannot be created again",
                    {{"error", fresh.error().describe()}});
        return;
    }
    ::close(control_->release());
    control_ = std::move(*fresh);
    log_->warn("the control socket's file was gone; it is created again", {{"path", config_.controlSocketPath()}});
}

// A SIGUSR2 held pending across the exec arrived during the upgrade that just ended: it is
// coalesced with it, not the start of another.
void Service::coalescePendingUpgradeSignal() {
    sigset_t pending;
    if (::sigpending(&pending) != 0 || sigismember(&pending, SIGUSR2) != 1) return;
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, SIGUSR2);
    timespec now{0, 0};
    if (::sigtimedwait(&one, nullptr, &now) == SIGUSR2) log_->info("upgrade signal coalesced with the upgrade");
}

std::string Service::applyFilesAfterTakeOver() {
    std::string failed;
    auto texts = readConfigTexts(options_.configPath, options_.envFile);
    std::string fileText = texts ? texts->first : "";
    if (texts && !unsavedUpdates_.empty()) {
        if (auto t = applyConfigUpdates(fileText, unsavedUpdates_); t) fileText = std::move(*t);
    }
    if (texts && fileText == configText_ && texts->second == envFileText_) {
        // The files say what the previous image ran with (the usual case). Still, the settings are
        // built again by this build: it may read a field differently, and the password and hosts
        // files may have changed; the workers get them only if they differ.
        auto settings = buildSettings(config_);
        if (!settings) {
            failed = settings.error().message;
            log_->error("the settings cannot be built again after the upgrade; those checked before it stay in effect",
                        {{"error", failed}});
        } else if (ipc::encodeSettings(**settings) != pool_->settingsBytes()) {
            pool_->pushSettings(*settings);
            console_->configure(config_, (*settings)->names.hosts);
        }
    } else {
        auto changed = texts ? applyConfig(Keep::Listeners) : Result<std::string>(texts.error());
        if (!changed) {
            failed = changed.error().message;
            log_->error(
                "config.yml changed during the upgrade and cannot be used; the configuration checked before "
                "the upgrade stays in effect",
                {{"error", failed}});
        } else {
            log_->info("reload", {{"changed", *changed}, {"during", "upgrade"}});
        }
    }
    for (std::string* t : {&fileText, texts ? &texts->first : nullptr, texts ? &texts->second : nullptr}) {
        if (t != nullptr) sodium_memzero(t->data(), t->size());
    }
    // The CA bundle and the operator's certificate files: a replaced bundle takes effect now; a
    // missing or broken one is an error, and the CA in use stays (only a fresh start creates one).
    // A missing one is written back from the CA in use, so that a restart keeps it too.
    auto trust = Trust::open(config_, *log_, trust_->tls(), false);
    if (!trust) {
        log_->error("the CA bundle or the certificate files cannot be used; those in use stay",
                    {{"error", trust.error().message}, {"fingerprint", trust_->ca().fingerprintHex()}});
        restoreMissingCaBundle();
        return failed.empty() ? "" : "; reload failed: " + failed.substr(0, 200);
    }
    if (trust->ca().fingerprintHex() != trust_->ca().fingerprintHex() ||
        trust->tls().certificateChainPem != trust_->tls().certificateChainPem) {
        log_->info("CA bundle or certificate replaced", {{"fingerprint", trust->ca().fingerprintHex()}});
        trust_ = std::make_unique<Trust>(std::move(*trust));
        caPem_ = trust_->ca().certificatePem();
        pushCurrentSettings();
        pool_->pushSecrets(trust_->secrets(std::chrono::system_clock::now()));
    }
    return failed.empty() ? "" : "; reload failed: " + failed.substr(0, 200);
}

void Service::restoreMissingCaBundle() {
    struct stat st {};
    if (::lstat(config_.caBundleFile.c_str(), &st) == 0 || errno != ENOENT) return;  // broken: the operator's to fix
    std::string pem = trust_->ca().toPem();
    AtomicWriteOptions options;
    options.mode = 0600;
    auto written = writeFileAtomic(config_.caBundleFile, pem, options);
    sodium_memzero(pem.data(), pem.size());
    if (!written) {
        log_->error("the CA bundle in use cannot be written back", {{"error", written.error().describe()}});
        return;
    }
    log_->warn(
        "the CA bundle was missing; the CA in use is written back (remove it while stopped, or run "
        "`relaypro ca init` after removing it, to have a new CA at the next start)",
        {{"file", config_.caBundleFile}, {"fingerprint", trust_->ca().fingerprintHex()}});
}

}  // namespace relaypro
