#include "worker/worker_main.h"

#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <sodium.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string_view>
#include <utility>

#include "common/process_figures.h"
#include "common/test_hooks.h"
#include "common/unique_fd.h"
#include "ipc/channel.h"
#include "ipc/messages.h"
#include "ipc/snapshot.h"
#include "ipc/tunnel_list.h"
#include "worker/connection.h"
#include "worker/drain_schedule.h"
#include "worker/sandbox.h"
#include "worker/server.h"

namespace relaypro {
namespace {

// Log records travel to the supervisor, which owns the log file. Records of one loop turn go
// out together at its end, in one sendmmsg, so a busy worker wakes the supervisor once per turn
// rather than once per tunnel. A full channel drops records rather than blocking the loop; the
// count goes out with the next record that fits.
class IpcLogOutput : public LogOutput {
public:
    static constexpr size_t kMaxBatch = 256;

    IpcLogOutput(event_base* base, ipc::Channel& channel, const uint32_t& generation)
        : channel_(channel),
          generation_(generation),
          flushEvent_(event_new(base, -1, 0, &IpcLogOutput::onFlush, this)) {}
    ~IpcLogOutput() override { event_free(flushEvent_); }
    IpcLogOutput(const IpcLogOutput&) = delete;
    IpcLogOutput& operator=(const IpcLogOutput&) = delete;

    void write(const LogRecord& record) override {
        ipc::Log m;
        m.record = record;
        if (dropped_ > 0) {  // this record opens a batch (a drop happens only at a flush)
            m.record.fields.emplace_back("droppedBefore", dropped_);
            carried_ = dropped_;
            dropped_ = 0;
        }
        batch_.push_back(ipc::frame(m, generation_));
        if (batch_.size() >= kMaxBatch) {
            flush();
        } else if (batch_.size() == 1) {
            event_active(flushEvent_, EV_TIMEOUT, 0);  // runs after this turn's other callbacks
        }
    }

    // Hands every batched record to the channel now.
    void flush() {
        if (batch_.empty()) return;
        size_t accepted = channel_.sendAll(batch_);
        dropped_ += batch_.size() - accepted;
        if (accepted == 0) dropped_ += carried_;  // the count rode on a record that did not go
        carried_ = 0;
        batch_.clear();
    }

private:
    static void onFlush(int, short, void* arg) { static_cast<IpcLogOutput*>(arg)->flush(); }

    ipc::Channel& channel_;
    const uint32_t& generation_;
    event* flushEvent_;
    std::vector<std::string> batch_;
    uint64_t dropped_ = 0;
    uint64_t carried_ = 0;  // the droppedBefore that batch_[0] carries
};

class Worker {
public:
    Worker(event_base* base, int channelFd) : base_(base) {
        channel_ = std::make_unique<ipc::Channel>(
            base, UniqueFd(channelFd), [this](ipc::Received&& r) { onMessage(std::move(r)); },
            [this](const std::string& reason) { onChannelClosed(reason); });
        log_ = std::make_unique<IpcLogOutput>(base, *channel_, generation_);
        hooks_ = installWorkerTestHooks(base_, *channel_, generation_);  // test builds only
    }

    ~Worker() {
        hooks_.reset();
        if (drainTimer_ != nullptr) event_free(drainTimer_);
        if (lagTimer_ != nullptr) event_free(lagTimer_);
    }

    int run() {
        event_base_dispatch(base_);
        if (server_) {
            server_->closeAll();
            // The counts since the last ping, so that the supervisor's totals lose nothing.
            (void)channel_->send(counters(server_->stats()), generation_);  // unsent: those are lost
        }
        server_.reset();
        log_->flush();
        channel_->flush(1000);
        return exitCode_;
    }

private:
    void onChannelClosed(const std::string& reason) {
        // The supervisor is gone (or spoke garbage): nobody would see our logs; stop at once.
        std::fprintf(stderr, "relaypro worker %d: channel to the supervisor closed: %s\n", ::getpid(), reason.c_str());
        exitCode_ = 1;
        event_base_loopbreak(base_);
    }

    void fatal(const std::string& why) {
        Logger(log_.get(), "worker").error(why);
        exitCode_ = 1;
        event_base_loopexit(base_, nullptr);
    }

