#include "supervisor/worker_pool.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/event_time.h"
#include "ipc/snapshot.h"
#include "supervisor/balance.h"
#include "supervisor/exec_fd.h"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace relaypro {
namespace {

constexpr std::chrono::milliseconds kMaxBackoff{30000};
constexpr std::chrono::seconds kStableAfter{30};
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
        } else if (kv.starts_with("UBSAN_OPTIONS=") || kv == "RELAYPRO_TEST_HOOKS=1" ||
                   kv.starts_with("RELAYPRO_TEST_HOLD_FILE=") || kv.starts_with("SSL_CERT_FILE=") ||
                   kv.starts_with("SSL_CERT_DIR=")) {
            // SSL_CERT_*: the trust store for an https:// proxy is the supervisor's (common/trust_store).
            env.emplace_back(kv);
        }
    }
    if (std::none_of(env.begin(), env.end(), [](const std::string& s) { return s.starts_with("ASAN_OPTIONS="); })) {
        env.emplace_back("ASAN_OPTIONS=detect_leaks=0");
    }
    return env;
}

std::string exitText(int status) {
    if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("signal ") + ::strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
}

}  // namespace

WorkerPool::WorkerPool(event_base* base, const Logger& log, LogOutput* workerLog, Setup setup)
    : base_(base), log_(log), workerLog_(workerLog), setup_(std::move(setup)) {
    devNull_.reset(::open("/dev/null", O_RDWR | O_CLOEXEC));
    settingsBytes_ = ipc::encodeSettings(*setup_.settings);
    pingTimer_ = event_new(base_, -1, EV_PERSIST, &WorkerPool::onPingTimer, this);
    timeval second{1, 0};
    event_add(pingTimer_, &second);
}

WorkerPool::~WorkerPool() {
    for (auto& [pid, w] : workers_) ::kill(pid, SIGKILL);
    workers_.clear();
    for (auto& s : slots_) {
        if (s->respawn != nullptr) event_free(s->respawn);
    }
    for (auto& [g, p] : pending_) {
        if (p.timeout != nullptr) event_free(p.timeout);
    }
    if (pingTimer_ != nullptr) event_free(pingTimer_);
    if (stopTimer_ != nullptr) event_free(stopTimer_);
}

Result<pid_t> WorkerPool::spawn(uint32_t generation, size_t slot, int executableFd) {
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

    auto w = std::make_unique<Worker>();
    w->pid = pid;
    w->generation = generation;
    w->slot = slot;
    w->started = std::chrono::steady_clock::now();
    w->channel = std::make_unique<ipc::Channel>(
        base_, std::move(ours), [this, pid](ipc::Received&& r) { onMessage(pid, std::move(r)); },
        [this, pid](const std::string& reason) { onChannelClosed(pid, reason); });
    Worker& ref = *w;
    workers_[pid] = std::move(w);
    sendStartup(ref);
    log_.info("worker started", {{"workerPid", pid}, {"generation", generation}, {"slot", slot}});
    return pid;
}

void WorkerPool::sendStartup(Worker& w) {
    ipc::Channel& c = *w.channel;
    bool ok = c.send(ipc::Hello{ipc::kProtocolVersion, static_cast<uint32_t>(w.slot)}, w.generation);
    sendSettings(w);
    ok = ok && c.send(ipc::Material{setup_.secrets}, w.generation);
    ipc::Listeners l;
    std::vector<int> fds;
    for (const auto& h : setup_.listeners) {
        l.kinds.push_back(h.kind);
        fds.push_back(h.fd);
    }
    ok = ok && c.send(l, w.generation, fds);
    ok = ok && c.send(ipc::Start{}, w.generation);
    if (!ok) replace(w, "cannot send its start-up messages");
}

void WorkerPool::sendSettings(Worker& w) {
    for (const auto& chunk : ipc::chunkSnapshot(snapshotId_, settingsBytes_)) {
        if (!w.channel->send(chunk, w.generation)) {
            replace(w, "its channel is full");
            return;
        }
    }
}

