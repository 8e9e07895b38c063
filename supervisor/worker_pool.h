// The supervisor's workers (lifecycle.md): started by fork + exec of an executable opened
// beforehand (its own image, or the installed binary for an upgrade), handed their settings,
// TLS material and listening sockets over a SOCK_SEQPACKET channel, pinged every second, and
// replaced when they die (with backoff), stop answering (two missed pings), or send anything
// the permission table does not allow in their state. The supervisor never trusts a worker:
// garbage from one replaces that one.
#pragma once

#include <event2/event.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "common/log_record.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "common/worker_settings.h"
#include "ipc/channel.h"
#include "ipc/messages.h"
#include "supervisor/authentication_counter.h"
#include "supervisor/handover.h"
#include "supervisor/liveness.h"

namespace relaypro {

struct ListenerHandle {
    uint8_t kind;  // 0 https, 1 http (ipc::Listeners)
    int fd;        // borrowed: the supervisor keeps its own copy
};

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

class WorkerPool {
public:
    // The answer to a worker's VerifyRequest: the result and, for refusals, Retry-After.
    using VerifyDone = std::function<void(ipc::VerifyAnswer::Result, uint32_t retryAfterSeconds)>;
    // Asks the console about a Responder (the supervisor's console client); calls `done` once.
    using Verifier = std::function<void(const ipc::VerifyRequest&, VerifyDone done)>;

    struct Setup {
        std::vector<ListenerHandle> listeners;
        WorkerSecrets secrets;  // wipes itself
        Verifier verify;        // without one, every Responder is "not registered"
        std::shared_ptr<const WorkerSettings> settings;
        bool testHooks = false;
        ipc::SelfTest selfTest;  // sent after each Ready when testHooks
    };

    WorkerPool(event_base* base, const Logger& log, LogOutput* workerLog, Setup setup);
    ~WorkerPool();
    WorkerPool(const WorkerPool&) = delete;
    WorkerPool& operator=(const WorkerPool&) = delete;

    // Starts `count` workers of a new generation from `executableFd` (kept open by the caller).
    // `onReady` runs once when all of them serve; `onFailed` if one dies or times out first.
    // Workers not all ready within `readyWithin` fail the generation.
    static constexpr std::chrono::milliseconds kStartTimeout{20000};
    void startGeneration(uint32_t generation, size_t count, int executableFd, std::function<void()> onReady,
                         std::function<void(const std::string&)> onFailed,
                         std::chrono::milliseconds readyWithin = kStartTimeout);
    // The generation that is current: its workers are respawned when they die.
    void setCurrent(uint32_t generation) { current_ = generation; }
    [[nodiscard]] uint32_t current() const { return current_; }

    void pushSettings(std::shared_ptr<const WorkerSettings> settings);
    // New secrets (hourly ticket key, daily token master, a renewed certificate) for every
    // worker, and for the workers started from now on.
    void pushSecrets(const WorkerSecrets& secrets);
    // Tells a generation to stop accepting and to close what is left after `grace`.
    void drain(uint32_t generation, std::chrono::milliseconds grace);
    // A stop's workers that have not ended `kStopMargin` after their grace are killed.
    static constexpr std::chrono::milliseconds kStopMargin{2000};
    // Stops every worker (drain with grace, every generation's deadline brought forward to it),
    // then calls `onAllExited`.
    void stopAll(std::chrono::milliseconds grace, std::function<void()> onAllExited);
    // Kills every worker of a generation now (a failed upgrade's new workers).
    void kill(uint32_t generation);
    // Collects exited children (call on SIGCHLD). Returns the pids it did not know.
    std::vector<std::pair<pid_t, int>> reap();

    [[nodiscard]] size_t serving(uint32_t generation) const;
    [[nodiscard]] size_t alive() const { return workers_.size(); }
    [[nodiscard]] PoolStats stats() const;
    [[nodiscard]] std::vector<WorkerView> view() const;
    [[nodiscard]] std::vector<pid_t> pids() const;