    template <typename M>
    bool decode(const ipc::Received& r, M& m) {
        if (ipc::decodeBody(r.body, m)) return true;
        fatal(std::string("malformed ") + std::string(ipc::messageName(r.header.type)) + " from the supervisor");
        return false;
    }

    // One handler per message type, each decoding its own body (a malformed one is fatal).
    void onMessage(ipc::Received&& r) {
        using Handler = void (Worker::*)(ipc::Received&);
        static constexpr std::pair<ipc::MessageType, Handler> kHandlers[] = {
            {ipc::MessageType::Hello, &Worker::onHello},
            {ipc::MessageType::SettingsChunk, &Worker::onSettingsChunk},
            {ipc::MessageType::Secrets, &Worker::onSecrets},
            {ipc::MessageType::Listeners, &Worker::onListeners},
            {ipc::MessageType::Start, &Worker::onStart},
            {ipc::MessageType::Ping, &Worker::onPing},
            {ipc::MessageType::Drain, &Worker::onDrain},
            {ipc::MessageType::DrainGradually, &Worker::onDrainGradually},
            {ipc::MessageType::HandshakeBound, &Worker::onHandshakeBound},
            {ipc::MessageType::SourcePorts, &Worker::onSourcePorts},
            {ipc::MessageType::Stop, &Worker::onStop},
            {ipc::MessageType::VerifyAnswer, &Worker::onVerifyAnswer},
            {ipc::MessageType::FailureCounted, &Worker::onFailureCounted},
            {ipc::MessageType::Balance, &Worker::onBalance},
            {ipc::MessageType::SourceBlocked, &Worker::onSourceBlocked},
            {ipc::MessageType::SelfTest, &Worker::onSelfTest},
            {ipc::MessageType::TunnelListRequest, &Worker::onTunnelListRequest},
        };
        for (const auto& [type, handler] : kHandlers) {
            if (type == r.header.type) return (this->*handler)(r);
        }
        if (r.header.type == ipc::MessageType::Unknown) return;  // the supervisor did not know something we sent
        (void)channel_->send(ipc::Unknown{static_cast<uint16_t>(r.header.type)}, generation_);  // a courtesy
    }

    void onStart(ipc::Received&) { start(); }
    void onStop(ipc::Received&) { event_base_loopexit(base_, nullptr); }

    void onHello(ipc::Received& r) {
        ipc::Hello m;
        if (!decode(r, m)) return;
        if (m.protocolVersion < ipc::kOldestProtocolVersion)
            return fatal("the supervisor speaks an older IPC protocol");
        generation_ = r.header.generation;
        // Unsent, the supervisor's start timeout replaces this worker: nothing to add here.
        (void)channel_->send(ipc::HelloAck{ipc::kProtocolVersion, static_cast<uint32_t>(::getpid())}, generation_);
    }

    void onSettingsChunk(ipc::Received& r) {
        ipc::SettingsChunk m;
        if (!decode(r, m)) return;
        if (auto s = assembler_.add(m); !s) return fatal(s.error().message);
        if (!assembler_.complete()) return;
        auto settings = ipc::decodeSettings(assembler_.take());
        if (!settings) return fatal(settings.error().message);
        settings_ = *settings;
        if (server_) server_->applySettings(settings_);
    }

    void onSecrets(ipc::Received& r) {
        ipc::Secrets m;
        if (!decode(r, m)) return;
        if (!server_) {
            secrets_ = std::move(m.secrets);
            return;
        }
        if (auto s = server_->updateSecrets(m.secrets); !s) {
            Logger(log_.get(), "worker")
                .error("new TLS material refused; serving on with the previous", {{"error", s.error().message}});
        }
    }

    void onListeners(ipc::Received& r) {
        ipc::Listeners m;
        if (!decode(r, m)) return;
        if (m.kinds.size() != r.fds.size()) return fatal("listener kinds and sockets do not match");
        listeners_.clear();
        for (size_t i = 0; i < r.fds.size(); ++i) {
            listeners_.push_back({m.kinds[i], r.fds[i].release(), {}});
        }
    }

