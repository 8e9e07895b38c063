#include "supervisor/worker_pool_core.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "ipc/snapshot.h"
#include "supervisor/balance.h"

namespace relaypro {
namespace {

using State = WorkerPoolCore::State;

constexpr std::chrono::milliseconds kFirstBackoff{100};
constexpr std::chrono::milliseconds kMaxBackoff{30000};
constexpr std::chrono::seconds kStableAfter{30};

std::string exitText(int status) {
    if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
    if (WIFSIGNALED(status)) return std::string("signal ") + ::strsignal(WTERMSIG(status));
    return "status " + std::to_string(status);
}

}  // namespace

const char* WorkerPoolCore::stateName(State s) {
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

WorkerPoolCore::WorkerPoolCore(Io& io, const Logger& log, LogOutput* workerLog, Setup setup)
    : io_(io), log_(log), workerLog_(workerLog), setup_(std::move(setup)) {
    settingsBytes_ = ipc::encodeSettings(*setup_.settings);
}

const WorkerPoolCore::Worker* WorkerPoolCore::worker(pid_t pid) const {
    auto it = workers_.find(pid);
    return it == workers_.end() ? nullptr : it->second.get();
}

Result<pid_t> WorkerPoolCore::spawn(uint32_t generation, size_t slot, int executableFd) {
    auto pid = io_.spawn(executableFd);
    if (!pid) return pid.error();
    auto w = std::make_unique<Worker>();
    w->pid = *pid;
    w->generation = generation;
    w->slot = slot;
    w->started = io_.now();
    Worker& ref = *w;
    workers_[*pid] = std::move(w);
    if (setup_.metrics != nullptr) setup_.metrics->workerStarted(*pid);
    sendStartup(ref);
    log_.info("worker started", {{"workerPid", *pid}, {"generation", generation}, {"slot", slot}});
    return *pid;
}

void WorkerPoolCore::sendStartup(Worker& w) {
    bool ok = send(w, ipc::Hello{ipc::kProtocolVersion, static_cast<uint32_t>(w.slot)});
    sendSettings(w);  // with the handshake bound
    ok = ok && send(w, ipc::Secrets{setup_.secrets});
    ipc::Listeners l;
    std::vector<int> fds;
    for (const auto& h : setup_.listeners) {
        l.kinds.push_back(h.kind);
        fds.push_back(h.fd);
    }
    ok = ok && send(w, l, fds);
    ok = ok && send(w, ipc::Start{});
    if (!ok) replace(w, "cannot send its start-up messages");
}

void WorkerPoolCore::sendSettings(Worker& w) {
    for (const auto& chunk : ipc::chunkSnapshot(snapshotId_, settingsBytes_)) {
        if (!send(w, chunk)) {
            replace(w, "its channel is full");
            return;
        }
    }
    // A worker of an earlier build answers Unknown to these and goes on without them.
    if (!send(w, ipc::HandshakeBound{setup_.handshakeBound}) || !send(w, setup_.sourcePorts)) {
        replace(w, "its channel is full");
    }
}

void WorkerPoolCore::growSlots(size_t count) {
    if (backoff_.size() < count) backoff_.resize(count, kFirstBackoff);
}

void WorkerPoolCore::startGeneration(uint32_t generation, size_t count, int executableFd, std::function<void()> onReady,
                                     std::function<void(const std::string&)> onFailed,
                                     std::chrono::milliseconds readyWithin) {
    Pending& p = pending_[generation];
    p.within = readyWithin;
    p.waiting = count;
    p.onReady = std::move(onReady);
    p.onFailed = std::move(onFailed);
    io_.armStartTimeout(generation, readyWithin);
    if (generation > current_ || current_ == 0) {
        // Respawns of the generation that becomes current use its executable; should it fail,
        // the running generation's come back (a failed upgrade closes its executable).
        p.previousExecutableFd = executableFd_;
        p.previousWorkerCount = workerCount_;
        executableFd_ = executableFd;
        workerCount_ = count;
    }
    growSlots(count);
    for (size_t i = 0; i < count; ++i) {
        auto r = spawn(generation, i, executableFd);
        if (!r) {
            generationFailed(generation, r.error().describe());
            return;
        }
    }
}

void WorkerPoolCore::startTimedOut(uint32_t generation) {
    auto it = pending_.find(generation);
    if (it == pending_.end()) return;
    auto ms = it->second.within.count();
    std::string within = ms % 1000 == 0 ? std::to_string(ms / 1000) + "s" : std::to_string(ms) + "ms";
    generationFailed(generation, "workers were not ready within " + within);
}

void WorkerPoolCore::generationFailed(uint32_t generation, const std::string& why) {
    auto it = pending_.find(generation);
    if (it == pending_.end()) return;
    Pending p = std::move(it->second);
    pending_.erase(it);
    io_.cancelStartTimeout(generation);
    if (p.previousExecutableFd >= 0 && generation != current_) {
        executableFd_ = p.previousExecutableFd;
        workerCount_ = p.previousWorkerCount;
    }
    kill(generation);
    if (p.onFailed) p.onFailed(why);
}

void WorkerPoolCore::pushSettings(std::shared_ptr<const WorkerSettings> settings) {
    setup_.settings = std::move(settings);
    settingsBytes_ = ipc::encodeSettings(*setup_.settings);
    ++snapshotId_;
    std::vector<Worker*> targets;
    for (auto& [pid, w] : workers_) {
        if (w->state == State::Starting || w->state == State::Serving) targets.push_back(w.get());
    }
    for (Worker* w : targets) sendSettings(*w);
}

template <class Message>
void WorkerPoolCore::sendToLive(const Message& m) {
    std::vector<Worker*> targets;
    for (auto& [pid, w] : workers_) {
        if (w->state == State::Starting || w->state == State::Serving) targets.push_back(w.get());
    }
    for (Worker* w : targets) {
        if (!send(*w, m)) replace(*w, "its channel is full");
    }
}

void WorkerPoolCore::setHandshakeBound(uint32_t bound) {
    if (bound == setup_.handshakeBound) return;
    setup_.handshakeBound = bound;
    sendToLive(ipc::HandshakeBound{bound});
}

void WorkerPoolCore::setSourcePorts(uint16_t low, uint16_t high) {
    if (low == setup_.sourcePorts.low && high == setup_.sourcePorts.high) return;
    setup_.sourcePorts = ipc::SourcePorts{low, high};
    sendToLive(setup_.sourcePorts);
}

void WorkerPoolCore::pushSecrets(const WorkerSecrets& secrets) {
    setup_.secrets = secrets;
    std::vector<Worker*> targets;
    for (auto& [pid, w] : workers_) {
        if (w->state != State::Stopping) targets.push_back(w.get());
    }
    for (Worker* w : targets) {
        if (!send(*w, ipc::Secrets{setup_.secrets})) replace(*w, "cannot send new secrets");
    }
}

void WorkerPoolCore::drain(uint32_t generation, std::chrono::milliseconds grace, std::chrono::milliseconds spread) {
    const auto deadline = io_.now() + grace;
    for (auto& [pid, w] : workers_) {
        if (w->generation != generation || w->state == State::Stopping) continue;
        // One already draining is told again only to end sooner (a stop during an upgrade's drain,
        // its spread included).
        if (w->state == State::Draining && w->drainDeadline + w->drainSpread <= deadline + spread) continue;
        w->state = State::Draining;
        w->drainDeadline = deadline;
        w->drainSpread = spread;
        // Unheard (a full queue: the worker does not read), the deadline still ends it. A worker
        // of an earlier build answers DrainGradually with Unknown: onUnknown sends it Drain.
        if (spread.count() > 0) {
            (void)send(
                *w, ipc::DrainGradually{static_cast<uint64_t>(grace.count()), static_cast<uint64_t>(spread.count())});
        } else {
            (void)send(*w, ipc::Drain{static_cast<uint64_t>(grace.count())});
        }
    }
}

void WorkerPoolCore::stopAll(std::chrono::milliseconds grace, std::function<void()> onAllExited) {
    stopping_ = true;
    onAllExited_ = std::move(onAllExited);
    io_.cancelRespawns();
    std::set<uint32_t> generations;
    for (auto& [pid, w] : workers_) generations.insert(w->generation);
    for (uint32_t g : generations) drain(g, grace);
    if (workers_.empty() && onAllExited_) return onAllExited_();
    // A worker that does not end by its deadline (stopped, hung) is killed shortly after: the
    // stop takes the grace and no more, as the supervisor told systemd.
    io_.armStopDeadline(grace + kStopMargin);
}

void WorkerPoolCore::stopDeadlinePassed() {
    for (auto& [pid, w] : workers_) {
        log_.warn("worker did not end within shutdownGrace; killed",
                  {{"workerPid", pid}, {"generation", w->generation}});
        w->state = State::Stopping;
        io_.killWorker(pid);
    }
}

void WorkerPoolCore::kill(uint32_t generation) {
    for (auto& [pid, w] : workers_) {
        if (w->generation != generation) continue;
        w->state = State::Stopping;
        io_.killWorker(pid);
    }
}

void WorkerPoolCore::onChannelClosed(pid_t pid, const std::string& reason) {
    auto it = workers_.find(pid);
    if (it == workers_.end()) return;
    Worker& w = *it->second;
    // A draining worker closes its end as it exits: that is the expected end, reaped shortly.
    if (w.state == State::Stopping || w.state == State::Draining) return;
    // Otherwise it crashed or sent garbage: it must not linger (the exit is handled when reaped).
    replace(w, "its channel closed: " + reason);
}

void WorkerPoolCore::replace(Worker& w, const std::string& why) {
    if (w.state == State::Stopping) return;
    w.state = State::Stopping;
    log_.warn("replacing a worker", {{"workerPid", w.pid}, {"generation", w.generation}, {"reason", why}});
    io_.killWorker(w.pid);
}

void WorkerPoolCore::workerExited(pid_t pid, int status) {
    auto it = workers_.find(pid);
    if (it == workers_.end()) return;
    std::unique_ptr<Worker> w = std::move(it->second);
    workers_.erase(it);
    // Closed before any callback below: one that forks may be given this pid again.
    io_.closeChannel(pid);
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
    const bool respawn = !stopping_ && w->generation == current_ && !expected && w->slot < backoff_.size();
    if (setup_.metrics != nullptr) setup_.metrics->workerGone(pid, respawn);  // a restart: it is replaced
    if (respawn) {
        if (io_.now() - w->started > kStableAfter) backoff_[w->slot] = kFirstBackoff;
        scheduleRespawn(w->slot);
    }
    if (stopping_ && workers_.empty() && onAllExited_) {
        auto done = std::move(onAllExited_);
        done();
    }
}

void WorkerPoolCore::scheduleRespawn(size_t slot) {
    std::chrono::milliseconds& backoff = backoff_[slot];
    io_.armRespawn(slot, backoff);
    log_.info("respawning a worker", {{"slot", slot}, {"inMs", static_cast<int64_t>(backoff.count())}});
    backoff = std::min(kMaxBackoff, backoff * 2);
}

void WorkerPoolCore::respawnDue(size_t slot) {
    if (stopping_) return;
    auto r = spawn(current_, slot, executableFd_);
    if (!r) {
        log_.error("cannot respawn a worker", {{"error", r.error().describe()}});
        scheduleRespawn(slot);
    }
}

void WorkerPoolCore::pingRound() {
    ++pingSequence_;
    const auto now = io_.now();
    std::vector<Worker*> late;
    for (auto& [pid, w] : workers_) {
        if (w->state != State::Serving && w->state != State::Draining) continue;
        if (w->outstandingPings >= 2) {
            auto waitNow = io_.runnableNs(w->pid);
            PingVerdict v = judgeMissedPings(w->outstandingPings, w->pingWindow, waitNow, w->firstUnanswered, now);
            if (v == PingVerdict::Hung) {
                late.push_back(w.get());
                continue;
            }
            // Busy or starved of CPU, not hung: a fresh window (from the figure just read), and
            // the ping goes out again.
            log_.warn("a worker missed two pings while busy or waiting for a CPU; keeping it",
                      {{"workerPid", static_cast<int64_t>(w->pid)},
                       {"runnableMs", static_cast<int64_t>((*waitNow - *w->pingWindow.runnableNs) / 1000000)}});
            w->pingWindow = PingWindow{now, waitNow};
            w->outstandingPings = 0;
        } else if (w->outstandingPings == 0) {
            w->pingWindow = PingWindow{now, io_.runnableNs(w->pid)};
            if (w->firstUnanswered == Clock::time_point{}) w->firstUnanswered = now;
        }
        ++w->outstandingPings;
        (void)send(*w, ipc::Ping{pingSequence_});  // unsent is unanswered: the liveness rule counts it
    }
    for (Worker* w : late) replace(*w, "it missed two pings");
    balance(now);
}

void WorkerPoolCore::balance(Clock::time_point round) {
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
            if (w->holdingAccepts) (void)send(*w, ipc::Balance{0});  // advisory: the next round repeats it
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
            (void)send(w, ipc::Balance{kHoldMs});  // advisory: a hold also ends by itself after kHoldMs
        } else if (w.holdingAccepts) {
            (void)send(w, ipc::Balance{0});  // advisory: the next round repeats it
        }
        w.holdingAccepts = hold[i];
    }
}

