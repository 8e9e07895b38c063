#include "supervisor/worker_pool.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "common/event_time.h"
#include "common/test_hooks.h"
#include "supervisor/exec_fd.h"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace relaypro {
namespace {

#ifdef RELAYPRO_SANITIZE_BUILD
constexpr bool kKeepStderr = true;
#else
constexpr bool kKeepStderr = false;
#endif

// The environment a worker gets: nothing of the supervisor's (it may hold AIR_DEPLOYMENT_TOKEN),
// only what sanitizer builds and test hooks need.
std::vector<std::string> workerEnvironment() {
    std::vector<std::string> env;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        std::string_view kv = *e;
        if (kv.starts_with("ASAN_OPTIONS=")) {
            // LeakSanitizer cannot run inside the seccomp sandbox (it needs ptrace): leaks are
            // checked in the supervisor and the unit tests.
            env.emplace_back(std::string(kv) + ":detect_leaks=0");
        } else if (kv.starts_with("UBSAN_OPTIONS=") || kv.starts_with("SSL_CERT_FILE=") ||
                   kv.starts_with("SSL_CERT_DIR=") || testHooks().passesToWorkers(kv)) {
            // SSL_CERT_*: the trust store for an https:// proxy is the supervisor's (common/trust_store).
            env.emplace_back(kv);
        }
    }
    if (std::none_of(env.begin(), env.end(), [](const std::string& s) { return s.starts_with("ASAN_OPTIONS="); })) {
        env.emplace_back("ASAN_OPTIONS=detect_leaks=0");
    }
    return env;
}

}  // namespace

WorkerPool::WorkerPool(event_base* base, const Logger& log, LogOutput* workerLog, Setup setup)
    : base_(base), core_(*this, log, workerLog, std::move(setup)) {
    devNull_.reset(::open("/dev/null", O_RDWR | O_CLOEXEC));
    pingTimer_ = event_new(base_, -1, EV_PERSIST, &WorkerPool::onPingTimer, this);
    timeval second{1, 0};
    event_add(pingTimer_, &second);
}

WorkerPool::~WorkerPool() {
    for (pid_t pid : core_.pids()) ::kill(pid, SIGKILL);
    channels_.clear();
    for (auto& r : respawns_) {
        if (r->ev != nullptr) event_free(r->ev);
    }
    for (auto& [g, t] : startTimers_) {
        if (t.ev != nullptr) event_free(t.ev);
    }
    if (pingTimer_ != nullptr) event_free(pingTimer_);
    for (event* e : stopTimers_) event_free(e);
}

Result<pid_t> WorkerPool::spawn(int executableFd) {
    auto pair = ipc::Channel::socketPair();
    if (!pair) return pair.error();
    UniqueFd ours = std::move(pair->first);
    UniqueFd theirs = std::move(pair->second);

    // Everything the child needs is prepared before fork: between fork and exec it may only
    // make async-signal-safe calls (the supervisor has other threads).
    std::vector<std::string> envStore = workerEnvironment();
    std::vector<char*> envp;
    for (auto& e : envStore) envp.push_back(e.data());
    envp.push_back(nullptr);
    char arg0[] = "relaypro";
    char arg1[] = "worker";
    char* argv[] = {arg0, arg1, nullptr};
    const pid_t parent = ::getpid();
    const int childFd = theirs.get();
    const int devNull = devNull_.get();

    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);  // no handler may run in the child before exec
    pid_t pid = ::fork();
    if (pid == 0) {
        ::prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
        if (::getppid() != parent) ::_exit(127);
        int exe = executableFd;
        if (exe == 3) exe = ::fcntl(exe, F_DUPFD_CLOEXEC, 4);  // fd 3 is about to become the channel
        // A worker holds no descriptor to a file: its standard streams go to /dev/null (its
        // messages travel as log records). Sanitizer builds keep stderr for their reports.
        ::dup2(devNull, 0);
        ::dup2(devNull, 1);
        if (!kKeepStderr) ::dup2(devNull, 2);
        if (childFd == 3) {
            ::fcntl(3, F_SETFD, 0);
        } else if (::dup2(childFd, 3) != 3) {
            ::_exit(127);
        }
        // Every other descriptor closes at exec (listening sockets travel by SCM_RIGHTS).
        closeOnExecFrom(4);
        sigset_t none;
        sigemptyset(&none);
        ::sigprocmask(SIG_SETMASK, &none, nullptr);
        execDescriptor(exe, argv, envp.data());
        ::_exit(127);
    }
    int forkErrno = errno;
    pthread_sigmask(SIG_SETMASK, &old, nullptr);
    if (pid < 0) return sysError("fork", forkErrno);
    theirs.reset();
    openChannel(pid, std::move(ours));
    return pid;
}

void WorkerPool::openChannel(pid_t pid, UniqueFd fd) {
    channels_[pid] = std::make_unique<ipc::Channel>(
        base_, std::move(fd), [this, pid](ipc::Received&& r) { core_.onMessage(pid, std::move(r)); },
        [this, pid](const std::string& reason) { core_.onChannelClosed(pid, reason); });
}

bool WorkerPool::send(pid_t pid, const std::string& frame, const std::vector<int>& fds) {
    auto it = channels_.find(pid);
    return it != channels_.end() && it->second->send(frame, fds);
}

void WorkerPool::killWorker(pid_t pid) {
    if (pid == reaped_) return;
    ::kill(pid, SIGKILL);
}