    void onPing(ipc::Received& r) {
        ipc::Ping m;
        if (!decode(r, m)) return;
        ServerStats st = server_ ? server_->stats() : ServerStats{};
        // Unsent is a missed ping, which the supervisor's liveness rule judges.
        (void)channel_->send(ipc::Pong{m.sequence, st.connections, st.tunnels, st.totalTunnels, st.refused},
                             generation_);
        // The metrics ride on the same round; unsent, the supervisor shows the previous ones.
        (void)channel_->send(counters(st), generation_);
    }

    // What this worker counted, and what its process holds (a read and an fstat).
    ipc::Counters counters(const ServerStats& st) const {
        ipc::Counters m;
        m.residentBytes = figures_.residentBytes().value_or(0);
        // Without the kernel's count: what it held at start, plus a client socket per connection
        // and an upstream one per tunnel.
        m.descriptors = figures_.descriptors().value_or(figures_.descriptorsAtOpen() + st.connections + st.tunnels);
        if (!server_) return m;
        auto values = server_->counters().values();
        for (size_t id = 0; id < values.size(); ++id) {
            if (values[id] != 0) m.values.emplace_back(static_cast<uint16_t>(id), values[id]);
        }
        return m;
    }

    void onDrain(ipc::Received& r) {
        ipc::Drain m;
        if (decode(r, m)) drain(m.graceMs, 0);
    }

    void onHandshakeBound(ipc::Received& r) {
        ipc::HandshakeBound m;
        if (!decode(r, m)) return;
        maxHandshakes_ = m.maxHandshakes;
        if (server_) server_->setMaxHandshakes(m.maxHandshakes);
    }

    void onSourcePorts(ipc::Received& r) {
        ipc::SourcePorts m;
        if (!decode(r, m)) return;
        sourcePorts_ = PortRange{m.low, m.high};
        if (server_) server_->setSourcePorts(sourcePorts_);
    }

    void onDrainGradually(ipc::Received& r) {
        ipc::DrainGradually m;
        if (decode(r, m)) drain(m.graceMs, m.spreadMs);
    }

    void onVerifyAnswer(ipc::Received& r) {
        ipc::VerifyAnswer m;
        if (!decode(r, m) || !server_) return;
        if (Connection* c = server_->find(Connection::serialOf(m.ticket))) {
            c->verified(m.ticket, m.result, m.retryAfterSeconds);
        }
    }

    void onFailureCounted(ipc::Received& r) {
        ipc::FailureCounted m;
        if (!decode(r, m) || !server_) return;
        if (Connection* c = server_->find(Connection::serialOf(m.ticket))) c->failureCounted(m.ticket);
    }

    void onBalance(ipc::Received& r) {
        ipc::Balance m;
        if (decode(r, m) && server_) server_->holdAccepts(std::chrono::milliseconds(m.holdMs));
    }

    void onSourceBlocked(ipc::Received& r) {
        ipc::SourceBlocked m;
        if (decode(r, m) && server_) server_->blockSource(m.source, std::chrono::milliseconds(m.retryAfterMs));
    }

    // One chunk, answered in this turn; the supervisor asks for the next when it wants it.
    void onTunnelListRequest(ipc::Received& r) {
        ipc::TunnelListRequest m;
        if (!decode(r, m)) return;
        ipc::TunnelList list;
        if (server_) {
            list = server_->listTunnels(m.after, m.maxRows);
        } else {
            list.after = list.next = m.after;
            list.done = true;
        }
        list.requestId = m.requestId;
        (void)channel_->send(list, generation_);  // unsent: the supervisor's wait for it ends the listing
    }

    void onSelfTest(ipc::Received& r) {
        ipc::SelfTest m;
        if (!decode(r, m)) return;
        // Only a test build runs it; the shipped one answers as to a message it does not know.
        auto result = runSandboxSelfTest(m);
        if (!result) {
            (void)channel_->send(ipc::Unknown{static_cast<uint16_t>(r.header.type)}, generation_);  // a courtesy
            return;
        }
        (void)channel_->send(*result, generation_);  // test builds: a report missing from the log
    }

