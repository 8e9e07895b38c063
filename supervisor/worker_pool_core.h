// The logic of the supervisor's workers, without processes, sockets or timers (the shape of
// Envoy's HotRestartingParent::Internal): the permission table of what a worker may send in each
// of its states and what each message changes, generations with their start timeouts, drains,
// stops, respawns with backoff, pings and balancing, the hand-over. WorkerPool (worker_pool.h)
// is the evented shell around it and does what Io asks; unit tests fake Io instead.
#pragma once

#include <sys/types.h>

#include <bitset>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/listener.h"
#include "common/log_record.h"
#include "common/result.h"
#include "common/worker_settings.h"
#include "ipc/channel.h"
#include "ipc/messages.h"
#include "ipc/tunnel_list.h"
#include "supervisor/authentication_counter.h"
#include "supervisor/handover.h"
#include "supervisor/liveness.h"
#include "supervisor/metrics_registry.h"

namespace relaypro {

struct WorkerView {
    pid_t pid;
    uint32_t generation;
    std::string state;  // starting | serving | draining
    uint64_t connections;
    uint64_t tunnels;
};

struct PoolStats {
    uint64_t connections = 0;
    uint64_t tunnels = 0;
    uint64_t totalTunnels = 0;
};

class WorkerPoolCore {
public:
    using Clock = std::chrono::steady_clock;
    // The answer to a worker's VerifyRequest: the result and, for refusals, Retry-After.
    using VerifyDone = std::function<void(ipc::VerifyAnswer::Result, uint32_t retryAfterSeconds)>;
    // Asks the console about a Responder (the supervisor's console client); calls `done` once.
    using Verifier = std::function<void(const ipc::VerifyRequest&, VerifyDone done)>;

    struct Setup {
        std::vector<ListenerSocket> listeners;  // borrowed: the supervisor keeps its own copies
        WorkerSecrets secrets;                  // wipes itself
        Verifier verify;                        // without one, every Responder is "not registered"
        std::shared_ptr<const WorkerSettings> settings;
        bool testHooks = false;
        ipc::SelfTest selfTest;              // sent after each Ready when testHooks
        MetricsRegistry* metrics = nullptr;  // the workers' counters go there (not owned)
        uint32_t handshakeBound = 0;         // limits.maxHandshakes resolved (handshakeBound())
        ipc::SourcePorts sourcePorts;        // limits.sourcePorts ({0, 0}: connect() chooses)
    };

    // What the core asks of the world outside: processes, channels, timers, the clock.
    class Io {
    public:
        virtual ~Io() = default;
        // Forks and execs a worker from `executableFd`, its channel open and read.
        virtual Result<pid_t> spawn(int executableFd) = 0;
        // One frame to a worker; false when its channel is closed or full.
        virtual bool send(pid_t pid, const std::string& frame, const std::vector<int>& fds) = 0;
        virtual void killWorker(pid_t pid) = 0;    // SIGKILL
        virtual void closeChannel(pid_t pid) = 0;  // the worker is gone
        // Flushes a worker's channel (up to a second) and gives its socket away; -1 when closed.
        virtual int releaseChannel(pid_t pid) = 0;
        // Reads and writes a channel handed over by the previous supervisor image.
        virtual void adoptChannel(pid_t pid, int fd) = 0;
        // Each timer calls the core back: startTimedOut, respawnDue, stopDeadlinePassed.
        virtual void armStartTimeout(uint32_t generation, std::chrono::milliseconds in) = 0;
        virtual void cancelStartTimeout(uint32_t generation) = 0;
        virtual void armRespawn(size_t slot, std::chrono::milliseconds in) = 0;
        virtual void cancelRespawns() = 0;
        virtual void armStopDeadline(std::chrono::milliseconds in) = 0;
        [[nodiscard]] virtual Clock::time_point now() const = 0;
        [[nodiscard]] virtual std::optional<uint64_t> runnableNs(pid_t pid) const = 0;
    };