void WorkerPool::closeChannel(pid_t pid) {
    channels_.erase(pid);
}

int WorkerPool::releaseChannel(pid_t pid) {
    auto it = channels_.find(pid);
    if (it == channels_.end()) return -1;
    it->second->flush(1000);
    int fd = it->second->release().release();
    channels_.erase(it);
    return fd;
}

void WorkerPool::adoptChannel(pid_t pid, int fd) {
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    openChannel(pid, UniqueFd(fd));
}

void WorkerPool::armStartTimeout(uint32_t generation, std::chrono::milliseconds in) {
    StartTimer& t = startTimers_[generation];  // a map node: its address is stable for the timer
    t.pool = this;
    t.generation = generation;
    if (t.ev == nullptr) t.ev = evtimer_new(base_, &WorkerPool::onStartTimeout, &t);
    timeval tv = toTimeval(in);
    evtimer_add(t.ev, &tv);
}

void WorkerPool::cancelStartTimeout(uint32_t generation) {
    auto it = startTimers_.find(generation);
    if (it == startTimers_.end()) return;
    if (it->second.ev != nullptr) event_free(it->second.ev);
    startTimers_.erase(it);
}

void WorkerPool::onStartTimeout(int, short, void* arg) {
    auto* t = static_cast<StartTimer*>(arg);
    t->pool->core_.startTimedOut(t->generation);  // frees t
}

void WorkerPool::armRespawn(size_t slot, std::chrono::milliseconds in) {
    while (respawns_.size() <= slot) {
        auto r = std::make_unique<RespawnTimer>();
        r->pool = this;
        r->slot = respawns_.size();
        respawns_.push_back(std::move(r));
    }
    RespawnTimer& r = *respawns_[slot];
    if (r.ev == nullptr) r.ev = evtimer_new(base_, &WorkerPool::onRespawn, &r);
    timeval tv = toTimeval(in);
    evtimer_add(r.ev, &tv);
}

void WorkerPool::cancelRespawns() {
    for (auto& r : respawns_) {
        if (r->ev != nullptr) evtimer_del(r->ev);
    }
}

void WorkerPool::onRespawn(int, short, void* arg) {
    auto* r = static_cast<RespawnTimer*>(arg);
    r->pool->core_.respawnDue(r->slot);
}

void WorkerPool::armStopDeadline(std::chrono::milliseconds in) {
    event* e = evtimer_new(base_, &WorkerPool::onStopDeadline, this);
    stopTimers_.push_back(e);
    timeval tv = toTimeval(in);
    evtimer_add(e, &tv);
}

void WorkerPool::onStopDeadline(int, short, void* arg) {
    static_cast<WorkerPool*>(arg)->core_.stopDeadlinePassed();
}

void WorkerPool::onPingTimer(int, short, void* arg) {
    static_cast<WorkerPool*>(arg)->core_.pingRound();
}

WorkerPoolCore::Clock::time_point WorkerPool::now() const {
    return WorkerPoolCore::Clock::now();
}

std::optional<uint64_t> WorkerPool::runnableNs(pid_t pid) const {
    return relaypro::runnableNs(pid);
}

std::vector<std::pair<pid_t, int>> WorkerPool::reap() {
    std::vector<std::pair<pid_t, int>> others;
    while (true) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) break;
        if (core_.knows(pid)) {
            // What it sent as it ended (its last counters), read while it is still known; nothing
            // it sent may make the pool signal the pid, which is free for reuse now.
            if (auto it = channels_.find(pid); it != channels_.end()) {
                reaped_ = pid;
                it->second->readPending();
                reaped_ = -1;
            }
            core_.workerExited(pid, status);
        } else {
            others.emplace_back(pid, status);
        }
    }
    return others;
}

void WorkerPool::startGeneration(uint32_t generation, size_t count, int executableFd, std::function<void()> onReady,
                                 std::function<void(const std::string&)> onFailed,
                                 std::chrono::milliseconds readyWithin) {
    core_.startGeneration(generation, count, executableFd, std::move(onReady), std::move(onFailed), readyWithin);
}

void WorkerPool::pushSettings(std::shared_ptr<const WorkerSettings> settings) {
    core_.pushSettings(std::move(settings));
}

void WorkerPool::pushSecrets(const WorkerSecrets& secrets) {
    core_.pushSecrets(secrets);
}

void WorkerPool::drain(uint32_t generation, std::chrono::milliseconds grace, std::chrono::milliseconds spread) {
    core_.drain(generation, grace, spread);
}

void WorkerPool::stopAll(std::chrono::milliseconds grace, std::function<void()> onAllExited) {
    core_.stopAll(grace, std::move(onAllExited));
}

void WorkerPool::kill(uint32_t generation) {
    core_.kill(generation);
}

size_t WorkerPool::serving(uint32_t generation) const {
    return core_.serving(generation);
}

PoolStats WorkerPool::stats() const {
    return core_.stats();
}

std::vector<WorkerView> WorkerPool::view() const {
    return core_.view();
}

std::vector<pid_t> WorkerPool::pids() const {
    return core_.pids();
}

std::vector<HandoverWorker> WorkerPool::handover() {
    return core_.handover();
}

void WorkerPool::adopt(const std::vector<HandoverWorker>& workers, uint32_t current, int executableFd,
                       size_t workerCount) {
    core_.adopt(workers, current, executableFd, workerCount);
}

}  // namespace relaypro