    // Upgrade: gives every worker's channel away (queues flushed) for the next supervisor image.
    // The pool is unusable afterwards, except through adopt() (an exec that failed).
    std::vector<HandoverWorker> handover();
    // The next image: takes over workers from the hand-over. Slots of the current generation
    // that have no live worker are respawned.
    void adopt(const std::vector<HandoverWorker>& workers, uint32_t current, int executableFd, size_t workerCount);
    [[nodiscard]] uint64_t exitedTunnels() const { return exitedTunnels_; }
    // The settings snapshot every worker runs with (ipc/snapshot.h), for the hand-over.
    [[nodiscard]] const std::string& settingsBytes() const { return settingsBytes_; }
    void setExitedTunnels(uint64_t n) { exitedTunnels_ = n; }

private:
    enum class State { Starting, Serving, Draining, Stopping };
    static const char* stateName(State s);
    struct Worker {
        pid_t pid = -1;
        uint32_t generation = 0;
        size_t slot = 0;
        State state = State::Starting;
        bool helloAcked = false;
        uint16_t protocol = 0;        // from HelloAck; 0 when adopted across a re-exec (not known)
        bool holdingAccepts = false;  // told to by the last Balance
        bool selfTestSent = false;
        std::unique_ptr<ipc::Channel> channel;
        int outstandingPings = 0;
        PingWindow pingWindow;                                  // since the oldest unanswered ping
        std::chrono::steady_clock::time_point firstUnanswered;  // not renewed while starved
        ipc::Pong stats;
        std::chrono::steady_clock::time_point started;
        // What a worker may ask of the supervisor for the others (issue 15): a worker chooses the
        // source it reports, so the counter's caps bound what a compromised one can do.
        AuthenticationCounter::WorkerShare auth;
        std::chrono::steady_clock::time_point drainDeadline{};  // when Draining
    };
    struct Slot {
        WorkerPool* pool = nullptr;
        size_t index = 0;
        std::chrono::milliseconds backoff{100};
        event* respawn = nullptr;
    };
    struct Pending {
        WorkerPool* pool = nullptr;
        uint32_t generation = 0;
        std::chrono::milliseconds within{0};
        int previousExecutableFd = -1;  // what respawns used before this generation
        size_t previousWorkerCount = 0;
        size_t waiting = 0;
        std::function<void()> onReady;
        std::function<void(const std::string&)> onFailed;
        event* timeout = nullptr;
    };

    Result<pid_t> spawn(uint32_t generation, size_t slot, int executableFd);
    void sendStartup(Worker& w);
    void sendSettings(Worker& w);
    void onMessage(pid_t pid, ipc::Received&& r);
    void onChannelClosed(pid_t pid, const std::string& reason);
    bool permitted(const Worker& w, ipc::MessageType t) const;
    void replace(Worker& w, const std::string& why);
    // Counts one authentication failure a worker reports, within that worker's cap.
    void failureReported(Worker& w, const std::string& source);
    void verifyRequested(Worker& w, ipc::VerifyRequest&& m);
    void workerExited(pid_t pid, int status);
    void scheduleRespawn(size_t slot);
    void generationFailed(uint32_t generation, const std::string& why);
    static void onPingTimer(int, short, void* arg);
    // Tells the current generation's serving workers well above their average connection count
    // to hold accepts until the next round, and the others to accept (supervisor/balance.h).
    // `round`: when this round of pings went out.
    void balance(std::chrono::steady_clock::time_point round);
    static void onRespawn(int, short, void* arg);
    static void onStartTimeout(int, short, void* arg);
    static void onStopDeadline(int, short, void* arg);

    event_base* base_;
    const Logger& log_;
    LogOutput* workerLog_;
    Setup setup_;
    std::string settingsBytes_;
    uint32_t snapshotId_ = 1;
    uint32_t current_ = 0;
    int executableFd_ = -1;  // of the current generation, for respawns
    UniqueFd devNull_;
    size_t workerCount_ = 0;
    std::map<pid_t, std::unique_ptr<Worker>> workers_;
    std::vector<std::unique_ptr<Slot>> slots_;  // stable addresses: their timers point at them
    std::map<uint32_t, Pending> pending_;
    event* pingTimer_ = nullptr;
    uint64_t pingSequence_ = 0;
    uint64_t exitedTunnels_ = 0;  // tunnels served by workers that are gone (totals survive them)
    AuthenticationCounter authentication_;
    bool stopping_ = false;
    std::function<void()> onAllExited_;
    event* stopTimer_ = nullptr;
};

}  // namespace relaypro
