// The permission table and the message handlers (supervisor/worker_pool_messages.cc).
#include <gtest/gtest.h>

#include <optional>

#include "test/unit/supervisor/worker_pool_fixture.h"

namespace relaypro::pool_test {
namespace {

using WorkerPoolMessagesTest = PoolCoreTest;

TEST_F(WorkerPoolMessagesTest, AWorkerStartsWithHelloAckThenReady) {
    auto pids = generation(1, 1, false);
    const pid_t p = pids[0];
    EXPECT_EQ(io.typesTo(p).front(), MessageType::Hello);
    EXPECT_EQ(io.typesTo(p).back(), MessageType::Start);
    from(p, ipc::HelloAck{ipc::kProtocolVersion, static_cast<uint32_t>(p)});
    EXPECT_EQ(state(p), State::Starting);
    EXPECT_EQ(core->worker(p)->protocol, ipc::kProtocolVersion);
    from(p, ipc::Ready{});
    EXPECT_EQ(state(p), State::Serving);
    EXPECT_EQ(log.count("worker ready"), 1U);
    EXPECT_TRUE(io.killed.empty());
}

TEST_F(WorkerPoolMessagesTest, ReadyBeforeHelloAckReplacesTheWorker) {
    const pid_t p = generation(1, 1, false)[0];
    from(p, ipc::Ready{});
    EXPECT_EQ(state(p), State::Stopping);
    EXPECT_EQ(replacedFor(), "it sent Ready while starting");
    EXPECT_EQ(io.killed, std::vector<pid_t>{p});
}

TEST_F(WorkerPoolMessagesTest, HelloAckIsPermittedOnce) {
    const pid_t p = generation(1, 1, false)[0];
    from(p, ipc::HelloAck{ipc::kProtocolVersion, static_cast<uint32_t>(p)});
    from(p, ipc::HelloAck{ipc::kProtocolVersion, static_cast<uint32_t>(p)});
    EXPECT_EQ(replacedFor(), "it sent HelloAck while starting");
}

TEST_F(WorkerPoolMessagesTest, AMalformedOrForeignHelloAckReplacesTheWorker) {
    auto pids = generation(1, 2, false);
    from(pids[0], ipc::HelloAck{ipc::kProtocolVersion, 4242});  // another process's pid
    EXPECT_EQ(replacedFor(), "a malformed HelloAck");
    from(pids[1], ipc::HelloAck{0, static_cast<uint32_t>(pids[1])});
    EXPECT_EQ(replacedFor(), "an unsupported IPC protocol version");
    EXPECT_EQ(io.killed, pids);
}

TEST_F(WorkerPoolMessagesTest, EachStatePermitsItsOwnMessages) {
    auto pids = generation(1, 1, false);
    const pid_t p = pids[0];
    from(p, ipc::Pong{});  // no pings before it serves
    EXPECT_EQ(replacedFor(), "it sent Pong while starting");

    const pid_t q = generation(2, 1)[0];
    from(q, ipc::Pong{1, 5, 2, 9});
    from(q, ipc::VerifyRequest{1, "r", "c", "s"});
    from(q, ipc::AuthFailure{"s"});
    from(q, ipc::CountFailure{2, "s"});
    EXPECT_EQ(state(q), State::Serving);
    from(q, ipc::Hello{});  // the supervisor's own message
    EXPECT_EQ(replacedFor(), "it sent Hello while serving");

    const pid_t d = generation(3, 1)[0];
    core->drain(3, std::chrono::seconds(10));
    from(d, ipc::Pong{});
    from(d, ipc::VerifyRequest{1, "r", "c", "s"});  // requests in flight finish while it drains
    from(d, ipc::CountFailure{2, "s"});
    EXPECT_EQ(state(d), State::Draining);
    from(d, ipc::Ready{});
    EXPECT_EQ(replacedFor(), "it sent Ready while draining");
}

TEST_F(WorkerPoolMessagesTest, AStoppingWorkerMayOnlyAnswerPingsAndIsNotReplacedTwice) {
    const pid_t p = generation(1, 1)[0];
    core->kill(1);
    EXPECT_EQ(state(p), State::Stopping);
    from(p, ipc::Pong{});
    from(p, ipc::Log{});
    from(p, ipc::VerifyRequest{1, "r", "c", "s"});  // not permitted, but it is on its way out already
    EXPECT_EQ(log.count("replacing a worker"), 0U);
    EXPECT_EQ(io.killed, std::vector<pid_t>{p});
    EXPECT_EQ(io.count(p, MessageType::VerifyAnswer), 0U);
}

TEST_F(WorkerPoolMessagesTest, LogAndUnknownArePermittedInEveryState) {
    const pid_t p = generation(1, 1, false)[0];
    ipc::Log record;
    record.record.msg = "hello";
    record.record.pid = 1;  // the record does not get to say who sent it
    record.record.component = "supervisor";
    from(p, record);
    ASSERT_EQ(workerLog.records.size(), 1U);
    EXPECT_EQ(workerLog.records[0].pid, p);
    EXPECT_EQ(workerLog.records[0].component, "worker");
    from(p, ipc::Unknown{99});
    EXPECT_EQ(log.count("a worker did not understand a message"), 1U);
    EXPECT_EQ(state(p), State::Starting);
}

TEST_F(WorkerPoolMessagesTest, TheSelfTestResultIsPermittedOnlyAfterASelfTest) {
    const pid_t p = generation(1, 1)[0];
    from(p, ipc::SelfTestResult{"x=ok"});
    EXPECT_EQ(replacedFor(), "it sent SelfTestResult while serving");

    recreate(setup(true));
    const pid_t q = generation(2, 1)[0];
    auto selfTest = io.last<ipc::SelfTest>(q);
    ASSERT_TRUE(selfTest);
    EXPECT_EQ(selfTest->supervisorPid, static_cast<uint32_t>(::getpid()));
    from(q, ipc::SelfTestResult{"x=ok"});
    EXPECT_EQ(log.field("sandbox self-test", "report"), "x=ok");
    EXPECT_EQ(state(q), State::Serving);
}

TEST_F(WorkerPoolMessagesTest, WhatEveryMessageMustBeBeforeTheTable) {
    auto pids = generation(1, 3);
    core->onMessage(pids[0], received(ipc::Pong{}, 2));
    EXPECT_EQ(replacedFor(), "it sent a message of another generation");
    auto withFd = received(ipc::Pong{}, 1);
    withFd.fds.emplace_back(::dup(0));
    core->onMessage(pids[1], std::move(withFd));
    EXPECT_EQ(replacedFor(), "it sent file descriptors");
    // A type this build does not know is answered, not punished (a newer worker).
    auto newer = received(ipc::Pong{}, 1);
    newer.header.type = static_cast<MessageType>(ipc::kLastMessageType + 1);
    core->onMessage(pids[2], std::move(newer));
    ASSERT_TRUE(io.last<ipc::Unknown>(pids[2]));
    EXPECT_EQ(io.last<ipc::Unknown>(pids[2])->type, ipc::kLastMessageType + 1);
    EXPECT_EQ(state(pids[2]), State::Serving);
    // A malformed body of a permitted type replaces it.
    auto bad = received(ipc::Pong{}, 1);
    bad.body += "x";
    core->onMessage(pids[2], std::move(bad));
    EXPECT_EQ(replacedFor(), "a malformed Pong");
}

TEST_F(WorkerPoolMessagesTest, VerificationsWithoutAConsoleAreNotRegisteredAndTheRateCounts) {
    const pid_t p = generation(1, 1)[0];
    from(p, ipc::VerifyRequest{1, "r", "c", "s"});
    from(p, ipc::VerifyRequest{2, "r", "c", "s"});
    from(p, ipc::VerifyRequest{3, "r", "c", "s"});  // two a minute
    ASSERT_EQ(io.count(p, MessageType::VerifyAnswer), 3U);
    EXPECT_EQ(io.last<ipc::VerifyAnswer>(p)->result, ipc::VerifyAnswer::Result::RateLimited);
    EXPECT_EQ(io.last<ipc::VerifyAnswer>(p)->retryAfterSeconds, 30U);
}

TEST_F(WorkerPoolMessagesTest, AnAnswerGoesBackOnlyToTheWorkerThatAsked) {
    std::vector<WorkerPoolCore::VerifyDone> waiting;
    auto s = setup();
    s.verify = [&waiting](const ipc::VerifyRequest&, WorkerPoolCore::VerifyDone done) {
        waiting.push_back(std::move(done));
    };
    recreate(std::move(s));
    auto pids = generation(1, 2);
    from(pids[0], ipc::VerifyRequest{1, "r", "c", "s"});
    from(pids[0], ipc::VerifyRequest{1, "r", "c", "s"});  // asked again while in flight: ignored
    from(pids[1], ipc::VerifyRequest{1, "r", "c", "t"});
    ASSERT_EQ(waiting.size(), 2U);
    core->workerExited(pids[1], 9);
    waiting[1](ipc::VerifyAnswer::Result::Valid, 0);
    EXPECT_EQ(io.count(pids[1], MessageType::VerifyAnswer), 0U);
    waiting[0](ipc::VerifyAnswer::Result::Valid, 0);
    ASSERT_TRUE(io.last<ipc::VerifyAnswer>(pids[0]));
    EXPECT_EQ(io.last<ipc::VerifyAnswer>(pids[0])->result, ipc::VerifyAnswer::Result::Valid);
    EXPECT_EQ(core->worker(pids[0])->auth.verifying, 0U);
}

TEST_F(WorkerPoolMessagesTest, ABlockedSourceIsToldToEveryServingWorkerBeforeTheFailureIsCounted) {
    auto pids = generation(1, 2);
    const pid_t starting = generation(2, 1, false)[0];
    from(pids[0], ipc::CountFailure{7, "s"});
    EXPECT_EQ(io.count(pids[1], MessageType::SourceBlocked), 0U);
    from(pids[0], ipc::CountFailure{8, "s"});  // the second of two a minute empties the bucket
    EXPECT_EQ(io.count(pids[1], MessageType::SourceBlocked), 1U);
    EXPECT_EQ(io.count(starting, MessageType::SourceBlocked), 0U);
    auto types = io.typesTo(pids[0]);
    ASSERT_GE(types.size(), 2U);
    EXPECT_EQ(types[types.size() - 2], MessageType::SourceBlocked);
    EXPECT_EQ(types.back(), MessageType::FailureCounted);
    EXPECT_EQ(io.last<ipc::FailureCounted>(pids[0])->ticket, 8U);
    EXPECT_EQ(io.last<ipc::SourceBlocked>(pids[1])->retryAfterMs, 30000U);
    // Reports of a source already blocked are answered to their worker only: 10,000 of them from
    // one worker cost the others nothing (they cost 10,000 messages to each, review of issue 17).
    for (uint64_t t = 100; t < 10100; ++t) from(pids[0], ipc::CountFailure{t, "s"});
    EXPECT_EQ(io.count(pids[1], MessageType::SourceBlocked), 1U);
    EXPECT_EQ(io.count(pids[0], MessageType::SourceBlocked), 10001U);
    EXPECT_EQ(io.count(pids[0], MessageType::FailureCounted), 10002U);
}

// status --tunnels: chunks go to the listing; Unknown to a TunnelListRequest is "no list";
// a malformed chunk replaces the worker; only serving and draining workers are asked.
TEST_F(WorkerPoolMessagesTest, TunnelListsReachTheListingAndAMalformedOneReplacesTheWorker) {
    std::vector<std::pair<pid_t, std::optional<size_t>>> got;  // rows, or nullopt for "no list"
    core->onTunnelLists([&](pid_t pid, const ipc::TunnelList* list) {
        got.emplace_back(pid, list != nullptr ? std::optional<size_t>(list->rows.size()) : std::nullopt);
    });
    const pid_t starting = generation(1, 1, false)[0];
    EXPECT_FALSE(core->askTunnels(starting, ipc::TunnelListRequest{1, 0, 10}));
    auto pids = generation(2, 3);
    ASSERT_TRUE(core->askTunnels(pids[0], ipc::TunnelListRequest{1, 0, 10}));
    EXPECT_EQ(io.typesTo(pids[0]).back(), MessageType::TunnelListRequest);
    ipc::TunnelRow row;
    row.auth = ipc::TunnelRow::Auth::Basic;
    row.identity = "u";
    row.source = "127.0.0.1:5";
    row.targetPort = 443;
    from(pids[0], ipc::TunnelList{1, 0, 0, true, {row, row}});
    from(pids[1], ipc::Unknown{static_cast<uint16_t>(MessageType::TunnelListRequest)});
    ASSERT_EQ(got.size(), 2U);
    EXPECT_EQ(got[0], std::make_pair(pids[0], std::optional<size_t>(2)));
    EXPECT_EQ(got[1], std::make_pair(pids[1], std::optional<size_t>()));
    EXPECT_EQ(log.count("a worker did not understand a message"), 0U);
    row.targetPort = 0;
    from(pids[2], ipc::TunnelList{1, 0, 0, true, {row}});
    EXPECT_EQ(replacedFor(), "a malformed TunnelList");
    EXPECT_EQ(got.size(), 2U);
    EXPECT_FALSE(core->askTunnels(pids[2], ipc::TunnelListRequest{2, 0, 10}));  // stopping now
}

}  // namespace
}  // namespace relaypro::pool_test
