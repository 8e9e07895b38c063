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
#include <optional>
#include <string>
#include <vector>

#include "common/log_record.h"
#include "common/result.h"
#include "common/unique_fd.h"
#include "common/worker_settings.h"
#include "ipc/channel.h"
#include "ipc/messages.h"
#include "supervisor/handover.h"
#include "supervisor/worker_pool_core.h"

namespace relaypro {

// The evented shell around WorkerPoolCore (which holds the logic and the permission table):
// fork + exec, the channels, the timers, waitpid.
class WorkerPool : private WorkerPoolCore::Io {
public:
    using VerifyDone = WorkerPoolCore::VerifyDone;
    using Verifier = WorkerPoolCore::Verifier;
    using Setup = WorkerPoolCore::Setup;

    WorkerPool(event_base* base, const Logger& log, LogOutput* workerLog, Setup setup);
    ~WorkerPool() override;
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
    void setCurrent(uint32_t generation) { core_.setCurrent(generation); }
    [[nodiscard]] uint32_t current() const { return core_.current(); }

    void pushSettings(std::shared_ptr<const WorkerSettings> settings);
    void setHandshakeBound(uint32_t bound) { core_.setHandshakeBound(bound); }
    void setSourcePorts(uint16_t low, uint16_t high) { core_.setSourcePorts(low, high); }
    // New secrets (hourly ticket key, daily token master, a renewed certificate) for every
    // worker, and for the workers started from now on.
    void pushSecrets(const WorkerSecrets& secrets);
    // Tells a generation to stop accepting and to close what is left after `grace`, evenly over
    // `spread` (limits.drainSpread: an upgrade's drain; a stop closes at once).
    void drain(uint32_t generation, std::chrono::milliseconds grace,
               std::chrono::milliseconds spread = std::chrono::milliseconds::zero());
    // A stop's workers that have not ended `kStopMargin` after their grace are killed.
    static constexpr std::chrono::milliseconds kStopMargin = WorkerPoolCore::kStopMargin;
    // Stops every worker (drain with grace, every generation's deadline brought forward to it),
    // then calls `onAllExited`.
    void stopAll(std::chrono::milliseconds grace, std::function<void()> onAllExited);
    // Kills every worker of a generation now (a failed upgrade's new workers).
    void kill(uint32_t generation);
    // Collects exited children (call on SIGCHLD). Returns the pids it did not know.
    std::vector<std::pair<pid_t, int>> reap();

    [[nodiscard]] size_t serving(uint32_t generation) const;
    [[nodiscard]] size_t alive() const { return core_.alive(); }
    [[nodiscard]] PoolStats stats() const;
    [[nodiscard]] std::vector<WorkerView> view() const;
    [[nodiscard]] std::vector<pid_t> pids() const;

    // Upgrade: gives every worker's channel away (queues flushed) for the next supervisor image.
    // The pool is unusable afterwards, except through adopt() (an exec that failed).
    std::vector<HandoverWorker> handover();
    // The next image: takes over workers from the hand-over. Slots of the current generation
    // that have no live worker are respawned.
    void adopt(const std::vector<HandoverWorker>& workers, uint32_t current, int executableFd, size_t workerCount);
    [[nodiscard]] uint64_t exitedTunnels() const { return core_.exitedTunnels(); }
    // The settings snapshot every worker runs with (ipc/snapshot.h), for the hand-over.
    [[nodiscard]] const std::string& settingsBytes() const { return core_.settingsBytes(); }
    void setExitedTunnels(uint64_t n) { core_.setExitedTunnels(n); }
    // `status --tunnels` (WorkerPoolCore::askTunnels, onTunnelLists).
    bool askTunnels(pid_t pid, const ipc::TunnelListRequest& request) { return core_.askTunnels(pid, request); }
    void onTunnelLists(WorkerPoolCore::TunnelListHandler handler) { core_.onTunnelLists(std::move(handler)); }

private:
    // A timer's libevent argument: the pool and what the timer is for.
    struct StartTimer {
        WorkerPool* pool = nullptr;
        uint32_t generation = 0;
        event* ev = nullptr;
    };
    struct RespawnTimer {
        WorkerPool* pool = nullptr;
        size_t slot = 0;
        event* ev = nullptr;
    };

    // WorkerPoolCore::Io
    Result<pid_t> spawn(int executableFd) override;
    bool send(pid_t pid, const std::string& frame, const std::vector<int>& fds) override;
    void killWorker(pid_t pid) override;
    void closeChannel(pid_t pid) override;
    int releaseChannel(pid_t pid) override;
    void adoptChannel(pid_t pid, int fd) override;
    void armStartTimeout(uint32_t generation, std::chrono::milliseconds in) override;
    void cancelStartTimeout(uint32_t generation) override;
    void armRespawn(size_t slot, std::chrono::milliseconds in) override;
    void cancelRespawns() override;
    void armStopDeadline(std::chrono::milliseconds in) override;
    [[nodiscard]] WorkerPoolCore::Clock::time_point now() const override;
    [[nodiscard]] std::optional<uint64_t> runnableNs(pid_t pid) const override;

    void openChannel(pid_t pid, UniqueFd fd);
    static void onPingTimer(int, short, void* arg);
    static void onRespawn(int, short, void* arg);
    static void onStartTimeout(int, short, void* arg);
    static void onStopDeadline(int, short, void* arg);

    event_base* base_;
    UniqueFd devNull_;
    std::map<pid_t, std::unique_ptr<ipc::Channel>> channels_;
    pid_t reaped_ = -1;                                    // a worker reaped just now, whose last frames are being read
    std::map<uint32_t, StartTimer> startTimers_;           // map nodes: stable addresses for libevent
    std::vector<std::unique_ptr<RespawnTimer>> respawns_;  // by slot, made when first needed
    std::vector<event*> stopTimers_;
    event* pingTimer_ = nullptr;
    WorkerPoolCore core_;  // last: destroyed first, it holds callbacks but never calls out then
};

}  // namespace relaypro
