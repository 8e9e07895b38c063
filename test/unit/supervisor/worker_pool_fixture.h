// WorkerPoolCore without processes: a fake Io that records what the core asks for, a log that
// keeps its records, and messages built as a worker would send them.
#pragma once

#include <gtest/gtest.h>

#include <cerrno>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ipc/messages.h"
#include "supervisor/worker_pool_core.h"

namespace relaypro::pool_test {

using Clock = WorkerPoolCore::Clock;
using State = WorkerPoolCore::State;
using ipc::MessageType;

class FakeIo : public WorkerPoolCore::Io {
public:
    struct Sent {
        pid_t pid;
        MessageType type;
        uint32_t generation;
        std::string body;
    };
    pid_t nextPid = 100;
    bool failSpawn = false;
    std::vector<int> spawnedFrom;  // the executable of each spawn
    std::vector<Sent> sent;
    std::set<pid_t> fullChannels;  // send() fails for these
    std::vector<pid_t> killed;
    std::vector<pid_t> closed;
    std::map<uint32_t, std::chrono::milliseconds> startTimeouts;  // armed, not cancelled
    std::vector<std::pair<size_t, std::chrono::milliseconds>> respawns;
    bool respawnsCancelled = false;
    std::vector<std::chrono::milliseconds> stopDeadlines;
    std::map<pid_t, int> adopted;
    std::set<pid_t> openChannels;  // releaseChannel() gives these away, as 1000 + pid
    Clock::time_point clock = Clock::time_point{} + std::chrono::hours(1);
    std::optional<uint64_t> runQueueWait;

    Result<pid_t> spawn(int executableFd) override {
        if (failSpawn) return sysError("fork", EAGAIN);
        spawnedFrom.push_back(executableFd);
        return nextPid++;
    }
    bool send(pid_t pid, const std::string& frame, const std::vector<int>& /*fds*/) override {
        auto header = ipc::decodeFrameHeader(frame);
        EXPECT_TRUE(header.has_value());
        if (header) sent.push_back({pid, header->type, header->generation, frame.substr(ipc::kFrameHeaderBytes)});
        return !fullChannels.contains(pid);
    }
    void killWorker(pid_t pid) override { killed.push_back(pid); }
    void closeChannel(pid_t pid) override { closed.push_back(pid); }
    int releaseChannel(pid_t pid) override { return openChannels.contains(pid) ? 1000 + pid : -1; }
    void adoptChannel(pid_t pid, int fd) override { adopted[pid] = fd; }
    void armStartTimeout(uint32_t generation, std::chrono::milliseconds in) override { startTimeouts[generation] = in; }
    void cancelStartTimeout(uint32_t generation) override { startTimeouts.erase(generation); }
    void armRespawn(size_t slot, std::chrono::milliseconds in) override { respawns.emplace_back(slot, in); }
    void cancelRespawns() override { respawnsCancelled = true; }
    void armStopDeadline(std::chrono::milliseconds in) override { stopDeadlines.push_back(in); }
    [[nodiscard]] Clock::time_point now() const override { return clock; }
    [[nodiscard]] std::optional<uint64_t> runnableNs(pid_t /*pid*/) const override { return runQueueWait; }

    // The types sent to `pid`, in order.
    [[nodiscard]] std::vector<MessageType> typesTo(pid_t pid) const {
        std::vector<MessageType> out;
        for (const auto& s : sent) {
            if (s.pid == pid) out.push_back(s.type);
        }
        return out;
    }
    [[nodiscard]] size_t count(pid_t pid, MessageType type) const {
        size_t n = 0;
        for (const auto& s : sent) n += s.pid == pid && s.type == type ? 1U : 0U;
        return n;
    }
    // The last message of M's type sent to `pid`, decoded.
    template <typename M>
    [[nodiscard]] std::optional<M> last(pid_t pid) const {
        for (auto it = sent.rbegin(); it != sent.rend(); ++it) {
            if (it->pid != pid || it->type != M::kType) continue;
            M m;
            EXPECT_TRUE(ipc::decodeBody(it->body, m));
            return m;
        }
        return std::nullopt;
    }
};

class RecordingLog : public LogOutput {
public:
    void write(const LogRecord& record) override { records.push_back(record); }
    [[nodiscard]] size_t count(const std::string& msg) const {
        size_t n = 0;
        for (const auto& r : records) n += r.msg == msg ? 1U : 0U;
        return n;
    }
    // A string field of the last record with this message ("" when there is none).
    [[nodiscard]] std::string field(const std::string& msg, const std::string& key) const {
        for (auto it = records.rbegin(); it != records.rend(); ++it) {
            if (it->msg != msg) continue;
            for (const auto& f : it->fields) {
                if (f.key == key) {
                    const auto* s = std::get_if<std::string>(&f.value);
                    return s != nullptr ? *s : "";
                }
            }
        }
        return "";
    }
    std::vector<LogRecord> records;
};

// A message as the worker sends it, as the channel hands it over.
template <typename M>
ipc::Received received(const M& m, uint32_t generation) {
    std::string frame = ipc::frame(m, generation);
    ipc::Received r;
    r.header = *ipc::decodeFrameHeader(frame);
    r.body = frame.substr(ipc::kFrameHeaderBytes);
    return r;
}

class PoolCoreTest : public ::testing::Test {
protected:
    static constexpr int kExecutable = 7;

    PoolCoreTest() { core = std::make_unique<WorkerPoolCore>(io, logger, &workerLog, setup()); }

    static WorkerPoolCore::Setup setup(bool testHooks = false) {
        WorkerPoolCore::Setup s;
        auto settings = std::make_shared<WorkerSettings>();
        settings->limits.tokenRequestsPerMinute = 2;
        s.settings = settings;
        s.testHooks = testHooks;
        return s;
    }
    void recreate(WorkerPoolCore::Setup s) {
        core = std::make_unique<WorkerPoolCore>(io, logger, &workerLog, std::move(s));
    }

    template <typename M>
    void from(pid_t pid, const M& m) {
        const auto* w = core->worker(pid);
        core->onMessage(pid, received(m, w != nullptr ? w->generation : 0));
    }
    [[nodiscard]] State state(pid_t pid) const { return core->worker(pid)->state; }
    void ready(pid_t pid) {
        from(pid, ipc::HelloAck{ipc::kProtocolVersion, static_cast<uint32_t>(pid)});
        from(pid, ipc::Ready{});
    }
    // A generation of `count` workers, started and (unless told otherwise) all serving.
    std::vector<pid_t> generation(uint32_t g, size_t count, bool makeReady = true,
                                  std::chrono::milliseconds within = std::chrono::seconds(20)) {
        const pid_t first = io.nextPid;
        core->startGeneration(
            g, count, kExecutable + static_cast<int>(g), [this, g] { readyGenerations.push_back(g); },
            [this, g](const std::string& why) { failures.emplace_back(g, why); }, within);
        std::vector<pid_t> pids;
        for (pid_t p = first; p < io.nextPid; ++p) pids.push_back(p);
        if (makeReady) {
            for (pid_t p : pids) ready(p);
        }
        return pids;
    }
    [[nodiscard]] std::string replacedFor() const { return log.field("replacing a worker", "reason"); }

    FakeIo io;
    RecordingLog log;
    RecordingLog workerLog;
    Logger logger{&log, "supervisor"};
    std::unique_ptr<WorkerPoolCore> core;
    std::vector<uint32_t> readyGenerations;
    std::vector<std::pair<uint32_t, std::string>> failures;
};

}  // namespace relaypro::pool_test
