// WorkerPoolCore's read path: the permission table (what a worker may send in each of its
// states, once or after what) and the handler of each message it permits.
#include <unistd.h>

#include "supervisor/worker_pool_core.h"

namespace relaypro {
namespace {

using State = WorkerPoolCore::State;

// A set of worker states, for the permission table.
constexpr uint8_t in(State s) {
    return static_cast<uint8_t>(1U << static_cast<unsigned>(s));
}
constexpr uint8_t kAnyState = in(State::Starting) | in(State::Serving) | in(State::Draining) | in(State::Stopping);

}  // namespace

// One line of the permission table (OpenSSH monitor.c's mon_table): a message type, the worker
// states in which it may arrive, whether it may arrive only once (MON_ONCE), what must have
// happened before, and its handler.
struct WorkerPoolCore::MessageRule {
    enum class Needs : uint8_t { Nothing, HelloAck, SelfTestSent };
    ipc::MessageType type;
    uint8_t states;
    bool once;
    Needs needs;
    void (WorkerPoolCore::*handle)(Worker&, const ipc::Received&);
};

// Every message a worker may send, and when. A type that is not here (the supervisor's own
// messages) is never permitted. Requests in flight finish while a worker drains, token
// requests included; a worker being stopped may only answer pings.
const WorkerPoolCore::MessageRule* WorkerPoolCore::ruleFor(ipc::MessageType type) {
    using T = ipc::MessageType;
    using Needs = MessageRule::Needs;
    constexpr uint8_t kWorking = in(State::Serving) | in(State::Draining);
    static const MessageRule kRules[] = {
        {T::HelloAck, in(State::Starting), true, Needs::Nothing, &WorkerPoolCore::onHelloAck},
        {T::Ready, in(State::Starting), false, Needs::HelloAck, &WorkerPoolCore::onReady},
        {T::Pong, kWorking | in(State::Stopping), false, Needs::Nothing, &WorkerPoolCore::onPong},
        {T::Log, kAnyState, false, Needs::Nothing, &WorkerPoolCore::onLog},
        {T::VerifyRequest, kWorking, false, Needs::Nothing, &WorkerPoolCore::onVerifyRequest},
        {T::Unknown, kAnyState, false, Needs::Nothing, &WorkerPoolCore::onUnknown},
        {T::SelfTestResult, in(State::Serving), false, Needs::SelfTestSent, &WorkerPoolCore::onSelfTestResult},
        {T::AuthFailure, kWorking, false, Needs::Nothing, &WorkerPoolCore::onAuthFailure},
        {T::CountFailure, kWorking, false, Needs::Nothing, &WorkerPoolCore::onCountFailure},
        {T::TunnelList, kWorking | in(State::Stopping), false, Needs::Nothing, &WorkerPoolCore::onTunnelList},
        // After each Pong, and once more as the worker exits (then it may be any state).
        {T::Counters, kAnyState, false, Needs::Nothing, &WorkerPoolCore::onCounters},
    };
    for (const MessageRule& rule : kRules) {
        if (rule.type == type) return &rule;
    }
    return nullptr;
}

bool WorkerPoolCore::permits(const MessageRule& rule, const Worker& w) {
    if ((rule.states & in(w.state)) == 0) return false;
    if (rule.once && w.accepted.test(static_cast<uint16_t>(rule.type))) return false;
    using Needs = MessageRule::Needs;
    switch (rule.needs) {
        case Needs::Nothing:
            return true;
        case Needs::HelloAck:
            return w.accepted.test(static_cast<uint16_t>(ipc::MessageType::HelloAck));
        case Needs::SelfTestSent:
            return w.selfTestSent;
    }
    return false;
}

// The one read path: checks that hold for every message, then the permission table.
void WorkerPoolCore::onMessage(pid_t pid, ipc::Received&& r) {
    auto it = workers_.find(pid);
    if (it == workers_.end()) return;
    Worker& w = *it->second;
    if (r.header.generation != w.generation) return replace(w, "it sent a message of another generation");
    if (!r.fds.empty()) return replace(w, "it sent file descriptors");
    // A type this build does not know: not a violation by itself (a newer worker), answered.
    const auto type = static_cast<uint16_t>(r.header.type);
    if (type < 1 || type > ipc::kLastMessageType) {
        (void)send(w, ipc::Unknown{type});  // a courtesy: nothing waits for it
        return;
    }
    const MessageRule* rule = ruleFor(r.header.type);
    if (rule == nullptr || !permits(*rule, w)) {
        return replace(
            w, std::string("it sent ") + std::string(ipc::messageName(r.header.type)) + " while " + stateName(w.state));
    }
    w.accepted.set(type);
    (this->*rule->handle)(w, r);
}

void WorkerPoolCore::onHelloAck(Worker& w, const ipc::Received& r) {
    ipc::HelloAck m;
    if (!ipc::decodeBody(r.body, m) || m.pid != static_cast<uint32_t>(w.pid)) return replace(w, "a malformed HelloAck");
    if (m.protocolVersion < ipc::kOldestProtocolVersion) return replace(w, "an unsupported IPC protocol version");
    w.protocol = m.protocolVersion;
}

void WorkerPoolCore::onReady(Worker& w, const ipc::Received& r) {
    ipc::Ready m;
    if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed Ready");
    w.state = State::Serving;
    log_.info("worker ready", {{"workerPid", w.pid}, {"generation", w.generation}});
    if (setup_.testHooks && !w.selfTestSent) {
        w.selfTestSent = true;
        ipc::SelfTest t = setup_.selfTest;
        t.supervisorPid = static_cast<uint32_t>(::getpid());
        (void)send(w, t);  // test builds: a self-test not sent is a report missing from the log
    }
    auto p = pending_.find(w.generation);
    if (p != pending_.end() && --p->second.waiting == 0) {
        Pending done = std::move(p->second);
        const uint32_t generation = p->first;
        pending_.erase(p);
        io_.cancelStartTimeout(generation);
        if (done.onReady) done.onReady();
    }
}

void WorkerPoolCore::onPong(Worker& w, const ipc::Received& r) {
    ipc::Pong m;
    if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed Pong");
    w.outstandingPings = 0;
    w.firstUnanswered = {};
    w.stats = m;
}

void WorkerPoolCore::onCounters(Worker& w, const ipc::Received& r) {
    ipc::Counters m;
    if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed Counters");
    if (setup_.metrics != nullptr) setup_.metrics->workerReported(w.pid, m);
}

void WorkerPoolCore::onLog(Worker& w, const ipc::Received& r) {
    ipc::Log m;
    if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed Log record");
    // Who sent it is known here; the record does not get to say otherwise.
    m.record.pid = w.pid;
    m.record.component = "worker";
    if (workerLog_ != nullptr) workerLog_->write(m.record);
}

void WorkerPoolCore::onVerifyRequest(Worker& w, const ipc::Received& r) {
    ipc::VerifyRequest m;
    if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed VerifyRequest");
    verifyRequested(w, std::move(m));
}

void WorkerPoolCore::onAuthFailure(Worker& w, const ipc::Received& r) {
    ipc::AuthFailure m;
    if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed AuthFailure");
    failureReported(w, m.source);
}

void WorkerPoolCore::onCountFailure(Worker& w, const ipc::Received& r) {
    ipc::CountFailure m;
    if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed CountFailure");
    failureReported(w, m.source);
    // After any SourceBlocked of that failure: the worker answers its client only now.
    // Unsent (a worker that does not read), its client's own deadline ends the wait.
    (void)send(w, ipc::FailureCounted{m.ticket});
}

void WorkerPoolCore::onSelfTestResult(Worker& w, const ipc::Received& r) {
    ipc::SelfTestResult m;
    if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed SelfTestResult");
    log_.info("sandbox self-test", {{"workerPid", w.pid}, {"report", m.report}});
}

void WorkerPoolCore::onUnknown(Worker& w, const ipc::Received& r) {
    ipc::Unknown m;
    // A worker of an earlier build does not know these, which is not a fault.
    switch (ipc::decodeBody(r.body, m) ? static_cast<ipc::MessageType>(m.type) : ipc::MessageType::Unknown) {
        case ipc::MessageType::TunnelListRequest:  // it has no tunnel list
            if (tunnelLists_) tunnelLists_(w.pid, nullptr);
            return;
        case ipc::MessageType::HandshakeBound:  // it accepts without the bound
        case ipc::MessageType::SourcePorts:     // connect() chooses its source ports
            return;
        case ipc::MessageType::DrainGradually: {  // it drains the way it knows: all at once at the end
            if (w.state != State::Draining) return;
            auto left = std::chrono::ceil<std::chrono::milliseconds>(w.drainDeadline - io_.now());
            (void)send(w, ipc::Drain{static_cast<uint64_t>(std::max<int64_t>(0, left.count()))});
            return;
        }
        default:
            break;
    }
    log_.warn("a worker did not understand a message", {{"workerPid", w.pid}});
}

void WorkerPoolCore::onTunnelList(Worker& w, const ipc::Received& r) {
    ipc::TunnelList m;
    if (!ipc::decodeBody(r.body, m)) return replace(w, "a malformed TunnelList");
    // Whether it was asked for, and is the chunk asked for, the listing decides.
    if (tunnelLists_) tunnelLists_(w.pid, &m);
}

bool WorkerPoolCore::askTunnels(pid_t pid, const ipc::TunnelListRequest& request) {
    auto it = workers_.find(pid);
    if (it == workers_.end()) return false;
    const Worker& w = *it->second;
    if (w.state != State::Serving && w.state != State::Draining) return false;
    return send(w, request);
}

// The token endpoint's per-source rate is counted by the AuthenticationCounter; then the console
// client decides. The answer goes back to the worker if it is still there.
void WorkerPoolCore::verifyRequested(Worker& w, ipc::VerifyRequest&& m) {
    using Admission = AuthenticationCounter::Admission;
    const pid_t pid = w.pid;
    const uint32_t generation = w.generation;
    const uint64_t ticket = m.ticket;
    const uint64_t cap = AuthenticationCounter::verifyCap(setup_.settings->maxConnections);
    const auto admitted = authentication_.admitVerification(w.auth, pid, ticket, m.source, cap,
                                                            setup_.settings->limits.tokenRequestsPerMinute, io_.now());
    if (admitted.admission == Admission::Repeat) return;
    if (admitted.admission == Admission::OverCap) {
        if (admitted.logCap) {
            log_.warn(
                "a worker asks for more token verifications at once than it has connections; the rest are refused",
                {{"workerPid", pid}, {"cap", static_cast<int64_t>(cap)}});
        }
        (void)send(w, ipc::VerifyAnswer{ticket, ipc::VerifyAnswer::Result::ConsoleUnavailable, 5});  // as below
        return;
    }
    auto answer = [this, pid, generation, ticket](ipc::VerifyAnswer::Result result, uint32_t retryAfter) {
        auto it = workers_.find(pid);
        const bool there = it != workers_.end() && it->second->generation == generation;
        authentication_.verificationEnded(pid, ticket, there ? &it->second->auth : nullptr);
        // Unsent (a worker that does not read), the token request's own deadline answers its client.
        if (there) (void)send(*it->second, ipc::VerifyAnswer{ticket, result, retryAfter});
    };
    if (admitted.admission == Admission::RateLimited) {
        return answer(ipc::VerifyAnswer::Result::RateLimited, admitted.retryAfterSeconds);
    }
    if (!setup_.verify) return answer(ipc::VerifyAnswer::Result::NotRegistered, 60);
    setup_.verify(m, std::move(answer));
}

void WorkerPoolCore::failureReported(Worker& w, const std::string& source) {
    const auto counted =
        authentication_.failureReported(w.auth, source, setup_.settings->limits.tokenRequestsPerMinute, io_.now());
    if (counted.capPassed) {
        log_.warn(
            "a worker reports more authentication failures than it may; the rest of this second's are not counted",
            {{"workerPid", w.pid}, {"cap", AuthenticationCounter::kMaxFailuresPerSecond}});
    }
    if (!counted.blockedSeconds) return;
    const uint32_t wait = *counted.blockedSeconds;
    if (!counted.newlyBlocked) {
        (void)send(w, ipc::SourceBlocked{source, wait * 1000});  // as below
        return;
    }
    for (auto& [pid, other] : workers_) {
        // A worker that does not read misses it; the failures it reports are still counted here.
        if (other->state == State::Serving) (void)send(*other, ipc::SourceBlocked{source, wait * 1000});
    }
}

}  // namespace relaypro