void WorkerPool::startGeneration(uint32_t generation, size_t count, int executableFd, std::function<void()> onReady,
                                 std::function<void(const std::string&)> onFailed,
                                 std::chrono::milliseconds readyWithin) {
    Pending& p = pending_[generation];  // a map node: its address is stable for the timer
    p.pool = this;
    p.generation = generation;
    p.within = readyWithin;
    p.waiting = count;
    p.onReady = std::move(onReady);
    p.onFailed = std::move(onFailed);
    p.timeout = evtimer_new(base_, &WorkerPool::onStartTimeout, &p);
    timeval tv = toTimeval(readyWithin);
    evtimer_add(p.timeout, &tv);
    if (generation > current_ || current_ == 0) {
        // Respawns of the generation that becomes current use its executable; should it fail,
        // the running generation's come back (a failed upgrade closes its executable).
        p.previousExecutableFd = executableFd_;
        p.previousWorkerCount = workerCount_;
        executableFd_ = executableFd;
        workerCount_ = count;
    }
    while (slots_.size() < count) {
        auto slot = std::make_unique<Slot>();
        slot->pool = this;
        slot->index = slots_.size();
        slots_.push_back(std::move(slot));
    }
    for (size_t i = 0; i < count; ++i) {
        auto r = spawn(generation, i, executableFd);
        if (!r) {
            generationFailed(generation, r.error().describe());
            return;
        }
    }
}

void WorkerPool::onStartTimeout(int, short, void* arg) {
    auto* p = static_cast<Pending*>(arg);
    auto ms = p->within.count();
    std::string within = ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
    p->pool->generationFailed(p->generation, "workers were not ready within " + within);  // frees p
}

const char* WorkerPool::stateName(State s) {
    switch (s) {
        case State::Starting:
            return "starting";
        case State::Serving:
            return "serving";
        case State::Draining:
            return "draining";
        case State::Stopping:
            return "stopping";
    }
    return "unknown";
}

void WorkerPool::generationFailed(uint32_t generation, const std::string& why) {
    auto it = pending_.find(generation);
    if (it == pending_.end()) return;
    Pending p = std::move(it->second);
    pending_.erase(it);
    if (p.timeout != nullptr) event_free(p.timeout);
    if (p.previousExecutableFd >= 0 && generation != current_) {
        executableFd_ = p.previousExecutableFd;
        workerCount_ = p.previousWorkerCount;
    }
    kill(generation);
    if (p.onFailed) p.onFailed(why);
}

void WorkerPool::pushSettings(std::shared_ptr<const WorkerSettings> settings) {
    setup_.settings = std::move(settings);
    settingsBytes_ = ipc::encodeSettings(*setup_.settings);
    ++snapshotId_;
    std::vector<Worker*> targets;
    for (auto& [pid, w] : workers_) {
        if (w->state == State::Starting || w->state == State::Serving) targets.push_back(w.get());
    }
    for (Worker* w : targets) sendSettings(*w);
}

void WorkerPool::pushSecrets(const WorkerSecrets& secrets) {
    setup_.secrets = secrets;
    std::vector<Worker*> targets;
    for (auto& [pid, w] : workers_) {
        if (w->state != State::Stopping) targets.push_back(w.get());
    }
    for (Worker* w : targets) {
        if (!w->channel->send(ipc::Material{setup_.secrets}, w->generation)) replace(*w, "cannot send new secrets");
    }
}

void WorkerPool::drain(uint32_t generation, std::chrono::milliseconds grace) {
    const auto deadline = std::chrono::steady_clock::now() + grace;
    for (auto& [pid, w] : workers_) {
        if (w->generation != generation || w->state == State::Stopping) continue;
        // One already draining is told again only to end sooner (a stop during an upgrade's drain).
        if (w->state == State::Draining && w->drainDeadline <= deadline) continue;
        w->state = State::Draining;
        w->drainDeadline = deadline;
        w->channel->send(ipc::Drain{static_cast<uint64_t>(grace.count())}, w->generation);
    }
}

