// The shipped binary's test hooks: all off (test_hooks.h).
#include "common/test_hooks.h"
#include "ipc/messages.h"

namespace relaypro {

bool TestHooks::passesToWorkers(std::string_view) const {
    return false;
}

const TestHooks& testHooks() {
    static const TestHooks off;
    return off;
}

std::unique_ptr<WorkerTestHooks> installWorkerTestHooks(event_base*, ipc::Channel&, const uint32_t&) {
    return nullptr;
}

std::optional<ipc::SelfTestResult> runSandboxSelfTest(const ipc::SelfTest&) {
    return std::nullopt;
}

}  // namespace relaypro