    void start() {
        if (server_) return;
        if (!settings_ || !secrets_ || listeners_.empty())
            return fatal("start before settings, material and listeners");
        auto server = Server::create(base_, std::move(listeners_), *secrets_, settings_, log_.get());
        secrets_.reset();  // wipes itself
        if (!server) return fatal(server.error().message);
        server_ = std::move(*server);
        server_->setMaxHandshakes(maxHandshakes_);
        server_->setSourcePorts(sourcePorts_);
        server_->onAuthFailure([this](uint64_t ticket, const std::string& source) {
            return channel_->send(ipc::CountFailure{ticket, source}, generation_);
        });
        server_->onVerify([this](uint64_t ticket, const std::string& responderId, const std::string& credential,
                                 const std::string& source) {
            ipc::VerifyRequest m{ticket, responderId, credential, source};
            bool sent = channel_->send(m, generation_);
            sodium_memzero(m.credential.data(), m.credential.size());
            return sent;
        });
        server_->onEmpty([this] {
            if (server_->draining()) event_base_loopexit(base_, nullptr);
        });
        // Everything this worker will ever need from the file system is loaded now.
        SandboxReport report = enterSandbox();
        Logger log(log_.get(), "worker");
        for (const auto& w : report.warnings) log.warn(w);
        if (!report.ok) return fatal("sandbox: " + report.error);
        if (!startLagTick()) {
            log.warn("no loop-lag tick: this worker's ticks are missing from relaypro_worker_loop_lag_seconds",
                     {{"error", std::string(std::strerror(errno))}});
        }
        // Threads only now: each inherits the sandbox of the thread that starts it.
        if (auto s = server_->hashVerifier().start(); !s) return fatal(s.error().message);
        log.info("worker serving",
                 {{"generation", generation_}, {"seccomp", report.seccomp}, {"landlock", report.landlock}});
        (void)channel_->send(ipc::Ready{}, generation_);  // unsent: the start timeout replaces this worker
    }

    void drain(uint64_t graceMs, uint64_t spreadMs) {
        if (!server_) {
            event_base_loopexit(base_, nullptr);
            return;
        }
        server_->beginDrain();
        if (server_->stats().connections == 0) {
            event_base_loopexit(base_, nullptr);
            return;
        }
        // A second drain (a stop during an upgrade's drain) may only bring the end forward.
        auto now = std::chrono::steady_clock::now();
        if (!drainSchedule_.plan(now + std::chrono::milliseconds(graceMs), std::chrono::milliseconds(spreadMs))) return;
        if (drainTimer_ == nullptr) drainTimer_ = evtimer_new(base_, &Worker::onDrainTimer, this);
        armDrainTimer(now);
    }

    void armDrainTimer(std::chrono::steady_clock::time_point now) {
        auto in = std::chrono::ceil<std::chrono::microseconds>(drainSchedule_.next(now) - now);
        timeval tv = toTimeval(std::max(in, std::chrono::microseconds::zero()));
        evtimer_add(drainTimer_, &tv);  // (re)scheduled
    }

    // relaypro_worker_loop_lag_seconds: a tick every 25 ms; how late it runs is how long the loop
    // was busy with other work (cost: 40 wake-ups and reads a second). A periodic timerfd, not a
    // libevent timer: libevent reads CLOCK_MONOTONIC_COARSE (4 ms steps here), so when
    // epoll_wait returns for a 25 ms timer that clock often says it is not due yet, and the loop
    // waits again in 1 ms steps until it is. An idle worker switched context 150 times a second,
    // used 3.1 ms of CPU a second, and its ticks read 1-7 ms late; with the timerfd 41, 1.2-1.6 ms
    // and about 0.1 ms. The kernel keeps the timerfd's beat on its own; libevent only sees it
    // readable. A stall is one observation, from the first tick it held up.
    static constexpr std::chrono::milliseconds kLagTick{25};
    static_assert(kLagTick < std::chrono::seconds(1), "a timespec's tv_nsec holds the period");
    bool startLagTick() {
        lagFd_.reset(::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC));
        if (!lagFd_) return false;
        lagTimer_ = event_new(base_, lagFd_.get(), EV_READ | EV_PERSIST, &Worker::onLagTick, this);
        // The first tick at lagDue_ exactly (steady_clock is CLOCK_MONOTONIC), then every kLagTick.
        lagDue_ = std::chrono::steady_clock::now() + kLagTick;
        const auto first = std::chrono::duration_cast<std::chrono::nanoseconds>(lagDue_.time_since_epoch()).count();
        itimerspec beat{};
        beat.it_interval.tv_nsec = std::chrono::nanoseconds(kLagTick).count();
        beat.it_value.tv_sec = static_cast<time_t>(first / 1'000'000'000);
        beat.it_value.tv_nsec = first % 1'000'000'000;
        if (lagTimer_ != nullptr && event_add(lagTimer_, nullptr) == 0 &&
            ::timerfd_settime(lagFd_.get(), TFD_TIMER_ABSTIME, &beat, nullptr) == 0) {
            return true;
        }
        const int err = errno;
        stopLagTick();
        errno = err;
        return false;
    }
    void stopLagTick() {
        if (lagTimer_ != nullptr) event_free(lagTimer_);
        lagTimer_ = nullptr;
        lagFd_.reset();
    }
    static void onLagTick(int fd, short, void* arg) {
        auto* self = static_cast<Worker*>(arg);
        uint64_t expirations = 0;
        const ssize_t got = ::read(fd, &expirations, sizeof expirations);
        if (got != static_cast<ssize_t>(sizeof expirations) || expirations == 0) {
            if (got < 0 && errno == EAGAIN) return;  // nothing expired yet
            Logger(self->log_.get(), "worker")
                .warn(
                    "the loop-lag tick stopped: this worker's ticks are missing from "
                    "relaypro_worker_loop_lag_seconds",
                    {{"error", got < 0 ? std::string(std::strerror(errno)) : "a short read"}});
            self->stopLagTick();
            return;
        }
        self->server_->counters().observeLoopLag(std::chrono::steady_clock::now() - self->lagDue_);
        self->lagDue_ += kLagTick * static_cast<int64_t>(expirations);  // the next one due
    }