size_t WorkerPoolCore::serving(uint32_t generation) const {
    size_t n = 0;
    for (const auto& [pid, w] : workers_) n += w->generation == generation && w->state == State::Serving ? 1U : 0U;
    return n;
}

PoolStats WorkerPoolCore::stats() const {
    PoolStats s;
    s.totalTunnels = exitedTunnels_;
    for (const auto& [pid, w] : workers_) {
        s.connections += w->stats.connections;
        s.tunnels += w->stats.tunnels;
        s.totalTunnels += w->stats.totalTunnels;
    }
    return s;
}

std::vector<WorkerView> WorkerPoolCore::view() const {
    std::vector<WorkerView> out;
    for (const auto& [pid, w] : workers_) {
        // cli.md knows three states: one being stopped is on its way out, like a draining one.
        std::string state = w->state == State::Stopping ? "draining" : stateName(w->state);
        out.push_back({pid, w->generation, state, w->stats.connections, w->stats.tunnels});
    }
    return out;
}

std::vector<pid_t> WorkerPoolCore::pids() const {
    std::vector<pid_t> out;
    for (const auto& [pid, w] : workers_) out.push_back(pid);
    return out;
}

std::vector<HandoverWorker> WorkerPoolCore::handover() {
    std::vector<HandoverWorker> out;
    for (auto& [pid, w] : workers_) {
        HandoverWorker h;
        h.pid = pid;
        h.generation = w->generation;
        h.slot = static_cast<uint32_t>(w->slot);
        h.state = w->state == State::Starting  ? HandoverWorker::kStarting
                  : w->state == State::Serving ? HandoverWorker::kServing
                                               : HandoverWorker::kDraining;
        h.channelFd = io_.releaseChannel(pid);
        h.totalTunnels = w->stats.totalTunnels;
        h.protocol = w->protocol;
        if (w->state == State::Stopping || h.channelFd < 0) {
            // Being replaced, or gone already (a drained worker that closed its channel as it
            // exited): the next image reaps it as an unknown child; its tunnels count as done.
            if (h.channelFd >= 0) ::close(h.channelFd);
            exitedTunnels_ += h.totalTunnels;
            if (setup_.metrics != nullptr) setup_.metrics->workerGone(pid, false);
            continue;
        }
        out.push_back(h);
    }
    workers_.clear();
    return out;
}

