// What a test may change in a running RelayPro, read once from the environment into one struct.
// Only the test build reads it: relaypro-test and relaypro-next link
// test/support/test_hooks_enabled.cc. The shipped relaypro links common/test_hooks_shipped.cc,
// where every hook is off and none of the hooks' variable names or actions exist (CI checks the
// packaged binary with test/check-shipped-binary.sh).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

struct event_base;

namespace relaypro {

namespace ipc {
class Channel;
struct SelfTest;
struct SelfTestResult;
}  // namespace ipc

struct TestHooks {
    bool on = false;  // RELAYPRO_TEST_HOOKS=1: the hooks below that need it, and the workers' own
    // The heartbeat's interval instead of 60 s.
    std::optional<std::chrono::milliseconds> heartbeatInterval;
    // A pause just before an upgrade's re-exec, to send a signal into that window.
    std::chrono::milliseconds reexecPause{0};
    // The hand-over format check-config says it reads, standing in for an older build.
    std::optional<uint32_t> handoverFormat;
    // The "installed binary" an upgrade checks and executes, instead of this image's own path
    // (read even without RELAYPRO_TEST_HOOKS=1).
    std::string installedBinary;
    // A worker stops itself (SIGSTOP) at its start while this file exists.
    std::string holdFile;
    // A worker's first-flight queue (worker/server.h) takes a turn that would start now (the
    // queue was empty) this long after the connection that joins it, instead of as soon as the
    // loop gets to it: a wait made on purpose. Turns that follow one another are not held.
    std::chrono::milliseconds firstFlightHold{0};
    // The least time between two of a worker's "overloaded" lines, instead of a minute.
    std::optional<std::chrono::milliseconds> shedLogInterval;
    // A worker logs each admission window it judges (worker/admission.h), for a bench to read.
    bool admissionTrace = false;

    // Whether `variable` ("NAME=value") of the supervisor's environment passes on to its workers.
    [[nodiscard]] bool passesToWorkers(std::string_view variable) const;
};

// The hooks of this process (read at the first call).
const TestHooks& testHooks();

// In a worker, with hooks on: signals that act as a broken or compromised worker would
// (garbage on the channel, messages it may not send, floods, a descriptor shortage). Kept alive
// by the returned object; nullptr when hooks are off.
class WorkerTestHooks {
public:
    virtual ~WorkerTestHooks() = default;
};
std::unique_ptr<WorkerTestHooks> installWorkerTestHooks(event_base* base, ipc::Channel& channel,
                                                        const uint32_t& generation);

// In a worker, with hooks on: the sandbox's self-test (what it must forbid, tried for real);
// nothing when hooks are off, and the worker answers as to a message it does not know.
std::optional<ipc::SelfTestResult> runSandboxSelfTest(const ipc::SelfTest& request);

}  // namespace relaypro
