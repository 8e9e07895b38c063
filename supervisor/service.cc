#include "supervisor/service.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/config_writer.h"
#include "common/event_time.h"
#include "common/file_io.h"
#include "common/name_resolution.h"
#include "common/password_file.h"
#include "common/yaml_doc.h"
#include "ipc/snapshot.h"
#include "supervisor/cli.h"
#include "supervisor/exec_fd.h"
#include "supervisor/listeners.h"
#include "supervisor/sd_daemon.h"
#include "supervisor/version.h"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace relaypro {
namespace {

// Signals that must not be lost (or kill the service) while an image is exec'ing.
constexpr int kServiceSignals[] = {SIGHUP, SIGUSR1, SIGUSR2, SIGTERM, SIGINT, SIGCHLD};

sigset_t serviceSignalSet() {
    sigset_t set;
    sigemptyset(&set);
    for (int s : kServiceSignals) sigaddset(&set, s);
    return set;
}

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

// The running values of fields that only a restart changes.
Config keepRestartFields(const Config& running, Config next) {
    next.serverName = running.serverName;
    next.privateFolder = running.privateFolder;
    next.httpsListen = running.httpsListen;
    next.certFile = running.certFile;
    next.keyFile = running.keyFile;
    next.logger = running.logger;
    next.workers = running.workers;
    next.metricsListen = running.metricsListen;
    next.httpListen = running.httpListen;
    next.caBundleFile = running.caBundleFile;
    return next;
}

// The installed binary's check-config gets at most this long (less if `--timeout` is shorter).
constexpr std::chrono::milliseconds kCheckTimeout{30000};

// What config.yml text says at `path` ("" when the key is absent, null or not a scalar): to tell
// whether the operator changed a field since RelayPro's write of it failed.
std::string fieldText(const std::string& yaml, const std::vector<std::string>& path) {
    auto doc = parseYaml(yaml);
    const YamlNode* node = doc && doc->root ? &*doc->root : nullptr;
    for (const auto& key : path) node = node != nullptr && node->isMapping() ? node->find(key) : nullptr;
    return node != nullptr && node->isScalar() ? node->text : "";
}

// The hand-over format the installed binary's check-config said it reads ("hand-over format: N"
// on stderr), at most this build's; 1 when it said nothing (a build before format 2).
uint32_t handoverFormatSaid(const std::string& stderrText) {
    const std::string key = "hand-over format: ";
    size_t at = stderrText.rfind(key);
    if (at == std::string::npos) return 1;
    long n = std::strtol(stderrText.c_str() + at + key.size(), nullptr, 10);
    return static_cast<uint32_t>(std::clamp<long>(n, 1, kHandoverFormat));
}

std::string timedOut(std::chrono::seconds timeout) {
    return "the upgrade did not complete within its timeout (" + std::to_string(timeout.count()) + "s)";
}

uint64_t monotonicMicros() {
    timespec now{};
    ::clock_gettime(CLOCK_MONOTONIC, &now);
    return static_cast<uint64_t>(now.tv_sec) * 1000000ULL + static_cast<uint64_t>(now.tv_nsec) / 1000ULL;
}

}  // namespace

Service::Service(ServiceOptions options, Environment env, Config config)
    : options_(std::move(options)),
      env_(std::move(env)),
      config_(std::move(config)),
      configText_(std::move(options_.configText)),
      envFileText_(std::move(options_.envFileText)) {}

Service::~Service() {
    session_.reset();
    console_.reset();  // in-flight console requests end without calling back
    control_.reset();
    pool_.reset();
    if (signalEvent_ != nullptr) event_free(signalEvent_);
    if (watchdog_ != nullptr) event_free(watchdog_);
    if (keyTimer_ != nullptr) event_free(keyTimer_);
    if (reexec_ != nullptr) event_free(reexec_);
    if (upgrade_ && upgrade_->checkTimer != nullptr) event_free(upgrade_->checkTimer);
    if (base_ != nullptr) event_base_free(base_);
}

int Service::run() {
    ::signal(SIGPIPE, SIG_IGN);
    // A previous image may have blocked these across its exec; they are unblocked once the
    // loop's handlers are in place (installHandlers).
    sigset_t set = serviceSignalSet();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    const char* handover = std::getenv(kHandoverEnv);
    int code = 0;
    if (handover != nullptr) {
        int fd = std::atoi(handover);
        ::unsetenv(kHandoverEnv);  // nothing started from here may see it
        code = takeOver(fd);
    } else {
        code = freshStart();
    }
    if (code != 0) return code;
    event_base_dispatch(base_);
    log_->info("stopped", {{"totalTunnels", pool_->stats().totalTunnels}});
    control_.reset();
    pool_.reset();
    sink_->waitForBackground();
    return exitCode_;
}

namespace {

// packaging.md: a path RelayPro must write that is read-only — under systemd, outside the unit's
// ReadWritePaths= (ProtectSystem=strict) — is a configuration error that names the fix.
bool readOnly(const Error& e) {
    return e.sysErrno == EROFS;
}
std::string withReadOnlyFix(const Error& e) {
    if (!readOnly(e)) return e.describe();
    return e.describe() +
           "; the path is read-only here: under systemd, add its folder to ReadWritePaths= with a drop-in "
           "(systemctl edit binalyze-air-relaypro)";
}

}  // namespace

