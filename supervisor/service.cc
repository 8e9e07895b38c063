#include "supervisor/service.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/event_time.h"
#include "common/test_hooks.h"
#include "supervisor/cli.h"
#include "supervisor/listeners.h"
#include "supervisor/sd_daemon.h"
#include "supervisor/version.h"

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
    listings_.reset();
    metricsEndpoint_.reset();  // its connections and listener are events of base_
    pool_.reset();
    closeListeners();
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

Status Service::openOwnImage() {
    // Our own image, opened now: workers are exec'ed from it even if the file is replaced on
    // disk later (a package upgrade), so they always match this supervisor.
    executable_.reset(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
    int openErrno = errno;
    char path[4096] = {};
    ssize_t n = ::readlink("/proc/self/exe", path, sizeof path - 1);
    executablePath_ = n > 0 ? std::string(path, static_cast<size_t>(n)) : "";
    if (!executable_) return sysError("cannot open /proc/self/exe", openErrno);
    return {};
}

unsigned Service::workerCount(const Config& c) {
    return c.workers != 0 ? c.workers : static_cast<unsigned>(std::clamp<long>(::sysconf(_SC_NPROCESSORS_ONLN), 1, 64));
}

int Service::createLoop(const std::shared_ptr<const WorkerSettings>& settings) {
    applyListenBacklog();  // at start and in the image an upgrade re-executes (review of issue 19)
    checkSourcePorts();
    base_ = event_base_new();
    if (base_ == nullptr) return fatal(kExitFailure, "cannot create the event loop");
    console_ = std::make_unique<ConsoleClient>(base_, *log_);
    console_->configure(config_, settings->names.hosts);
    console_->observe([this](const std::string& path, const ConsoleResponse& r, std::chrono::microseconds took) {
        countConsoleCall(path, r, took);
    });
    pool_ = std::make_unique<WorkerPool>(base_, *log_, sink_.get(), poolSetup(settings));
    listings_ = std::make_unique<TunnelListings>(
        base_, [this](pid_t pid, const ipc::TunnelListRequest& r) { return pool_->askTunnels(pid, r); });
    pool_->onTunnelLists([this](pid_t pid, const ipc::TunnelList* list) { listings_->answered(pid, list); });
    return 0;
}

void Service::serve() {
    startWatchdog();
    scheduleKeyCheck();
    startConsoleSession();  // registration runs in the background; the listeners serve
}

void Service::applyListenBacklog() {
    // listen() again on a listening socket sets its queue's length (a socket systemd passed
    // gets the configured one too); the kernel takes at most net.core.somaxconn.
    int backlog = static_cast<int>(config_.limits.listenBacklog);
    for (const auto& l : listeners_) {
        if (l.fd >= 0 && ::listen(l.fd, backlog) != 0) {
            log_->warn("cannot set the listening socket's backlog",
                       {{"listen", l.address}, {"error", std::string(std::strerror(errno))}});
        }
    }
    if (int cap = somaxconn(); cap > 0 && backlog > cap && backlog != warnedBacklog_) {
        warnedBacklog_ = backlog;
        log_->warn("limits.listenBacklog is above net.core.somaxconn: the kernel queues at most that many",
                   {{"listenBacklog", backlog}, {"somaxconn", cap}});
    }
}

void Service::checkSourcePorts() {
    // A range inside the kernel's own takes ports from every other program's connect() on the
    // host (worker/source_port.h): said at start and at each reload that finds the overlap anew
    // (not again while it lasts; ip_local_reserved_ports is not read).
    const Limits& l = config_.limits;
    auto [low, high] = localPortRange();
    const bool overlaps = l.sourcePortLow != 0 && low != 0 && l.sourcePortLow <= high && low <= l.sourcePortHigh;
    const uint64_t seen = overlaps ? uint64_t{l.sourcePortLow} << 48 | uint64_t{l.sourcePortHigh} << 32 |
                                         static_cast<uint32_t>(low) << 16 | static_cast<uint32_t>(high)
                                   : 0;
    if (seen == warnedSourcePorts_) return;
    warnedSourcePorts_ = seen;
    if (!overlaps) return;
    log_->warn(
        "limits.sourcePorts overlaps net.ipv4.ip_local_port_range: other programs' connections may find "
        "no free port; move one of the two",
        {{"sourcePorts", std::to_string(l.sourcePortLow) + "-" + std::to_string(l.sourcePortHigh)},
         {"ip_local_port_range", std::to_string(low) + " " + std::to_string(high)}});
}

void Service::closeListeners() {
    for (auto& l : listeners_) {
        if (l.fd >= 0) ::close(l.fd);
        l.fd = -1;  // the entry stays: `status` still lists what was configured
    }
}

int Service::bindListeners() {
    auto add = [&](ListenerKind kind, const HostPort& address) -> int {
        UniqueFd fd = adoptActivatedListener(address);
        if (fd) activated_.push_back(kind);
        if (!fd) {
            auto bound = bindListener(address, static_cast<int>(config_.limits.listenBacklog));
            if (!bound) return fatal(kExitFailure, bound.error().message);
            fd = std::move(*bound);
        }
        std::string text = boundAddress(fd.get());
        listeners_.push_back({kind, fd.release(), text});
        return 0;
    };
    if (int rc = add(ListenerKind::Https, config_.httpsListen); rc != 0) return rc;
    if (config_.httpListen) {
        if (int rc = add(ListenerKind::Http, *config_.httpListen); rc != 0) return rc;
    }
    return bindMetrics();
}

int Service::freshStart() {
    if (auto s = openOwnImage(); !s) return fatal(kExitFailure, s.error().describe());
    // Bind first (a port below 1024 may need root or CAP_NET_BIND_SERVICE), then drop to the
    // service account, then create files: they belong to that account.
    if (int rc = bindListeners(); rc != 0) return rc;
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
    if (!trust) return fatal(kExitConfig, withReadOnlyFix(trust.error()));  // a CA bundle to create, too
    trust_ = std::make_unique<Trust>(std::move(*trust));
    caPem_ = trust_->ca().certificatePem();
    workers_ = workerCount(config_);
    auto settings = buildSettings(config_);
    if (!settings) return fatal(kExitConfig, settings.error().message);
    if (int rc = createLoop(*settings); rc != 0) return rc;
    serveMetrics();
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
                log_->info("listening", {{"kind", std::string(listenerKindName(l.kind))},
                                         {"address", l.address},
                                         {"socketActivation", fromSystemd}});
            }
            log_->info("ready", {{"workers", workers_}, {"tunnelsMax", maxConnectionsPerWorker_ * workers_}});
            notifyReady();
            serve();
        },
        [this](const std::string& why) {
            log_->error("workers did not start", {{"error", why}});
            std::fprintf(stderr, "relaypro: workers did not start: %s\n", why.c_str());
            exitCode_ = kExitFailure;
            event_base_loopexit(base_, nullptr);
        });
    return 0;
}