    enum class State { Starting, Serving, Draining, Stopping };
    // The one name of each state (log lines, replacement reasons, `status`).
    static const char* stateName(State s);

    struct Worker {
        pid_t pid = -1;
        uint32_t generation = 0;
        size_t slot = 0;
        State state = State::Starting;
        // The types the permission table let through so far: once-only rules, Ready after HelloAck.
        std::bitset<ipc::kLastMessageType + 1> accepted;
        uint16_t protocol = 0;        // from HelloAck (or the hand-over); 0 when not known
        bool holdingAccepts = false;  // told to by the last Balance
        bool selfTestSent = false;
        int outstandingPings = 0;
        PingWindow pingWindow;              // since the oldest unanswered ping
        Clock::time_point firstUnanswered;  // not renewed while starved
        ipc::Pong stats;
        Clock::time_point started;
        // What a worker may ask of the supervisor for the others (issue 15): a worker chooses the
        // source it reports, so the counter's caps bound what a compromised one can do.
        AuthenticationCounter::WorkerShare auth;
        Clock::time_point drainDeadline{};  // when Draining: the tunnels left start closing
        Clock::duration drainSpread{};      // ... evenly over this (an upgrade's drain)
    };

    static constexpr std::chrono::milliseconds kStopMargin{2000};

    WorkerPoolCore(Io& io, const Logger& log, LogOutput* workerLog, Setup setup);
    WorkerPoolCore(const WorkerPoolCore&) = delete;
    WorkerPoolCore& operator=(const WorkerPoolCore&) = delete;

    // WorkerPool's interface, which states the contracts.
    void startGeneration(uint32_t generation, size_t count, int executableFd, std::function<void()> onReady,
                         std::function<void(const std::string&)> onFailed, std::chrono::milliseconds readyWithin);
    void setCurrent(uint32_t generation) { current_ = generation; }
    [[nodiscard]] uint32_t current() const { return current_; }
    void pushSettings(std::shared_ptr<const WorkerSettings> settings);
    // limits.maxHandshakes, resolved by the service (it is not in the settings snapshot, which
    // keeps the format earlier builds read): to every starting and serving worker when it moves.
    void setHandshakeBound(uint32_t bound);
    // limits.sourcePorts, the same way.
    void setSourcePorts(uint16_t low, uint16_t high);
    void pushSecrets(const WorkerSecrets& secrets);
    // Stop accepting, keep tunnels for `grace`, then close what is left evenly over `spread`.
    void drain(uint32_t generation, std::chrono::milliseconds grace,
               std::chrono::milliseconds spread = std::chrono::milliseconds::zero());
    void stopAll(std::chrono::milliseconds grace, std::function<void()> onAllExited);
    void kill(uint32_t generation);
    [[nodiscard]] size_t serving(uint32_t generation) const;
    [[nodiscard]] size_t alive() const { return workers_.size(); }
    [[nodiscard]] PoolStats stats() const;
    [[nodiscard]] std::vector<WorkerView> view() const;
    [[nodiscard]] std::vector<pid_t> pids() const;
    std::vector<HandoverWorker> handover();
    void adopt(const std::vector<HandoverWorker>& workers, uint32_t current, int executableFd, size_t workerCount);
    [[nodiscard]] uint64_t exitedTunnels() const { return exitedTunnels_; }
    void setExitedTunnels(uint64_t n) { exitedTunnels_ = n; }
    [[nodiscard]] const std::string& settingsBytes() const { return settingsBytes_; }

    // What the shell reports.
    void onMessage(pid_t pid, ipc::Received&& r);
    void onChannelClosed(pid_t pid, const std::string& reason);
    [[nodiscard]] bool knows(pid_t pid) const { return workers_.contains(pid); }
    void workerExited(pid_t pid, int status);  // reaped
    void startTimedOut(uint32_t generation);
    void respawnDue(size_t slot);
    void stopDeadlinePassed();
    void pingRound();  // every second