void WorkerPool::stopAll(std::chrono::milliseconds grace, std::function<void()> onAllExited) {
    stopping_ = true;
    onAllExited_ = std::move(onAllExited);
    for (auto& s : slots_) {
        if (s->respawn != nullptr) evtimer_del(s->respawn);
    }
    std::set<uint32_t> generations;
    for (auto& [pid, w] : workers_) generations.insert(w->generation);
    for (uint32_t g : generations) drain(g, grace);
    if (workers_.empty() && onAllExited_) return onAllExited_();
    // A worker that does not end by its deadline (stopped, hung) is killed shortly after: the
    // stop takes the grace and no more, as the supervisor told systemd.
    stopTimer_ = evtimer_new(base_, &WorkerPool::onStopDeadline, this);
    timeval tv = toTimeval(grace + kStopMargin);
    evtimer_add(stopTimer_, &tv);
}

void WorkerPool::onStopDeadline(int, short, void* arg) {
    auto* self = static_cast<WorkerPool*>(arg);
    for (auto& [pid, w] : self->workers_) {
        self->log_.warn("worker did not end within shutdownGrace; killed",
                        {{"workerPid", pid}, {"generation", w->generation}});
        w->state = State::Stopping;
        ::kill(pid, SIGKILL);
    }
}

void WorkerPool::kill(uint32_t generation) {
    for (auto& [pid, w] : workers_) {
        if (w->generation != generation) continue;
        w->state = State::Stopping;
        ::kill(pid, SIGKILL);
    }
}

bool WorkerPool::permitted(const Worker& w, ipc::MessageType t) const {
    // The permission table: what a worker may send in each of its states.
    using T = ipc::MessageType;
    if (t == T::Log || t == T::Unknown) return true;
    switch (w.state) {
        case State::Starting:
            return (t == T::HelloAck && !w.helloAcked) || (t == T::Ready && w.helloAcked);
        case State::Serving:
            return t == T::Pong || t == T::VerifyRequest || t == T::AuthFailure || t == T::CountFailure ||
                   (t == T::SelfTestResult && w.selfTestSent);
        case State::Draining:
            // Requests in flight finish while a worker drains, token requests included.
            return t == T::Pong || t == T::VerifyRequest || t == T::AuthFailure || t == T::CountFailure;
        case State::Stopping:
            return t == T::Pong;
    }
    return false;
}