void WorkerPoolCore::adopt(const std::vector<HandoverWorker>& list, uint32_t current, int executableFd,
                           size_t workerCount) {
    current_ = current;
    executableFd_ = executableFd;
    workerCount_ = workerCount;
    growSlots(workerCount);
    std::vector<bool> covered(workerCount, false);
    for (const auto& h : list) {
        auto w = std::make_unique<Worker>();
        w->pid = h.pid;
        w->generation = h.generation;
        w->slot = h.slot;
        w->state = h.state == HandoverWorker::kStarting  ? State::Starting
                   : h.state == HandoverWorker::kServing ? State::Serving
                                                         : State::Draining;
        // A draining worker's deadline is its own; a stop may only bring it forward.
        if (w->state == State::Draining) w->drainDeadline = Clock::time_point::max();
        if (h.state != HandoverWorker::kStarting) w->accepted.set(static_cast<uint16_t>(ipc::MessageType::HelloAck));
        // The previous image may have sent it a SelfTest (test hooks) whose result comes to us.
        w->selfTestSent = setup_.testHooks && h.state != HandoverWorker::kStarting;
        w->started = io_.now();
        w->stats.totalTunnels = h.totalTunnels;
        w->protocol = h.protocol;  // 0 from an older image: not balanced, as before
        io_.adoptChannel(h.pid, h.channelFd);
        if (h.generation == current && h.slot < workerCount && w->state != State::Draining) covered[h.slot] = true;
        workers_[h.pid] = std::move(w);
    }
    for (size_t i = 0; i < workerCount; ++i) {
        if (!covered[i]) scheduleRespawn(i);
    }
    // What is not in the settings snapshot, from this image's configuration: an earlier image
    // may not have known it (a worker of an earlier build answers Unknown), and nothing else
    // sends it until a reload (review of limits.sourcePorts).
    sendToLive(ipc::HandshakeBound{setup_.handshakeBound});
    sendToLive(setup_.sourcePorts);
}

}  // namespace relaypro
