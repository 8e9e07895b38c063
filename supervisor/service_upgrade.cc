// Upgrade in place (lifecycle.md, Upgrade): the installed binary checks the configuration, a
// new generation of workers starts from it and serves, the old one drains, and the supervisor
// re-executes the installed binary, handing over what it holds (handover.h).
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "common/event_time.h"
#include "common/test_hooks.h"
#include "ipc/snapshot.h"
#include "supervisor/cli.h"
#include "supervisor/exec_fd.h"
#include "supervisor/sd_daemon.h"
#include "supervisor/service.h"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace relaypro {
namespace {

// The installed binary's check-config gets at most this long (less if `--timeout` is shorter).
constexpr std::chrono::milliseconds kCheckTimeout{30000};

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

// Pointers into `store`, ending with nullptr, as execve takes them.
std::vector<char*> execList(std::vector<std::string>& store) {
    std::vector<char*> out;
    for (auto& s : store) out.push_back(s.data());
    out.push_back(nullptr);
    return out;
}

}  // namespace

std::string Service::installedBinary() const {
    // Tests point this at another build; in production it is the path this image came from.
    if (!testHooks().installedBinary.empty()) return testHooks().installedBinary;
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
    auto pid = spawnCheck();
    if (!pid) return upgradeFailed(pid.error().describe());
    upgrade_->checkPid = *pid;
    upgrade_->checkTimer = evtimer_new(base_, &Service::onCheckTimeout, this);
    auto limit = std::min<std::chrono::milliseconds>(kCheckTimeout, timeout);
    timeval tv = toTimeval(limit);
    evtimer_add(upgrade_->checkTimer, &tv);
}

// `<installed binary> check-config --config <path>`, stdio only, its stderr into a pipe.
Result<pid_t> Service::spawnCheck() {
    int errPipe[2];
    if (::pipe2(errPipe, O_CLOEXEC | O_NONBLOCK) != 0) return sysError("pipe");
    upgrade_->checkStderr.reset(errPipe[0]);
    std::vector<std::string> argStore{upgrade_->binary, "check-config", "--config", options_.configPath};
    std::vector<char*> argv = execList(argStore);
    // Asked this way, a build that reads a hand-over of format 2 or later says so on stderr; an
    // older one says nothing, and gets format 1 (cli.cc, checkConfig).
    std::vector<std::string> envStore{std::string(kUpgradeCheckEnv) + "=1"};
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        if (!std::string_view(*e).starts_with(kUpgradeCheckEnv)) envStore.emplace_back(*e);
    }
    std::vector<char*> envp = execList(envStore);
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
    if (pid < 0) return sysError("fork", forkErrno);
    return pid;
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
    notifyReloading();
    // Read first, applied only once the binary is open: a configuration error is the one reported.
    auto c = readFiles(Keep::Listeners);
    if (!c) return upgradeFailed(c.error().message);
    // The control socket (and the CA bundle's default place) cannot move under a running service.
    if (c->snapshot.config.privateFolder != config_.privateFolder) {
        return upgradeFailed("privateFolder changed (" + config_.privateFolder + " to " +
                             c->snapshot.config.privateFolder +
                             "); it takes effect only at a restart: restart the service (systemctl restart "
                             "binalyze-air-relaypro), or set it back to upgrade");
    }
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
    auto spread = std::chrono::duration_cast<std::chrono::milliseconds>(config_.limits.drainSpread);
    pool_->drain(old, drain, spread);
    log_->info("upgrade: new generation serving; the old one drains",
               {{"generation", upgrade_->generation},
                {"draining", old},
                {"drainTimeoutMs", static_cast<int64_t>(drain.count())},
                {"drainSpreadMs", static_cast<int64_t>(spread.count())}});
    // 4. Re-execute the installed binary in place, from the loop (not from inside a callback).
    // A signal read before then is handled first (a stop makes the re-exec a no-op); one that
    // comes later stays pending in the kernel across the exec, for the next image.
    event_active(reexec_, EV_TIMEOUT, 0);
}