void WorkerPool::onMessage(pid_t pid, ipc::Received&& r) {
    auto it = workers_.find(pid);
    if (it == workers_.end()) return;
    Worker& w = *it->second;
    if (r.header.generation != w.generation) return replace(w, "it sent a message of another generation");
    if (!r.fds.empty()) return replace(w, "it sent file descriptors");
    // A type this build does not know: not a violation by itself (a newer worker), answered.
    bool known =
        static_cast<uint16_t>(r.header.type) >= 1 && static_cast<uint16_t>(r.header.type) <= ipc::kLastMessageType;
    if (!known) {
        w.channel->send(ipc::Unknown{static_cast<uint16_t>(r.header.type)}, w.generation);
        return;
    }
    if (!permitted(w, r.header.type)) {
        return replace(
            w, std::string("it sent ") + std::string(ipc::messageName(r.header.type)) + " while " + stateName(w.state));
    }
    switch (r.header.type) {
        case ipc::MessageType::HelloAck: {
            ipc::HelloAck m;
            if (!ipc::decodeBody(r.body, m) || m.pid != static_cast<uint32_t>(pid))
                return replace(w, "a malformed HelloAck");
            if (m.protocolVersion < ipc::kOldestProtocolVersion)
                return replace(w, "an unsupported IPC protocol version");
            w.helloAcked = true;
            w.protocol = m.protocolVersion;
            return;
        }
        case ipc::MessageType::Ready: {
            ipc::Ready m;
            if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed Ready");
            w.state = State::Serving;
            log_.info("worker ready", {{"workerPid", pid}, {"generation", w.generation}});
            if (setup_.testHooks && !w.selfTestSent) {
                w.selfTestSent = true;
                ipc::SelfTest t = setup_.selfTest;
                t.supervisorPid = static_cast<uint32_t>(::getpid());
                w.channel->send(t, w.generation);
            }
            auto p = pending_.find(w.generation);
            if (p != pending_.end() && --p->second.waiting == 0) {
                Pending done = std::move(p->second);
                pending_.erase(p);
                if (done.timeout != nullptr) event_free(done.timeout);
                if (done.onReady) done.onReady();
            }
            return;
        }
        case ipc::MessageType::Pong: {
            ipc::Pong m;
            if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed Pong");
            w.outstandingPings = 0;
            w.firstUnanswered = {};
            w.stats = m;
            return;
        }
        case ipc::MessageType::Log: {
            ipc::Log m;
            if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed Log record");
            // Who sent it is known here; the record does not get to say otherwise.
            m.record.pid = pid;
            m.record.component = "worker";
            if (workerLog_ != nullptr) workerLog_->write(m.record);
            return;
        }
        case ipc::MessageType::VerifyRequest: {
            ipc::VerifyRequest m;
            if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed VerifyRequest");
            return verifyRequested(w, std::move(m));
        }
        case ipc::MessageType::AuthFailure: {
            ipc::AuthFailure m;
            if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed AuthFailure");
            return failureReported(w, m.source);
        }
        case ipc::MessageType::CountFailure: {
            ipc::CountFailure m;
            if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed CountFailure");
            failureReported(w, m.source);
            // After any SourceBlocked of that failure: the worker answers its client only now.
            w.channel->send(ipc::FailureCounted{m.ticket}, w.generation);
            return;
        }
        case ipc::MessageType::SelfTestResult: {
            ipc::SelfTestResult m;
            if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed SelfTestResult");
            log_.info("sandbox self-test", {{"workerPid", pid}, {"report", m.report}});
            return;
        }
        case ipc::MessageType::Unknown:
            log_.warn("a worker did not understand a message", {{"workerPid", pid}});
            return;
        default:
            return replace(w, "an unexpected message");
    }
}

void WorkerPool::onChannelClosed(pid_t pid, const std::string& reason) {
    auto it = workers_.find(pid);
    if (it == workers_.end()) return;
    Worker& w = *it->second;
    // A draining worker closes its end as it exits: that is the expected end, reaped shortly.
    if (w.state == State::Stopping || w.state == State::Draining) return;
    // Otherwise it crashed or sent garbage: it must not linger (the exit is handled when reaped).
    replace(w, "its channel closed: " + reason);
}

void WorkerPool::replace(Worker& w, const std::string& why) {
    if (w.state == State::Stopping) return;
    w.state = State::Stopping;
    log_.warn("replacing a worker", {{"workerPid", w.pid}, {"generation", w.generation}, {"reason", why}});
    ::kill(w.pid, SIGKILL);
}

std::vector<std::pair<pid_t, int>> WorkerPool::reap() {
    std::vector<std::pair<pid_t, int>> others;
    while (true) {
        int status = 0;
        pid_t pid = ::waitpid(-1, &status, WNOHANG);
        if (pid <= 0) break;
        if (workers_.contains(pid)) {
            workerExited(pid, status);
        } else {
            others.emplace_back(pid, status);
        }
    }
    return others;
}