WorkerPool::Setup Service::poolSetup(std::shared_ptr<const WorkerSettings> settings) {
    WorkerPool::Setup setup;
    setup.listeners = listeners_;
    setup.secrets = trust_->secrets(std::chrono::system_clock::now());
    setup.settings = std::move(settings);
    setup.verify = [this](const ipc::VerifyRequest& request, WorkerPool::VerifyDone done) {
        verifyResponder(request, std::move(done));
    };
    setup.testHooks = testHooks().on;
    setup.metrics = &metrics_;
    setup.handshakeBound = handshakeBound(config_.limits.maxHandshakes, workers_, ::sysconf(_SC_NPROCESSORS_ONLN));
    setup.sourcePorts = ipc::SourcePorts{config_.limits.sourcePortLow, config_.limits.sourcePortHigh};
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

int Service::fatal(int code, const std::string& message) {
    if (log_) log_->error(message);
    std::fprintf(stderr, "relaypro: %s\n", message.c_str());
    return code;
}

std::string Service::statusLine() const {
    PoolStats st = pool_ ? pool_->stats() : PoolStats{};
    size_t serving = pool_ ? pool_->serving(pool_->current()) : 0;
    std::string state = stopping_ ? "stopping" : upgrade_ ? "upgrading" : "serving";
    // lifecycle.md: "serving; 2 workers; 1234 tunnels; registered as relay 3 to console.example.com".
    std::string registration =
        registered(config_) ? "registered as relay " + std::to_string(config_.relayId) + " to " + config_.registeredTo
                            : "not registered with " + config_.consoleAddress.text();
    return state + "; " + std::to_string(serving) + " workers; " + std::to_string(st.tunnels) + " tunnels; " +
           registration;
}

void Service::notifyReady(const std::string& extra) {
    std::string status = statusLine() + extra;
    sd::notify("READY=1\nSTATUS=" + status + "\nMAINPID=" + std::to_string(::getpid()));
}

void Service::notifyReloading() {
    sd::notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonicMicros()));
}