int Service::openLog(bool mustOpen) {
    LogSinkOptions lo;
    lo.path = config_.logger.path;
    lo.maxSize = config_.logger.maxSize;
    lo.maxAge = config_.logger.maxAge;
    lo.maxBackups = config_.logger.maxBackups;
    lo.compress = !config_.logger.noCompress;
    lo.echoFd = ::isatty(STDERR_FILENO) == 1 ? STDERR_FILENO : -1;
    Status problem;
    auto sink = LogSink::open(lo, mustOpen ? nullptr : &problem);
    if (!sink) return fatal(readOnly(sink.error()) ? kExitConfig : kExitFailure, withReadOnlyFix(sink.error()));
    if (!problem)
        std::fprintf(stderr, "relaypro: %s; lines are dropped until it opens\n", problem.error().describe().c_str());
    sink_ = std::move(*sink);
    log_ = std::make_unique<Logger>(sink_.get(), "supervisor", config_.debugLogging ? LogLevel::Debug : LogLevel::Info);
    return 0;
}

int Service::freshStart() {
    // Our own image, opened now: workers are exec'ed from it even if the file is replaced on
    // disk later (a package upgrade), so they always match this supervisor.
    executable_.reset(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
    if (!executable_) return fatal(kExitFailure, std::string("cannot open /proc/self/exe: ") + std::strerror(errno));
    char path[4096] = {};
    ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    executablePath_ = n > 0 ? std::string(path, static_cast<size_t>(n)) : "";
    // Bind first (a port below 1024 may need root or CAP_NET_BIND_SERVICE), then drop to the
    // service account, then create files: they belong to that account.
    auto addListener = [&](uint8_t kind, const HostPort& address) -> int {
        UniqueFd fd = adoptActivatedListener(address);
        if (fd) activated_.push_back(kind);
        if (!fd) {
            auto bound = bindListener(address);
            if (!bound) return fatal(kExitFailure, bound.error().message);
            fd = std::move(*bound);
        }
        std::string text = boundAddress(fd.get());
        listeners_.push_back({kind, std::move(fd), text});
        return 0;
    };
    if (int rc = addListener(0, config_.httpsListen); rc != 0) return rc;
    if (config_.httpListen) {
        if (int rc = addListener(1, *config_.httpListen); rc != 0) return rc;
    }
    if (options_.account) {
        if (auto s = switchToAccount(*options_.account); !s) return fatal(kExitFailure, s.error().describe());
    }
    if (auto s = dropCapabilitiesUnlessRoot(); !s) return fatal(kExitFailure, s.error().describe());
    // Nobody of our uid (a compromised worker included) may trace us or read our memory.
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (int rc = openLog(); rc != 0) return rc;
    for (const auto& w : options_.startWarnings) log_->warn(w);
    log_->info("start", {{"version", std::string(versionString())}, {"config", options_.configPath}});
    if (auto s = ensurePrivateFolder(); !s) return fatal(kExitConfig, withReadOnlyFix(s.error()));
    ensureRelayProId();

    auto trust = Trust::open(config_, *log_);
    if (!trust) return fatal(kExitConfig, trust.error().message);
    trust_ = std::make_unique<Trust>(std::move(*trust));
    caPem_ = trust_->ca().certificatePem();
    workers_ = config_.workers != 0 ? config_.workers
                                    : static_cast<unsigned>(std::clamp<long>(::sysconf(_SC_NPROCESSORS_ONLN), 1, 64));
    auto settings = buildSettings(config_);
    if (!settings) return fatal(kExitConfig, settings.error().message);

    base_ = event_base_new();
    if (base_ == nullptr) return fatal(kExitFailure, "cannot create the event loop");
    console_ = std::make_unique<ConsoleClient>(base_, *log_);
    console_->configure(config_, (*settings)->names.hosts);
    randombytes_buf(verifyCacheKey_.data(), verifyCacheKey_.size());
    pool_ = std::make_unique<WorkerPool>(base_, *log_, sink_.get(), poolSetup(*settings));
    started_ = std::chrono::system_clock::now();
    openControl(std::nullopt);
    if (!control_) return kExitFailure;
    installHandlers();

    pool_->startGeneration(
        1, workers_, executable_.get(),
        [this] {
            pool_->setCurrent(1);
            for (const auto& l : listeners_) {
                bool fromSystemd = std::find(activated_.begin(), activated_.end(), l.kind) != activated_.end();
                log_->info("listening", {{"kind", l.kind == 0 ? "https" : "http"},
                                         {"address", l.address},
                                         {"socketActivation", fromSystemd}});
            }
            log_->info("ready", {{"workers", workers_}, {"tunnelsMax", maxConnectionsPerWorker_ * workers_}});
            notifyReady();
            startWatchdog();
            scheduleKeyCheck();
            startConsoleSession();  // registration runs in the background; the listener serves
        },
        [this](const std::string& why) {
            log_->error("workers did not start", {{"error", why}});
            std::fprintf(stderr, "relaypro: workers did not start: %s\n", why.c_str());
            exitCode_ = kExitFailure;
            event_base_loopexit(base_, nullptr);
        });
    return 0;
}

int Service::takeOver(int handoverFd) {
    auto state = readHandover(handoverFd);
    if (!state) return fatal(kExitFailure, "cannot take over from the previous image: " + state.error().message);
    struct Wipe {
        HandoverState& s;
        ~Wipe() {
            for (std::string* secret :
                 {&s.privateKeyPem, &s.caBundlePem, &s.configText, &s.envFileText, &s.unsavedBase}) {
                sodium_memzero(secret->data(), secret->size());
            }
        }
    } wipe{*state};
    executable_.reset(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
    char path[4096] = {};
    ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    executablePath_ = n > 0 ? std::string(path, static_cast<size_t>(n)) : "";
    for (const auto& l : state->listeners) {
        ::fcntl(l.fd, F_SETFD, FD_CLOEXEC);
        listeners_.push_back({l.kind, UniqueFd(l.fd), l.address});
    }
    UniqueFd upgradeReply(state->upgradeReplyFd);
    if (upgradeReply) ::fcntl(upgradeReply.get(), F_SETFD, FD_CLOEXEC);
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

    // 1. What the previous image checked and ran with, whatever the files say now: this image
    // must never validate its way out of a hand-over (issue 16). A previous image of format 1
    // handed over no snapshot: then the files are all there is.
    env_.restoreEverHeld({state->everHeldEnv.begin(), state->everHeldEnv.end()});
    std::vector<std::string> ignored;  // the previous image logged them
    std::string snapshotProblem;
    auto snapshot = state->format >= 2
                        ? parseConfigSnapshot(options_.configPath, options_.envFile, state->configText,
                                              state->envFileText, env_, ignored)
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
    if (auto https = parseHostPort(state->httpsListen); https) config_.httpsListen = *https;
    config_.httpListen.reset();
    if (auto http = parseHostPort(state->httpListen); http) config_.httpListen = *http;
    if (state->format < 2) {
        for (const auto& l : state->listeners) {
            if (auto a = parseHostPort(l.address); a && l.kind == 1) config_.httpListen = *a;
        }
    }
    revoked_ = state->revoked;

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
    // The CA and the certificate in use are taken over; the files are considered below.
    auto handedCa = state->format >= 2 ? CaBundle::fromPem(state->caBundlePem, std::chrono::system_clock::now())
                                       : Result<CaBundle>(Error{"no CA handed over"});
    if (handedCa) {
        trust_ = std::make_unique<Trust>(
            Trust::adopt(std::move(*handedCa), config_, TlsMaterial{state->certificateChainPem, state->privateKeyPem}));
    } else {
        // Format 1 (the release before) handed over no CA: read the bundle, or create one as that
        // release did.
        auto trust = Trust::open(config_, *log_, TlsMaterial{state->certificateChainPem, state->privateKeyPem},
                                 state->format < 2);
        if (!trust) return fatal(kExitFailure, "cannot take over the CA: " + trust.error().message);
        trust_ = std::make_unique<Trust>(std::move(*trust));
    }
    caPem_ = trust_->ca().certificatePem();
    workers_ = config_.workers != 0 ? config_.workers
                                    : static_cast<unsigned>(std::clamp<long>(::sysconf(_SC_NPROCESSORS_ONLN), 1, 64));
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

    base_ = event_base_new();
    if (base_ == nullptr) return fatal(kExitFailure, "cannot create the event loop");
    console_ = std::make_unique<ConsoleClient>(base_, *log_);
    console_->configure(config_, (*settings)->names.hosts);
    randombytes_buf(verifyCacheKey_.data(), verifyCacheKey_.size());
    pool_ = std::make_unique<WorkerPool>(base_, *log_, sink_.get(), poolSetup(*settings));
    pool_->setExitedTunnels(state->exitedTunnels);
    pool_->adopt(state->workers, state->currentGeneration, executable_.get(), workers_);
    if (state->format < 2) {
        pool_->pushSettings(*settings);
        pool_->pushSecrets(trust_->secrets(std::chrono::system_clock::now()));
    }
    started_ = std::chrono::system_clock::time_point(std::chrono::milliseconds(state->startedUnixMs));
    openControl(state->controlFd >= 0 ? std::optional<int>(state->controlFd) : std::nullopt);
    if (!control_) return kExitFailure;
    if (struct stat st{}; ::lstat(config_.controlSocketPath().c_str(), &st) != 0 && errno == ENOENT) {
        // Its file went with a removed private folder: `status` could no longer reach us. A new
        // socket replaces the adopted one only once it exists (the adopted one keeps serving
        // whoever still holds it otherwise), and the adopted one is closed without unlinking.
        auto fresh = ControlSocket::open(base_, config_.controlSocketPath(), *log_, controlHandler(), isWorker());
        if (fresh) {
            ::close(control_->release());
            control_ = std::move(*fresh);
            log_->warn("the control socket's file was gone; it is created again",
                       {{"path", config_.controlSocketPath()}});
        } else {
            log_->error("the control socket's file is gone and cannot be created again",
                        {{"error", fresh.error().describe()}});
        }
    }
    // A SIGUSR2 held pending across the exec arrived during the upgrade that just ended: it is
    // coalesced with it, not the start of another.
    sigset_t pending;
    if (::sigpending(&pending) == 0 && sigismember(&pending, SIGUSR2) == 1) {
        sigset_t one;
        sigemptyset(&one);
        sigaddset(&one, SIGUSR2);
        timespec now{0, 0};
        if (::sigtimedwait(&one, nullptr, &now) == SIGUSR2) log_->info("upgrade signal coalesced with the upgrade");
    }
    installHandlers();
    childrenExited();  // any worker that ended while the images changed
    // 2. Only now the files: what changed during the switch applies; what cannot be used is a
    // failed reload that changes nothing.
    notifyReady(applyFilesAfterTakeOver());
    startWatchdog();
    scheduleKeyCheck();
    startConsoleSession();
    log_->info("upgrade: done", {{"generation", pool_->current()}, {"version", std::string(versionString())}});
    // 3. The `relaypro upgrade` that waits hears it from this image, now that it serves.
    if (upgradeReply) {
        ControlSocket::answerOn(upgradeReply.release(), json_pack("{s:b,s:I}", "ok", 1, "generation",
                                                                  static_cast<json_int_t>(pool_->current())));
    }
    return 0;
}

WorkerPool::Setup Service::poolSetup(std::shared_ptr<const WorkerSettings> settings) {
    WorkerPool::Setup setup;
    for (const auto& l : listeners_) setup.listeners.push_back({l.kind, l.fd.get()});
    setup.secrets = trust_->secrets(std::chrono::system_clock::now());
    setup.settings = std::move(settings);
    setup.verify = [this](const ipc::VerifyRequest& request, WorkerPool::VerifyDone done) {
        verifyResponder(request, std::move(done));
    };
    const char* hooks = std::getenv("RELAYPRO_TEST_HOOKS");
    setup.testHooks = hooks != nullptr && std::string_view(hooks) == "1";
    setup.selfTest.paths = {options_.configPath, config_.caBundleFile, config_.logger.path};
    if (!config_.passwordFile.empty()) setup.selfTest.paths.push_back(config_.passwordFile);
    setup.selfTest.controlSocket = config_.controlSocketPath();
    return setup;
}

void Service::installHandlers() {
    // The service signals stay blocked in every thread (from run() on, so every thread started
    // since inherits it) and are read from a signalfd in the loop. A signal not read yet stays
    // pending in the kernel, and so across an upgrade's exec to the next image: nothing sits in
    // a user-space queue that the exec would drop (libevent's own signal handling writes into a
    // socket pair that dies with the image, and a signal delivered to another thread went there
    // too).
    sigset_t set = serviceSignalSet();
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    signalFd_.reset(::signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC));
    if (!signalFd_) {
        fatal(kExitFailure, std::string("signalfd: ") + std::strerror(errno));
        std::exit(kExitFailure);
    }
    signalEvent_ = event_new(base_, signalFd_.get(), EV_READ | EV_PERSIST, &Service::onSignalFd, this);
    event_add(signalEvent_, nullptr);
    reexec_ = evtimer_new(base_, &Service::onReexec, this);
}

void Service::onSignalFd(int fd, short, void* arg) {
    signalfd_siginfo info{};
    while (::read(fd, &info, sizeof info) == static_cast<ssize_t>(sizeof info)) {
        onSignal(static_cast<int>(info.ssi_signo), 0, arg);
    }
}

ControlSocket::Handler Service::controlHandler() {
    return [this](const std::string& command, json_t* request, ControlSocket::Respond respond) {
        onControl(command, request, std::move(respond));
    };
}

ControlSocket::IsWorker Service::isWorker() {
    return [this](pid_t pid) {
        auto pids = pool_->pids();
        return std::find(pids.begin(), pids.end(), pid) != pids.end();
    };
}

void Service::openControl(std::optional<int> adoptFd) {
    if (adoptFd) {
        control_ =
            ControlSocket::adopt(base_, *adoptFd, config_.controlSocketPath(), *log_, controlHandler(), isWorker());
        return;
    }
    auto control = ControlSocket::open(base_, config_.controlSocketPath(), *log_, controlHandler(), isWorker());
    if (!control) {
        fatal(kExitFailure, control.error().describe());
        return;
    }
    control_ = std::move(*control);
}

// <privateFolder>, mode 0700, created as the service account; an existing one must be a
// folder (not a link) of ours.
Status Service::ensurePrivateFolder() {
    const std::string& dir = config_.privateFolder;
    if (::mkdir(dir.c_str(), 0700) == 0) return {};
    if (errno != EEXIST) return sysError("cannot create the private folder " + dir);
    struct stat st {};
    if (::lstat(dir.c_str(), &st) != 0) return sysError("cannot inspect the private folder " + dir);
    if (!S_ISDIR(st.st_mode)) return Error{"the private folder " + dir + " is not a folder (a link is refused)"};
    if (st.st_uid != ::geteuid()) {
        return Error{"the private folder " + dir + " belongs to uid " + std::to_string(st.st_uid) +
                     "; it must belong to the service account (chown it)"};
    }
    if ((st.st_mode & 077) != 0) log_->warn("the private folder is open to others; chmod 700 it", {{"folder", dir}});
    return {};
}

// relayProId is generated once and written back (config.md); if config.yml cannot be written,
// the id lives in memory and the error names the fix.
void Service::ensureRelayProId() {
    if (!config_.relayProId.empty()) return;
    config_.relayProId = generateUuidV4();
    const std::vector<ConfigUpdate> update{ConfigUpdate::string({"relayProId"}, config_.relayProId)};
    auto stored = writeConfigUpdates(options_.configPath, update, env_);
    rememberUpdates(update, stored.ok());
    if (!stored) {
        log_->error("relayProId could not be stored",
                    {{"error", stored.error().message}, {"relayProId", config_.relayProId}});
    } else {
        log_->info("relayProId generated", {{"relayProId", config_.relayProId}});
    }
}

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

void Service::verifyResponder(const ipc::VerifyRequest& request, WorkerPool::VerifyDone done) {
    using R = ipc::VerifyAnswer::Result;
    if (!registered(config_)) return done(R::NotRegistered, 60);
    // Cache key: the Responder and a keyed hash of its credential (the credential itself is
    // never kept).
    unsigned char digest[32];
    crypto_generichash(digest, sizeof digest, reinterpret_cast<const unsigned char*>(request.credential.data()),
                       request.credential.size(), verifyCacheKey_.data(), verifyCacheKey_.size());
    std::string key = request.responderId;
    key.push_back('\0');
    key.append(reinterpret_cast<const char*>(digest), sizeof digest);
    const auto now = std::chrono::steady_clock::now();
    if (auto it = verifyCache_.find(key); it != verifyCache_.end()) {
        if (it->second.expires > now) return done(it->second.valid ? R::Valid : R::Invalid, 0);
        verifyCache_.erase(it);
    }
    if (verifyCache_.size() >= 100000) {
        std::erase_if(verifyCache_, [now](const auto& e) { return e.second.expires <= now; });
        if (verifyCache_.size() >= 100000) verifyCache_.clear();
    }
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
    const int64_t organizationId = config_.organizationId;
    console_->post(
        "/api/public/relay-pro/responders/verify", config_.securityToken, bodyText, std::chrono::seconds(5),
        [this, responderId, organizationId, key, done = std::move(done)](ConsoleResponse&& r) {
            if (!r.transportOk || r.status >= 500) {
                log_->warn("console verify failed", {{"responder", responderId},
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
            auto expires =
                std::chrono::steady_clock::now() + (valid ? std::chrono::seconds(60) : std::chrono::seconds(5));
            verifyCache_[key] = VerifyCacheEntry{valid, expires};
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
    if (session_) session_->evaluate(config_, revoked_);
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
    auto interval = std::chrono::milliseconds(60000);
    const char* hooksOn = std::getenv("RELAYPRO_TEST_HOOKS");
    const char* ms = std::getenv("RELAYPRO_TEST_HEARTBEAT_MS");
    if (hooksOn != nullptr && std::string_view(hooksOn) == "1" && ms != nullptr) {
        interval = std::chrono::milliseconds(std::clamp(std::atol(ms), 100L, 60000L));
    }
    session_ =
        std::make_unique<ConsoleSession>(base_, *console_, *log_, std::move(hooks), std::move(identity), interval);
    session_->evaluate(config_, revoked_);
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
    verifyCache_.clear();
    log_->info("registered", {{"relayId", config_.relayId}, {"console", config_.consoleAddress.text()}});
    pushCurrentSettings();
    session_->evaluate(config_, revoked_);
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

int Service::fatal(int code, const std::string& message) {
    if (log_) log_->error(message);
    std::fprintf(stderr, "relaypro: %s\n", message.c_str());
    return code;
}

std::string Service::statusLine() const {
    PoolStats st = pool_ ? pool_->stats() : PoolStats{};
    size_t serving = pool_ ? pool_->serving(pool_->current()) : 0;
    std::string state = stopping_ ? "stopping" : upgrade_ ? "upgrading" : "serving";
    return state + "; " + std::to_string(serving) + " workers; " + std::to_string(st.tunnels) +
           (registered(config_) ? " tunnels; registered" : " tunnels; not registered");
}

void Service::notifyReady(const std::string& extra) {
    std::string status = statusLine() + extra;
    sd::notify("READY=1\nSTATUS=" + status + "\nMAINPID=" + std::to_string(::getpid()));
}

json_t* Service::statusJson() {
    json_t* listeners = json_array();
    for (const auto& l : listeners_) {
        json_array_append_new(
            listeners, json_pack("{s:s,s:s}", "kind", l.kind == 0 ? "https" : "http", "address", l.address.c_str()));
    }
    json_t* workers = json_array();
    for (const auto& w : pool_->view()) {
        json_array_append_new(workers, json_pack("{s:I,s:I,s:s,s:I,s:I}", "pid", static_cast<json_int_t>(w.pid),
                                                 "generation", static_cast<json_int_t>(w.generation), "state",
                                                 w.state.c_str(), "tunnels", static_cast<json_int_t>(w.tunnels),
                                                 "connections", static_cast<json_int_t>(w.connections)));
    }
    auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - started_).count();
    json_t* registration =
        json_pack("{s:s,s:I,s:s}", "state", session_ ? session_->stateName() : "unregistered", "relayId",
                  static_cast<json_int_t>(config_.relayId), "registeredTo", config_.registeredTo.c_str());
    std::string version(versionString());
    return json_pack("{s:s,s:I,s:I,s:I,s:o,s:s,s:o,s:o}", "version", version.c_str(), "pid",
                     static_cast<json_int_t>(::getpid()), "generation", static_cast<json_int_t>(pool_->current()),
                     "uptimeSeconds", static_cast<json_int_t>(std::max<int64_t>(0, uptime)), "registration",
                     registration, "caFingerprint", trust_->ca().fingerprintHex().c_str(), "listeners", listeners,
                     "workers", workers);
}

void Service::startWatchdog() {
    uint64_t usec = sd::watchdogMicros();
    if (watchdog_ != nullptr || usec == 0) return;
    onWatchdog(-1, 0, this);  // at once: after a re-exec, the previous image's last ping was before the exec
    watchdog_ = event_new(base_, -1, EV_PERSIST, &Service::onWatchdog, this);
    uint64_t half = usec / 2;
    timeval tv = toTimeval(std::chrono::microseconds(half));
    event_add(watchdog_, &tv);
}

void Service::onWatchdog(int, short, void* arg) {
    auto* self = static_cast<Service*>(arg);
    // Only while this loop runs and at least one worker of the current generation serves.
    if (self->pool_->serving(self->pool_->current()) > 0) sd::notify("WATCHDOG=1");
}

void Service::onSignal(int sig, short, void* arg) {
    auto* self = static_cast<Service*>(arg);
    switch (sig) {
        case SIGTERM:
        case SIGINT:
            return self->stop();
        case SIGHUP:
            return self->reload();
        case SIGUSR2:
            // Signals that arrive while an upgrade runs belong to it (issue 16: 20 signals made
            // 11 upgrades in a row).
            if (self->upgrade_) return self->log_->info("upgrade signal coalesced with the upgrade running");
            return self->beginUpgrade(std::chrono::seconds(60), {});
        case SIGCHLD:
            return self->childrenExited();
        case SIGUSR1:
            if (auto s = self->sink_->reopen(); !s) {
                std::fprintf(stderr, "relaypro: %s\n", s.error().describe().c_str());
            } else {
                self->log_->info("log file reopened");
            }
            return;
        default:
            return;
    }
}

void Service::childrenExited() {
    // The check's process group is killed before its leader is reaped: while the leader is a
    // zombie its number cannot name another process or group.
    if (upgrade_ && upgrade_->checkPid > 0) {
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(upgrade_->checkPid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
            info.si_pid == upgrade_->checkPid) {
            ::kill(-upgrade_->checkPid, SIGKILL);
        }
    }
    for (const auto& [pid, status] : pool_->reap()) {
        if (upgrade_ && pid == upgrade_->checkPid) upgradeChecked(status);
    }
}

void Service::onControl(const std::string& command, json_t* request, ControlSocket::Respond respond) {
    if (command == "status") return respond(statusJson());
    if (command == "upgrade") {
        json_t* t = json_object_get(request, "timeoutSeconds");
        json_int_t seconds = json_is_integer(t) ? json_integer_value(t) : 60;
        return beginUpgrade(std::chrono::seconds(std::clamp<json_int_t>(seconds, 1, 86400)), std::move(respond));
    }
    log_->warn("control socket request refused", {{"reason", "unknown command"}, {"command", command.substr(0, 64)}});
    respond(json_pack("{s:s}", "error", "unknown command"));
}

void Service::stop() {
    if (stopping_) return;
    stopping_ = true;
    sd::notify("STOPPING=1");
    PoolStats st = pool_->stats();
    log_->info("stopping", {{"connections", st.connections}, {"tunnels", st.tunnels}});
    if (upgrade_) {
        // Not a failure to report as one: the stop ends every generation, the new one included.
        log_->info("upgrade abandoned: the service is stopping");
        endUpgrade("upgrade abandoned: the service is stopping");
    }
    // New connections are refused from now on: the supervisor's copies of the listening sockets
    // close here, the workers' as they begin to drain (lifecycle.md, Stop).
    for (auto& l : listeners_) l.fd.reset();
    auto grace = std::chrono::duration_cast<std::chrono::milliseconds>(config_.limits.shutdownGrace);
    // Every generation's deadline comes forward to now + grace (a draining one's too), and a
    // worker still there WorkerPool::kStopMargin later is killed: so the grace plus a margin is
    // what the stop takes, and what systemd is told (the unit's stop timeout may be shorter).
    sd::notify("EXTEND_TIMEOUT_USEC=" +
               std::to_string(static_cast<unsigned long long>(grace.count() + 5000) * 1000ULL));
    pool_->stopAll(grace, [this] { event_base_loopexit(base_, nullptr); });
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
    }
    for (const auto& ch : diffConfigs(config_, next)) {
        bool kept = keep == Keep::RestartFields ? ch.apply == Apply::Restart
                                                : ch.field == "httpsProxy.listen" || ch.field == "RELAYPRO_HTTP_LISTEN";
        if (kept) {
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
    pool_->pushSettings(c.settings);
    console_->configure(config_, c.settings->names.hosts);
    verifyCache_.clear();
    if (session_) session_->evaluate(config_, revoked_);
    log_->setMinLevel(config_.debugLogging ? LogLevel::Debug : LogLevel::Info);
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

namespace {
std::string joined(const std::vector<std::string>& fields) {
    std::string list;
    for (const auto& f : fields) list += (list.empty() ? "" : ",") + f;
    return list;
}
}  // namespace

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
        auto c = texts ? readFiles(Keep::Listeners) : Result<Candidate>(texts.error());
        if (!c) {
            failed = c.error().message;
            log_->error(
                "config.yml changed during the upgrade and cannot be used; the configuration checked before "
                "the upgrade stays in effect",
                {{"error", failed}});
        } else {
            std::string changed = joined(c->changed);
            commit(std::move(*c));
            log_->info("reload", {{"changed", changed}, {"during", "upgrade"}});
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

void Service::reload() {
    sd::notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonicMicros()));
    auto c = readFiles(Keep::RestartFields);
    if (!c) {
        const std::string& why = c.error().message;
        log_->error("reload failed; keeping the running configuration", {{"error", why}});
        notifyReady("; reload failed: " + why.substr(0, 200));
        return;
    }
    std::string changed = joined(c->changed);
    commit(std::move(*c));
    log_->info("reload", {{"changed", changed}});
    notifyReady();
}

// ---------------------------------------------------------------- upgrade

std::string Service::installedBinary() const {
    // Tests point this at another build; in production it is the path this image came from.
    if (const char* p = std::getenv("RELAYPRO_INSTALLED_BINARY"); p != nullptr && *p != '\0') return p;
    std::string path = executablePath_;
    const std::string deleted = " (deleted)";  // the package replaced the file under us
    if (path.size() > deleted.size() && path.ends_with(deleted)) path.resize(path.size() - deleted.size());
    return path;
}

void Service::beginUpgrade(std::chrono::seconds timeout, ControlSocket::Respond respond) {
    auto refuse = [&](const std::string& why) {
        log_->error("upgrade refused", {{"error", why}});
        if (respond) respond(json_pack("{s:s}", "error", why.c_str()));
    };
    if (upgrade_) return refuse("an upgrade is already running");
    if (stopping_) return refuse("the service is stopping");
    upgrade_.emplace();
    upgrade_->respond = std::move(respond);
    upgrade_->timeout = timeout;
    upgrade_->deadline = std::chrono::steady_clock::now() + timeout;
    upgrade_->binary = installedBinary();
    log_->info("upgrade: checking the configuration with the installed binary", {{"binary", upgrade_->binary}});
    // A file problem is named as one, not reported as the check's exit code 127 (its exec failed).
    struct stat installed {};
    if (::stat(upgrade_->binary.c_str(), &installed) != 0) {
        return upgradeFailed("the installed binary " + upgrade_->binary + " cannot be used: " + std::strerror(errno));
    }
    if (!S_ISREG(installed.st_mode) || ::access(upgrade_->binary.c_str(), X_OK) != 0) {
        return upgradeFailed("the installed binary " + upgrade_->binary + " is not an executable file");
    }

    // 1. The installed binary's check-config against the live configuration.
    int errPipe[2];
    if (::pipe2(errPipe, O_CLOEXEC | O_NONBLOCK) != 0)
        return upgradeFailed("pipe: " + std::string(std::strerror(errno)));
    upgrade_->checkStderr.reset(errPipe[0]);
    std::vector<std::string> argStore{upgrade_->binary, "check-config", "--config", options_.configPath};
    std::vector<char*> argv;
    for (auto& a : argStore) argv.push_back(a.data());
    argv.push_back(nullptr);
    // Asked this way, a build that reads a hand-over of format 2 or later says so on stderr; an
    // older one says nothing, and gets format 1 (cli.cc, checkConfig).
    std::vector<std::string> envStore{std::string(kUpgradeCheckEnv) + "=1"};
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        if (!std::string_view(*e).starts_with(kUpgradeCheckEnv)) envStore.emplace_back(*e);
    }
    std::vector<char*> envp;
    for (auto& e : envStore) envp.push_back(e.data());
    envp.push_back(nullptr);
    int devNull = ::open("/dev/null", O_RDWR | O_CLOEXEC);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::setpgid(0, 0);  // a group of its own: a timeout or a stop ends everything it started
        ::dup2(devNull, 0);
        ::dup2(devNull, 1);
        ::dup2(errPipe[1], 2);
        closeOnExecFrom(3);  // only stdio reaches the check: nothing of the supervisor's
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        ::execve(argv[0], argv.data(), envp.data());
        ::_exit(127);
    }
    int forkErrno = errno;
    if (pid > 0) ::setpgid(pid, pid);  // also here: no kill of the group may come before the child's own call
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    ::close(errPipe[1]);
    ::close(devNull);
    if (pid < 0) return upgradeFailed("fork: " + std::string(std::strerror(forkErrno)));
    upgrade_->checkPid = pid;
    upgrade_->checkTimer = evtimer_new(base_, &Service::onCheckTimeout, this);
    auto limit = std::min<std::chrono::milliseconds>(kCheckTimeout, timeout);
    timeval tv = toTimeval(limit);
    evtimer_add(upgrade_->checkTimer, &tv);
}

void Service::onCheckTimeout(int, short, void* arg) {
    auto* self = static_cast<Service*>(arg);
    if (!self->upgrade_ || self->upgrade_->checkPid <= 0) return;
    ::kill(-self->upgrade_->checkPid, SIGKILL);  // its whole group; reaped as usual, the answer is the timeout
    self->upgrade_->checkPid = -1;
    auto limit = std::min<std::chrono::milliseconds>(kCheckTimeout, self->upgrade_->timeout);
    self->upgradeFailed(limit < kCheckTimeout ? timedOut(self->upgrade_->timeout)
                                              : "the installed binary's check-config did not finish within 30s");
}

void Service::upgradeChecked(int status) {
    evtimer_del(upgrade_->checkTimer);
    upgrade_->checkPid = -1;  // its group was killed before it was reaped (childrenExited)
    // All it said (the check has exited; the pipe holds up to 64 KiB): warnings come before the
    // hand-over format line, which is last.
    std::string said;
    char buf[4096];
    ssize_t n = 0;
    while (said.size() < (64U << 10) && (n = ::read(upgrade_->checkStderr.get(), buf, sizeof buf)) > 0) {
        said.append(buf, static_cast<size_t>(n));
    }
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        std::string reason = said.substr(0, 2047);
        while (!reason.empty() && (reason.back() == '\n' || reason.back() == ' ')) reason.pop_back();
        std::string code = WIFEXITED(status) ? "exit code " + std::to_string(WEXITSTATUS(status)) : "a signal";
        return upgradeFailed("the installed binary refuses the configuration (" + code + ")" +
                             (reason.empty() ? "" : ": " + reason));
    }
    upgrade_->handoverFormat = handoverFormatSaid(said);
    // 2. Re-read the configuration, open the installed binary, start the next generation.
    sd::notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonicMicros()));
    auto c = readFiles(Keep::Listeners);
    if (!c) return upgradeFailed(c.error().message);
    upgrade_->executable.reset(::open(upgrade_->binary.c_str(), O_RDONLY | O_CLOEXEC));
    if (!upgrade_->executable) return upgradeFailed("cannot open " + upgrade_->binary + ": " + std::strerror(errno));
    commit(std::move(*c));
    upgrade_->generation = pool_->current() + 1;
    auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(upgrade_->deadline - std::chrono::steady_clock::now());
    if (left <= std::chrono::milliseconds::zero()) return upgradeFailed(timedOut(upgrade_->timeout));
    log_->info("upgrade: starting the next generation", {{"generation", upgrade_->generation}, {"workers", workers_}});
    pool_->startGeneration(
        upgrade_->generation, workers_, upgrade_->executable.get(), [this] { upgradeReady(); },
        [this](const std::string& why) {
            if (!upgrade_) return;  // abandoned by a stop meanwhile
            // The readiness timer is the rest of the upgrade's time, rounded down to a millisecond.
            bool late = std::chrono::steady_clock::now() + std::chrono::milliseconds(100) >= upgrade_->deadline;
            upgradeFailed(late ? timedOut(upgrade_->timeout) + ": the new workers were not ready"
                               : "the new workers did not start: " + why);
        },
        left);
}

void Service::upgradeReady() {
    // 3. The new generation serves: the old one drains (stops accepting, keeps its tunnels
    // until they end or drainTimeout passes).
    uint32_t old = pool_->current();
    pool_->setCurrent(upgrade_->generation);
    auto drain = std::chrono::duration_cast<std::chrono::milliseconds>(config_.limits.drainTimeout);
    pool_->drain(old, drain);
    log_->info("upgrade: new generation serving; the old one drains",
               {{"generation", upgrade_->generation},
                {"draining", old},
                {"drainTimeoutMs", static_cast<int64_t>(drain.count())}});
    // 4. Re-execute the installed binary in place, from the loop (not from inside a callback).
    // A signal read before then is handled first (a stop makes the re-exec a no-op); one that
    // comes later stays pending in the kernel across the exec, for the next image.
    event_active(reexec_, EV_TIMEOUT, 0);
}

void Service::upgradeFailed(const std::string& why) {
    if (!upgrade_) return;
    log_->error("upgrade failed; the running generation keeps serving", {{"error", why}});
    endUpgrade("upgrade failed: " + why);
    notifyReady("; upgrade failed");
}

void Service::endUpgrade(const std::string& answer) {
    if (upgrade_->respond) upgrade_->respond(json_pack("{s:s}", "error", answer.c_str()));
    if (upgrade_->checkPid > 0) ::kill(-upgrade_->checkPid, SIGKILL);  // its whole group, not yet reaped
    if (upgrade_->checkTimer != nullptr) event_free(upgrade_->checkTimer);
    upgrade_.reset();
}

void Service::onReexec(int, short, void* arg) {
    static_cast<Service*>(arg)->reexecute();
}

void Service::reexecute() {
    if (!upgrade_ || stopping_) return;  // a stop (or a failure) came first: nothing to re-execute
    // A downgrade: the installed build reads only the format of the release before, which has no
    // configuration snapshot and cannot answer the waiting `upgrade`: this image answers now.
    const uint32_t format = upgrade_->handoverFormat;
    if (format < 2 && upgrade_->respond) {
        upgrade_->respond(json_pack("{s:b,s:I}", "ok", 1, "generation", static_cast<json_int_t>(upgrade_->generation)));
    }
    if (auto s = ensurePrivateFolder(); !s) log_->error(s.error().describe());  // the hand-over's fallback file
    HandoverState state;
    state.currentGeneration = pool_->current();
    state.startedUnixMs = std::chrono::duration_cast<std::chrono::milliseconds>(started_.time_since_epoch()).count();
    for (const auto& l : listeners_) state.listeners.push_back({l.kind, l.fd.get(), l.address});
    state.controlFd = control_ ? control_->release() : -1;
    state.workers = pool_->handover();
    state.exitedTunnels = pool_->exitedTunnels();
    for (const auto& k : env_.everHeld()) state.everHeldEnv.push_back(k);
    state.certificateChainPem = trust_->tls().certificateChainPem;
    state.privateKeyPem = trust_->tls().privateKeyPem;
    state.caPem = caPem_;
    state.configText = configText_;
    state.envFileText = envFileText_;
    state.httpsListen = config_.httpsListen.text();
    state.httpListen = config_.httpListen ? config_.httpListen->text() : "";
    state.settingsBytes = pool_->settingsBytes();
    state.caBundlePem = trust_->ca().toPem();
    state.revoked = revoked_;
    // The `relaypro upgrade` waiting is answered by the next image, once it has taken over.
    state.upgradeReplyFd = upgrade_->respond ? upgrade_->respond.release() : -1;
    state.droppedLogLines = sink_->droppedSinceLastReport();
    state.droppedLogLinesTotal = sink_->droppedTotal();
    state.unsavedUpdates = unsavedUpdates_;
    state.unsavedBase = unsavedBase_;
    auto memfd = writeHandover(state, config_.privateFolder, format);
    for (std::string* secret :
         {&state.privateKeyPem, &state.caBundlePem, &state.configText, &state.envFileText, &state.unsavedBase}) {
        sodium_memzero(secret->data(), secret->size());
    }

    auto recover = [&](const std::string& why) {
        // The exec did not happen: this image takes its workers back and carries on.
        log_->error("upgrade: the supervisor could not re-execute; this image keeps running", {{"error", why}});
        for (int fd : handoverDescriptors(state)) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
        pool_->adopt(state.workers, state.currentGeneration, upgrade_->executable.get(), workers_);
        if (state.controlFd >= 0) openControl(state.controlFd);
        executable_ = std::move(upgrade_->executable);
        // The new workers serve, but this supervisor is still the old image: not a success.
        ControlSocket::answerOn(
            state.upgradeReplyFd,
            json_pack("{s:s}", "error",
                      ("upgrade failed: the supervisor could not re-execute the installed binary (" + why +
                       "); the new workers serve under the old supervisor")
                          .c_str()));
        endUpgrade({});  // its connection was answered just above
        notifyReady("; upgrade failed");
    };
    if (!memfd) return recover(memfd.error().describe());
    // Only what is handed over on purpose crosses the exec: descriptors a library opened without
    // O_CLOEXEC (libcurl's wake-up socket pair) would otherwise pile up, two per upgrade.
    closeOnExecFrom(3);
    for (int fd : handoverDescriptors(state)) ::fcntl(fd, F_SETFD, 0);
    ::fcntl(*memfd, F_SETFD, 0);

    std::vector<std::string> envStore;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) envStore.emplace_back(*e);
    envStore.push_back(std::string(kHandoverEnv) + "=" + std::to_string(*memfd));
    std::vector<char*> envp;
    for (auto& e : envStore) envp.push_back(e.data());
    envp.push_back(nullptr);
    std::vector<std::string> argStore = options_.argv;
    std::vector<char*> argv;
    for (auto& a : argStore) argv.push_back(a.data());
    argv.push_back(nullptr);

    log_->info("upgrade: re-executing the supervisor", {{"binary", upgrade_->binary}});
    sink_->waitForBackground();
    // Tests widen the moment before the exec: a signal sent now must reach the next image.
    const char* hooks = std::getenv("RELAYPRO_TEST_HOOKS");
    const char* pause = std::getenv("RELAYPRO_TEST_REEXEC_PAUSE_MS");
    if (hooks != nullptr && std::string_view(hooks) == "1" && pause != nullptr) {
        ::usleep(static_cast<useconds_t>(std::clamp(std::atol(pause), 0L, 10000L) * 1000));
    }
    // The next image pings systemd's watchdog at once; this one does just before it goes, so the
    // gap is the exec and the take-over, not that plus up to half an interval.
    if (watchdog_ != nullptr) sd::notify("WATCHDOG=1");
    // Signals stay blocked (they always are) and pending across the exec; the next image reads
    // them from its own signalfd once its loop runs.
    execDescriptor(upgrade_->executable.get(), argv.data(), envp.data());
    int err = errno;
    ::close(*memfd);
    recover(std::string("exec: ") + std::strerror(err));
}

}  // namespace relaypro