void WorkerPool::workerExited(pid_t pid, int status) {
    auto it = workers_.find(pid);
    std::unique_ptr<Worker> w = std::move(it->second);
    workers_.erase(it);
    const bool expected = w->state == State::Draining || (w->state == State::Stopping && stopping_);
    // A draining worker that did not end by itself (a signal from someone else) is worth a warning
    // too, though nothing replaces it (issue 16).
    const bool abnormalDrain = w->state == State::Draining && !(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    std::vector<LogField> f{{"workerPid", pid}, {"generation", w->generation}, {"status", exitText(status)}};
    if (abnormalDrain) {
        log_.warn("draining worker ended abnormally", std::move(f));
    } else if (expected) {
        log_.info("worker exited", std::move(f));
    } else {
        log_.warn("worker exited unexpectedly", std::move(f));
    }
    if (pending_.contains(w->generation) && w->state != State::Serving) {
        generationFailed(w->generation,
                         "a worker of the new generation exited before it was ready (" + exitText(status) + ")");
    }
    exitedTunnels_ += w->stats.totalTunnels;
    if (!stopping_ && w->generation == current_ && !expected && w->slot < slots_.size()) {
        Slot& s = *slots_[w->slot];
        if (std::chrono::steady_clock::now() - w->started > kStableAfter) s.backoff = std::chrono::milliseconds(100);
        scheduleRespawn(w->slot);
    }
    if (stopping_ && workers_.empty() && onAllExited_) {
        auto done = std::move(onAllExited_);
        done();
    }
}

void WorkerPool::scheduleRespawn(size_t slot) {
    Slot& s = *slots_[slot];
    if (s.respawn == nullptr) s.respawn = evtimer_new(base_, &WorkerPool::onRespawn, &s);
    const auto ms = s.backoff.count();
    timeval tv = toTimeval(s.backoff);
    evtimer_add(s.respawn, &tv);
    log_.info("respawning a worker", {{"slot", slot}, {"inMs", static_cast<int64_t>(ms)}});
    s.backoff = std::min(kMaxBackoff, s.backoff * 2);
}

void WorkerPool::onRespawn(int, short, void* arg) {
    auto* slot = static_cast<Slot*>(arg);
    WorkerPool* self = slot->pool;
    if (self->stopping_) return;
    auto r = self->spawn(self->current_, slot->index, self->executableFd_);
    if (!r) {
        self->log_.error("cannot respawn a worker", {{"error", r.error().describe()}});
        self->scheduleRespawn(slot->index);
    }
}

void WorkerPool::onPingTimer(int, short, void* arg) {
    auto* self = static_cast<WorkerPool*>(arg);
    ++self->pingSequence_;
    const auto now = std::chrono::steady_clock::now();
    std::vector<Worker*> late;
    for (auto& [pid, w] : self->workers_) {
        if (w->state != State::Serving && w->state != State::Draining) continue;
        if (w->outstandingPings >= 2) {
            auto waitNow = runQueueWaitNs(w->pid);
            PingVerdict v = judgeMissedPings(w->outstandingPings, w->pingWindow, waitNow, w->firstUnanswered, now);
            if (v == PingVerdict::Hung) {
                late.push_back(w.get());
                continue;
            }
            // Starved of CPU, not hung: a fresh window (from the figure just read), and the ping
            // goes out again.
            self->log_.warn("a worker missed two pings while waiting for a CPU; keeping it",
                            {{"workerPid", static_cast<int64_t>(w->pid)},
                             {"waitedMs", static_cast<int64_t>((*waitNow - *w->pingWindow.runQueueWaitNs) / 1000000)}});
            w->pingWindow = PingWindow{now, waitNow};
            w->outstandingPings = 0;
        } else if (w->outstandingPings == 0) {
            w->pingWindow = PingWindow{now, runQueueWaitNs(w->pid)};
            if (w->firstUnanswered == std::chrono::steady_clock::time_point{}) w->firstUnanswered = now;
        }
        ++w->outstandingPings;
        w->channel->send(ipc::Ping{self->pingSequence_}, w->generation);
    }
    for (Worker* w : late) self->replace(*w, "it missed two pings");
    self->balance(now);
}

void WorkerPool::balance(std::chrono::steady_clock::time_point round) {
    // A hold lasts until the next round (a second) and a little longer, so that it does not lapse
    // between two rounds; a worker that stops hearing from the supervisor accepts again by itself.
    constexpr uint32_t kHoldMs = 2500;
    std::vector<Worker*> serving;
    std::vector<uint64_t> counts;
    for (auto& [pid, w] : workers_) {
        if (w->generation != current_ || w->state != State::Serving || w->protocol < 2) continue;
        // Only workers that answered the last ping (this round started their window): a late or
        // starved worker's count is old, and it may not be able to take connections now — were it
        // the emptiest, the others would hold while nobody accepted. Without it, the emptiest
        // worker that does answer always accepts.
        if (w->firstUnanswered != round) {
            if (w->holdingAccepts) w->channel->send(ipc::Balance{0}, w->generation);
            w->holdingAccepts = false;
            continue;
        }
        serving.push_back(w.get());
        counts.push_back(w->stats.connections);
    }
    std::vector<bool> hold = acceptHolds(counts);
    const uint64_t average = averageOf(counts);  // for the log line
    for (size_t i = 0; i < serving.size(); ++i) {
        Worker& w = *serving[i];
        if (hold[i]) {
            if (!w.holdingAccepts) {
                log_.info(
                    "a worker holds its accepts",
                    {{"workerPid", static_cast<int64_t>(w.pid)}, {"connections", counts[i]}, {"average", average}});
            }
            w.channel->send(ipc::Balance{kHoldMs}, w.generation);
        } else if (w.holdingAccepts) {
            w.channel->send(ipc::Balance{0}, w.generation);
        }
        w.holdingAccepts = hold[i];
    }
}

// The answer goes back to the worker if it is still there.
void WorkerPool::verifyRequested(Worker& w, ipc::VerifyRequest&& m) {
    using Admission = AuthenticationCounter::Admission;
    const pid_t pid = w.pid;
    const uint32_t generation = w.generation;
    const uint64_t ticket = m.ticket;
    const uint64_t cap = AuthenticationCounter::verifyCap(setup_.settings->maxConnections);
    const auto admitted = authentication_.admitVerification(w.auth, pid, ticket, m.source, cap,
                                                            setup_.settings->limits.tokenRequestsPerMinute,
                                                            std::chrono::steady_clock::now());
    if (admitted.admission == Admission::Repeat) return;
    if (admitted.admission == Admission::OverCap) {
        if (admitted.logCap) {
            log_.warn(
                "a worker asks for more token verifications at once than it has connections; the rest are refused",
                {{"workerPid", pid}, {"cap", static_cast<int64_t>(cap)}});
        }
        w.channel->send(ipc::VerifyAnswer{ticket, ipc::VerifyAnswer::Result::ConsoleUnavailable, 5}, generation);
        return;
    }
    auto answer = [this, pid, generation, ticket](ipc::VerifyAnswer::Result result, uint32_t retryAfter) {
        auto it = workers_.find(pid);
        const bool there = it != workers_.end() && it->second->generation == generation;
        authentication_.verificationEnded(pid, ticket, there ? &it->second->auth : nullptr);
        if (there) it->second->channel->send(ipc::VerifyAnswer{ticket, result, retryAfter}, generation);
    };
    if (admitted.admission == Admission::RateLimited) {
        return answer(ipc::VerifyAnswer::Result::RateLimited, admitted.retryAfterSeconds);
    }
    if (!setup_.verify) return answer(ipc::VerifyAnswer::Result::NotRegistered, 60);
    setup_.verify(m, std::move(answer));
}

void WorkerPool::failureReported(Worker& w, const std::string& source) {
    const auto counted = authentication_.failureReported(w.auth, source, setup_.settings->limits.tokenRequestsPerMinute,
                                                         std::chrono::steady_clock::now());
    if (counted.capPassed) {
        log_.warn(
            "a worker reports more authentication failures than it may; the rest of this second's are not counted",
            {{"workerPid", w.pid}, {"cap", AuthenticationCounter::kMaxFailuresPerSecond}});
    }
    if (!counted.blockedSeconds) return;
    const uint32_t wait = *counted.blockedSeconds;
    for (auto& [pid, other] : workers_) {
        if (other->state == State::Serving) {
            other->channel->send(ipc::SourceBlocked{source, wait * 1000}, other->generation);
        }
    }
}

size_t WorkerPool::serving(uint32_t generation) const {
    size_t n = 0;
    for (const auto& [pid, w] : workers_) n += w->generation == generation && w->state == State::Serving ? 1U : 0U;
    return n;
}

PoolStats WorkerPool::stats() const {
    PoolStats s;
    s.totalTunnels = exitedTunnels_;
    for (const auto& [pid, w] : workers_) {
        s.connections += w->stats.connections;
        s.tunnels += w->stats.tunnels;
        s.totalTunnels += w->stats.totalTunnels;
    }
    return s;
}

std::vector<WorkerView> WorkerPool::view() const {
    std::vector<WorkerView> out;
    for (const auto& [pid, w] : workers_) {
        // cli.md knows three states: one being stopped is on its way out, like a draining one.
        std::string state = w->state == State::Stopping ? "draining" : stateName(w->state);
        out.push_back({pid, w->generation, state, w->stats.connections, w->stats.tunnels});
    }
    return out;
}

std::vector<HandoverWorker> WorkerPool::handover() {
    std::vector<HandoverWorker> out;
    for (auto& [pid, w] : workers_) {
        w->channel->flush(1000);
        HandoverWorker h;
        h.pid = pid;
        h.generation = w->generation;
        h.slot = static_cast<uint32_t>(w->slot);
        h.state = w->state == State::Starting  ? HandoverWorker::kStarting
                  : w->state == State::Serving ? HandoverWorker::kServing
                                               : HandoverWorker::kDraining;
        h.channelFd = w->channel->release().release();
        h.totalTunnels = w->stats.totalTunnels;
        if (w->state == State::Stopping || h.channelFd < 0) {
            // Being replaced, or gone already (a drained worker that closed its channel as it
            // exited): the next image reaps it as an unknown child; its tunnels count as done.
            if (h.channelFd >= 0) ::close(h.channelFd);
            exitedTunnels_ += h.totalTunnels;
            continue;
        }
        out.push_back(h);
    }
    workers_.clear();
    return out;
}

void WorkerPool::adopt(const std::vector<HandoverWorker>& list, uint32_t current, int executableFd,
                       size_t workerCount) {
    current_ = current;
    executableFd_ = executableFd;
    workerCount_ = workerCount;
    while (slots_.size() < workerCount) {
        auto slot = std::make_unique<Slot>();
        slot->pool = this;
        slot->index = slots_.size();
        slots_.push_back(std::move(slot));
    }
    std::vector<bool> covered(workerCount, false);
    for (const auto& h : list) {
        auto w = std::make_unique<Worker>();
        pid_t pid = h.pid;
        w->pid = pid;
        w->generation = h.generation;
        w->slot = h.slot;
        w->state = h.state == HandoverWorker::kStarting  ? State::Starting
                   : h.state == HandoverWorker::kServing ? State::Serving
                                                         : State::Draining;
        // A draining worker's deadline is its own; a stop may only bring it forward.
        if (w->state == State::Draining) w->drainDeadline = std::chrono::steady_clock::time_point::max();
        w->helloAcked = h.state != HandoverWorker::kStarting;
        // The previous image may have sent it a SelfTest (test hooks) whose result comes to us.
        w->selfTestSent = setup_.testHooks && h.state != HandoverWorker::kStarting;
        w->started = std::chrono::steady_clock::now();
        w->stats.totalTunnels = h.totalTunnels;
        ::fcntl(h.channelFd, F_SETFD, FD_CLOEXEC);
        w->channel = std::make_unique<ipc::Channel>(
            base_, UniqueFd(h.channelFd), [this, pid](ipc::Received&& r) { onMessage(pid, std::move(r)); },
            [this, pid](const std::string& reason) { onChannelClosed(pid, reason); });
        if (h.generation == current && h.slot < workerCount && w->state != State::Draining) covered[h.slot] = true;
        workers_[pid] = std::move(w);
    }
    for (size_t i = 0; i < workerCount; ++i) {
        if (!covered[i]) scheduleRespawn(i);
    }
}

std::vector<pid_t> WorkerPool::pids() const {
    std::vector<pid_t> out;
    for (const auto& [pid, w] : workers_) out.push_back(pid);
    return out;
}

}  // namespace relaypro