json_t* Service::statusJson() {
    json_t* listeners = json_array();
    for (const auto& l : listeners_) {
        json_array_append_new(listeners, json_pack("{s:s%,s:s}", "kind", listenerKindName(l.kind).data(),
                                                   listenerKindName(l.kind).size(), "address", l.address.c_str()));
    }
    if (metricsSocket_) {
        json_array_append_new(listeners, json_pack("{s:s,s:s}", "kind", "metrics", "address", metricsAddress_.c_str()));
    }
    json_t* workers = json_array();
    for (const auto& w : pool_->view()) {
        json_array_append_new(workers, json_pack("{s:I,s:I,s:s,s:I,s:I}", "pid", static_cast<json_int_t>(w.pid),
                                                 "generation", static_cast<json_int_t>(w.generation), "state",
                                                 w.state.c_str(), "tunnels", static_cast<json_int_t>(w.tunnels),
                                                 "connections", static_cast<json_int_t>(w.connections)));
    }
    auto uptime = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now() - started_).count();
    // cli.md's three states; "progress" adds the session's finer one (registering, rejected).
    json_t* registration = json_pack(
        "{s:s,s:I,s:s,s:s}", "state", registrationState(), "relayId", static_cast<json_int_t>(config_.relayId),
        "registeredTo", config_.registeredTo.c_str(), "progress", session_ ? session_->stateName() : "unregistered");
    std::string version(versionString());
    return json_pack("{s:s,s:I,s:I,s:I,s:o,s:s,s:o,s:o}", "version", version.c_str(), "pid",
                     static_cast<json_int_t>(::getpid()), "generation", static_cast<json_int_t>(pool_->current()),
                     "uptimeSeconds", static_cast<json_int_t>(std::max<int64_t>(0, uptime)), "registration",
                     registration, "caFingerprint", trust_->ca().fingerprintColons().c_str(), "listeners", listeners,
                     "workers", workers);
}

const char* Service::registrationState() const {
    return revoked_ ? "revoked" : registered(config_) ? "registered" : "unregistered";
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
    if (command == "tunnels") {
        // Refused before anything is written: the client sees one error line, as for status.
        if (listings_->running() >= TunnelListings::kMaxListings) {
            log_->warn("control socket request refused", {{"reason", "too many tunnel listings at once"}});
            return respond(json_pack("{s:s}", "error", "too many tunnel listings at once; try again"));
        }
        (void)listings_->start(pool_->view(), respond.stream());
        return;
    }
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
    closeListeners();
    auto grace = std::chrono::duration_cast<std::chrono::milliseconds>(config_.limits.shutdownGrace);
    // Every generation's deadline comes forward to now + grace (a draining one's too), and a
    // worker still there WorkerPool::kStopMargin later is killed: so the grace plus a margin is
    // what the stop takes, and what systemd is told (the unit's stop timeout may be shorter).
    sd::notify("EXTEND_TIMEOUT_USEC=" +
               std::to_string(static_cast<unsigned long long>(grace.count() + 5000) * 1000ULL));
    pool_->stopAll(grace, [this] { event_base_loopexit(base_, nullptr); });
}

}  // namespace relaypro