    // `status --tunnels` (supervisor/tunnel_listing.h): asks a serving or draining worker for a
    // chunk; false when there is no such worker or the request cannot be sent.
    bool askTunnels(pid_t pid, const ipc::TunnelListRequest& request);
    // Each chunk a worker sends, well-formed (a malformed one replaces the worker), with null for
    // a worker that answered Unknown to TunnelListRequest (an older build: it has no list).
    using TunnelListHandler = std::function<void(pid_t pid, const ipc::TunnelList* list)>;
    void onTunnelLists(TunnelListHandler handler) { tunnelLists_ = std::move(handler); }

    // For tests: a worker's record, or null.
    [[nodiscard]] const Worker* worker(pid_t pid) const;

private:
    struct Pending {
        std::chrono::milliseconds within{0};
        int previousExecutableFd = -1;  // what respawns used before this generation
        size_t previousWorkerCount = 0;
        size_t waiting = 0;
        std::function<void()> onReady;
        std::function<void(const std::string&)> onFailed;
    };
    struct MessageRule;
    static const MessageRule* ruleFor(ipc::MessageType type);
    [[nodiscard]] static bool permits(const MessageRule& rule, const Worker& w);

    template <typename M>
    [[nodiscard]] bool send(const Worker& w, const M& message, const std::vector<int>& fds = {}) {
        return io_.send(w.pid, ipc::frame(message, w.generation), fds);
    }
    Result<pid_t> spawn(uint32_t generation, size_t slot, int executableFd);
    void sendStartup(Worker& w);
    void sendSettings(Worker& w);
    // To every starting and serving worker (one whose channel is full is replaced).
    template <class Message>
    void sendToLive(const Message& m);
    void replace(Worker& w, const std::string& why);
    void generationFailed(uint32_t generation, const std::string& why);
    void growSlots(size_t count);
    void scheduleRespawn(size_t slot);
    // Tells the current generation's serving workers well above their average connection count
    // to hold accepts until the next round, and the others to accept (supervisor/balance.h).
    // `round`: when this round of pings went out.
    void balance(Clock::time_point round);

    // The handlers of the permission table: the message is permitted, its body not yet decoded.
    void onHelloAck(Worker& w, const ipc::Received& r);
    void onReady(Worker& w, const ipc::Received& r);
    void onPong(Worker& w, const ipc::Received& r);
    void onLog(Worker& w, const ipc::Received& r);
    void onCounters(Worker& w, const ipc::Received& r);
    void onVerifyRequest(Worker& w, const ipc::Received& r);
    void onAuthFailure(Worker& w, const ipc::Received& r);
    void onCountFailure(Worker& w, const ipc::Received& r);
    void onSelfTestResult(Worker& w, const ipc::Received& r);
    void onUnknown(Worker& w, const ipc::Received& r);
    void onTunnelList(Worker& w, const ipc::Received& r);
    void verifyRequested(Worker& w, ipc::VerifyRequest&& m);
    // Counts one authentication failure a worker reports, within that worker's cap.
    void failureReported(Worker& w, const std::string& source);

    Io& io_;
    const Logger& log_;
    LogOutput* workerLog_;
    Setup setup_;
    std::string settingsBytes_;
    uint32_t snapshotId_ = 1;
    uint32_t current_ = 0;
    int executableFd_ = -1;  // of the current generation, for respawns
    size_t workerCount_ = 0;
    std::map<pid_t, std::unique_ptr<Worker>> workers_;
    std::vector<std::chrono::milliseconds> backoff_;  // per slot: the next respawn's delay
    std::map<uint32_t, Pending> pending_;
    uint64_t pingSequence_ = 0;
    uint64_t exitedTunnels_ = 0;  // tunnels served by workers that are gone (totals survive them)
    AuthenticationCounter authentication_;
    bool stopping_ = false;
    std::function<void()> onAllExited_;
    TunnelListHandler tunnelLists_;
};

}  // namespace relaypro