    // The drain deadline has passed: close what the schedule says is due (everything at the
    // end of the spread), and look again when the next close is due.
    static void onDrainTimer(int, short, void* arg) {
        auto* self = static_cast<Worker*>(arg);
        auto now = std::chrono::steady_clock::now();
        size_t open = self->server_->stats().connections;
        size_t n = self->drainSchedule_.due(now, open);
        if (n >= open) {
            self->server_->closeAll();
            event_base_loopexit(self->base_, nullptr);
            return;
        }
        self->server_->closeOldest(n, "drained");  // the last one ends the loop (onEmpty)
        self->armDrainTimer(now);
    }

    event_base* base_;
    std::unique_ptr<WorkerTestHooks> hooks_;
    uint32_t generation_ = 0;
    std::unique_ptr<ipc::Channel> channel_;
    std::unique_ptr<IpcLogOutput> log_;
    ipc::SnapshotAssembler assembler_;
    std::shared_ptr<const WorkerSettings> settings_;
    std::optional<WorkerSecrets> secrets_;
    std::vector<ListenerSocket> listeners_;
    std::unique_ptr<Server> server_;
    ProcessFigures figures_ = ProcessFigures::open();  // before the sandbox, which forbids opening
    event* drainTimer_ = nullptr;
    UniqueFd lagFd_;
    event* lagTimer_ = nullptr;  // lagFd_ readable
    std::chrono::steady_clock::time_point lagDue_{};
    DrainSchedule drainSchedule_;
    uint32_t maxHandshakes_ = kHandshakesPerCpu;  // the supervisor's last HandshakeBound
    PortRange sourcePorts_;                       // its last SourcePorts
    int exitCode_ = 0;
};

}  // namespace

int runWorker(int channelFd) {
    ::signal(SIGPIPE, SIG_IGN);
    // Signals meant for the service go to the supervisor; a worker only dies with it.
    ::signal(SIGHUP, SIG_IGN);
    ::signal(SIGINT, SIG_IGN);
    ::signal(SIGTERM, SIG_IGN);
    ::signal(SIGUSR1, SIG_IGN);
    ::signal(SIGUSR2, SIG_IGN);
    // Tests hold a generation of workers at its start (to act in the window of an upgrade) by
    // creating this file; they continue it with SIGCONT (test builds only).
    if (const std::string& hold = testHooks().holdFile; !hold.empty() && ::access(hold.c_str(), F_OK) == 0) {
        ::raise(SIGSTOP);
    }
    ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    event_base* base = event_base_new();
    if (base == nullptr) return 1;
    int code = 0;
    {
        Worker w(base, channelFd);
        code = w.run();
    }
    event_base_free(base);
    return code;
}

}  // namespace relaypro