void Service::upgradeFailed(const std::string& why) {
    if (!upgrade_) return;
    log_->error("upgrade failed; the running generation keeps serving", {{"error", why}});
    metrics_.upgraded(MetricsRegistry::Result::Failure);
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

// What the next image takes over (handover.h): the descriptors, the workers and everything
// the running configuration is, so that it never has to validate its way out of the switch.
HandoverState Service::handoverState() {
    HandoverState state;
    state.currentGeneration = pool_->current();
    state.startedUnixMs = std::chrono::duration_cast<std::chrono::milliseconds>(started_.time_since_epoch()).count();
    state.listeners = listeners_;
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
    // An older next image would keep a socket it does not know about open: it gets none.
    state.metricsFd = upgrade_->handoverFormat >= 3 ? metricsSocket_.get() : -1;
    state.metricsAddress = metricsAddress_;
    state.metricsState = metrics_.serialize();  // after the pool's hand-over, which retires the gone
    return state;
}

// The exec did not happen: this image takes its workers back and carries on.
void Service::recoverFromExec(const HandoverState& state, const std::string& why) {
    log_->error("upgrade: the supervisor could not re-execute; this image keeps running", {{"error", why}});
    for (int fd : handoverDescriptors(state)) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    pool_->adopt(state.workers, state.currentGeneration, upgrade_->executable.get(), workers_);
    if (state.controlFd >= 0) openControl(state.controlFd);
    executable_ = std::move(upgrade_->executable);
    // The new workers serve, but this supervisor is still the old image: not a success.
    ControlSocket::answerOn(state.upgradeReplyFd,
                            json_pack("{s:s}", "error",
                                      ("upgrade failed: the supervisor could not re-execute the installed binary (" +
                                       why + "); the new workers serve under the old supervisor")
                                          .c_str()));
    endUpgrade({});  // its connection was answered just above
    metrics_.upgraded(MetricsRegistry::Result::Failure);
    notifyReady("; upgrade failed");
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
    HandoverState state = handoverState();
    auto memfd = writeHandover(state, config_.privateFolder, format);
    wipeHandoverSecrets(state);
    if (!memfd) return recoverFromExec(state, memfd.error().describe());
    // Only what is handed over on purpose crosses the exec: descriptors a library opened without
    // O_CLOEXEC (libcurl's wake-up socket pair) would otherwise pile up, two per upgrade.
    closeOnExecFrom(3);
    for (int fd : handoverDescriptors(state)) ::fcntl(fd, F_SETFD, 0);
    ::fcntl(*memfd, F_SETFD, 0);

    std::vector<std::string> envStore;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) envStore.emplace_back(*e);
    envStore.push_back(std::string(kHandoverEnv) + "=" + std::to_string(*memfd));
    std::vector<char*> envp = execList(envStore);
    std::vector<std::string> argStore = options_.argv;
    std::vector<char*> argv = execList(argStore);

    log_->info("upgrade: re-executing the supervisor", {{"binary", upgrade_->binary}});
    sink_->waitForBackground();
    // Tests widen the moment before the exec: a signal sent now must reach the next image.
    if (testHooks().reexecPause.count() > 0) {
        ::usleep(static_cast<useconds_t>(testHooks().reexecPause.count() * 1000));
    }
    // The next image pings systemd's watchdog at once; this one does just before it goes, so the
    // gap is the exec and the take-over, not that plus up to half an interval.
    if (watchdog_ != nullptr) sd::notify("WATCHDOG=1");
    // Signals stay blocked (they always are) and pending across the exec; the next image reads
    // them from its own signalfd once its loop runs.
    execDescriptor(upgrade_->executable.get(), argv.data(), envp.data());
    int err = errno;
    ::close(*memfd);
    recoverFromExec(state, std::string("exec: ") + std::strerror(err));
}

}  // namespace relaypro
