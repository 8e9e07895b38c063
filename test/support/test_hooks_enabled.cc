// The test build's hooks (common/test_hooks.h): read from the environment once. Linked into
// relaypro-test and relaypro-next only; the shipped relaypro has none of this.
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdlib>

#include "common/test_hooks.h"
#include "ipc/channel.h"
#include "ipc/messages.h"
#include "test/support/sandbox_self_test.h"

namespace relaypro {
namespace {

std::string variable(const char* name) {
    const char* v = std::getenv(name);
    return v != nullptr ? v : "";
}

TestHooks readHooks() {
    TestHooks h;
    h.on = variable("RELAYPRO_TEST_HOOKS") == "1";
    h.installedBinary = variable("RELAYPRO_INSTALLED_BINARY");
    if (!h.on) return h;
    if (auto ms = variable("RELAYPRO_TEST_HEARTBEAT_MS"); !ms.empty()) {
        h.heartbeatInterval = std::chrono::milliseconds(std::clamp(std::atol(ms.c_str()), 100L, 60000L));
    }
    if (auto ms = variable("RELAYPRO_TEST_REEXEC_PAUSE_MS"); !ms.empty()) {
        h.reexecPause = std::chrono::milliseconds(std::clamp(std::atol(ms.c_str()), 0L, 10000L));
    }
    if (auto f = variable("RELAYPRO_TEST_HANDOVER_FORMAT"); !f.empty()) {
        h.handoverFormat = static_cast<uint32_t>(std::strtoul(f.c_str(), nullptr, 10));
    }
    h.holdFile = variable("RELAYPRO_TEST_HOLD_FILE");
    if (auto ms = variable("RELAYPRO_TEST_FIRST_FLIGHT_HOLD_MS"); !ms.empty()) {
        h.firstFlightHold = std::chrono::milliseconds(std::clamp(std::atol(ms.c_str()), 0L, 10000L));
    }
    h.admissionTrace = variable("RELAYPRO_TEST_ADMISSION_TRACE") == "1";
    if (auto ms = variable("RELAYPRO_TEST_SHED_LOG_MS"); !ms.empty()) {
        h.shedLogInterval = std::chrono::milliseconds(std::clamp(std::atol(ms.c_str()), 100L, 60000L));
    }
    return h;
}

// SIGUSR1 sends garbage, SIGUSR2 a message a serving worker may not send, SIGWINCH leaves the
// worker only a few spare descriptors (as if something else had used them up: RelayPro's own
// limits never let clients do it). SIGTTIN and SIGTTOU act as a compromised worker would:
// authentication failures and token verifications for sources of its choosing, as fast as the
// channel takes them.
class SignalHooks : public WorkerTestHooks {
public:
    SignalHooks(event_base* base, ipc::Channel& channel, const uint32_t& generation)
        : channel_(channel), generation_(generation) {
        events_ = {evsignal_new(base, SIGUSR1, &SignalHooks::onGarbage, this),
                   evsignal_new(base, SIGUSR2, &SignalHooks::onUnpermitted, this),
                   evsignal_new(base, SIGWINCH, &SignalHooks::onTighten, this),
                   evsignal_new(base, SIGTTIN, &SignalHooks::onFailureFlood, this),
                   evsignal_new(base, SIGTTOU, &SignalHooks::onVerifyFlood, this)};
        for (event* e : events_) event_add(e, nullptr);
    }
    ~SignalHooks() override {
        for (event* e : events_) event_free(e);
    }
    SignalHooks(const SignalHooks&) = delete;
    SignalHooks& operator=(const SignalHooks&) = delete;

private:
    static void onGarbage(int, short, void* arg) {
        auto* self = static_cast<SignalHooks*>(arg);
        (void)ipc::sendFrame(self->channel_.fd(), "this is not a frame");
    }
    static void onUnpermitted(int, short, void* arg) {
        auto* self = static_cast<SignalHooks*>(arg);
        (void)self->channel_.send(ipc::Hello{}, self->generation_);
    }
    // The floods send what the channel takes; the rest is dropped, as a flood's would be.
    // A source key per number: 10.a.b.c.
    static std::string floodSource(uint32_t i) {
        return "10." + std::to_string((i >> 16) & 255) + "." + std::to_string((i >> 8) & 255) + "." +
               std::to_string(i & 255);
    }
    static void onFailureFlood(int, short, void* arg) {
        auto* self = static_cast<SignalHooks*>(arg);
        for (uint32_t i = 0; i < 5000; ++i) {
            (void)self->channel_.send(ipc::CountFailure{(uint64_t{1} << 62) + i, floodSource(i)}, self->generation_);
        }
    }
    static void onVerifyFlood(int, short, void* arg) {
        auto* self = static_cast<SignalHooks*>(arg);
        for (uint32_t i = 0; i < 200; ++i) {
            (void)self->channel_.send(
                ipc::VerifyRequest{(uint64_t{1} << 62) + i, "flood-" + std::to_string(i), "x", floodSource(i)},
                self->generation_);
        }
    }
    static void onTighten(int, short, void*) {
        rlimit now{};
        if (::getrlimit(RLIMIT_NOFILE, &now) != 0) return;
        int highest = 0;
        for (int fd = 0; fd < 4096 && static_cast<rlim_t>(fd) < now.rlim_cur; ++fd) {
            if (::fcntl(fd, F_GETFD) != -1) highest = fd;
        }
        now.rlim_cur = static_cast<rlim_t>(highest) + 5;  // four descriptors to spare
        ::setrlimit(RLIMIT_NOFILE, &now);
    }

    ipc::Channel& channel_;
    const uint32_t& generation_;
    std::vector<event*> events_;
};

}  // namespace

bool TestHooks::passesToWorkers(std::string_view v) const {
    return v == "RELAYPRO_TEST_HOOKS=1" || v.starts_with("RELAYPRO_TEST_HOLD_FILE=") ||
           v.starts_with("RELAYPRO_TEST_FIRST_FLIGHT_HOLD_MS=") || v.starts_with("RELAYPRO_TEST_SHED_LOG_MS=") ||
           v == "RELAYPRO_TEST_ADMISSION_TRACE=1";
}

const TestHooks& testHooks() {
    static const TestHooks hooks = readHooks();
    return hooks;
}

std::unique_ptr<WorkerTestHooks> installWorkerTestHooks(event_base* base, ipc::Channel& channel,
                                                        const uint32_t& generation) {
    if (!testHooks().on) return nullptr;
    return std::make_unique<SignalHooks>(base, channel, generation);
}

std::optional<ipc::SelfTestResult> runSandboxSelfTest(const ipc::SelfTest& m) {
    if (!testHooks().on) return std::nullopt;
    return ipc::SelfTestResult{sandboxSelfTest(m.paths, m.controlSocket, static_cast<int>(m.supervisorPid))};
}

}  // namespace relaypro
