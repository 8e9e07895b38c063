// WorkerPoolCore's lifecycle without processes: generations, start timeouts, drains, stops,
// respawns, pings, the hand-over (the permission table: worker_pool_messages_test.cc).
#include "supervisor/worker_pool_core.h"

#include <gtest/gtest.h>
#include <sys/wait.h>

#include "test/unit/supervisor/worker_pool_fixture.h"

namespace relaypro::pool_test {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using WorkerPoolCoreTest = PoolCoreTest;

constexpr int kExited0 = 0;       // wait status: exit code 0
constexpr int kExited1 = 1 << 8;  // exit code 1
constexpr int kKilled = SIGKILL;  // signal 9

TEST_F(WorkerPoolCoreTest, AGenerationIsReadyWhenAllItsWorkersServe) {
    auto pids = generation(1, 3, false);
    EXPECT_EQ(io.spawnedFrom, (std::vector<int>{8, 8, 8}));
    EXPECT_EQ(io.startTimeouts.at(1), seconds(20));
    ready(pids[0]);
    ready(pids[1]);
    EXPECT_TRUE(readyGenerations.empty());
    EXPECT_EQ(core->serving(1), 2U);
    ready(pids[2]);
    EXPECT_EQ(readyGenerations, std::vector<uint32_t>{1});
    EXPECT_FALSE(io.startTimeouts.contains(1)) << "the start timeout is cancelled";
    EXPECT_EQ(log.count("worker started"), 3U);
}

TEST_F(WorkerPoolCoreTest, EachGenerationHasItsOwnStartTimeout) {
    generation(1, 1, false, seconds(20));
    auto second = generation(2, 2, false, milliseconds(1500));
    ready(second[0]);
    core->startTimedOut(2);
    ASSERT_EQ(failures.size(), 1U);
    EXPECT_EQ(failures[0], std::make_pair(2U, std::string("workers were not ready within 1500ms")));
    EXPECT_EQ(io.killed, second) << "the failed generation's workers, ready or not";
    EXPECT_TRUE(io.startTimeouts.contains(1));
    EXPECT_FALSE(io.startTimeouts.contains(2));
    core->startTimedOut(1);
    EXPECT_EQ(failures.back(), std::make_pair(1U, std::string("workers were not ready within 20s")));
    core->startTimedOut(1);  // a generation that has ended: nothing
    EXPECT_EQ(failures.size(), 2U);
}

// The metrics (review of issue 18): a worker's counters reach the registry and stay when it ends;
// a restart is a worker that is replaced, not one of a failed generation nor a drained one.
TEST_F(WorkerPoolCoreTest, CountersOutliveTheirWorkerAndOnlyReplacedWorkersAreRestarts) {
    MetricsRegistry metrics;
    WorkerPoolCore::Setup s = setup();
    s.metrics = &metrics;
    recreate(std::move(s));
    auto first = generation(1, 2);
    core->setCurrent(1);
    ipc::Counters c;
    c.values.emplace_back(static_cast<uint16_t>(counters::Id::TokensIssued), 3);
    from(first[0], c);
    EXPECT_EQ(metrics.total(counters::Id::TokensIssued), 3U);
    auto next = generation(2, 4, false);
    core->startTimedOut(2);  // the whole new generation is killed
    for (pid_t p : next) core->workerExited(p, kKilled);
    EXPECT_EQ(metrics.workerRestarts(), 0U) << "a failed upgrade replaces nothing";
    core->workerExited(first[0], kKilled);
    EXPECT_EQ(metrics.workerRestarts(), 1U);
    EXPECT_EQ(metrics.total(counters::Id::TokensIssued), 3U) << "its counts stay";
    core->drain(1, seconds(5));
    core->workerExited(first[1], 0);
    EXPECT_EQ(metrics.workerRestarts(), 1U) << "a drained worker is no restart";
}

TEST_F(WorkerPoolCoreTest, AFailedUpgradeGivesRespawnsTheRunningGenerationsExecutableBack) {
    auto first = generation(1, 2);
    core->setCurrent(1);
    auto next = generation(2, 2, false);
    core->workerExited(next[0], kExited1);
    ASSERT_EQ(failures.size(), 1U);
    EXPECT_EQ(failures[0].second, "a worker of the new generation exited before it was ready (exit code 1)");
    EXPECT_EQ(io.killed, std::vector<pid_t>{next[1]});
    // A worker of the running generation dies: its respawn uses that generation's executable.
    core->workerExited(first[0], kKilled);
    EXPECT_EQ(log.count("worker exited unexpectedly"), 2U);
    ASSERT_EQ(io.respawns.size(), 1U);
    core->respawnDue(io.respawns[0].first);
    EXPECT_EQ(io.spawnedFrom.back(), 8);
    EXPECT_EQ(core->worker(io.nextPid - 1)->generation, 1U);
}

TEST_F(WorkerPoolCoreTest, ASucceededUpgradeRespawnsFromTheNewExecutable) {
    generation(1, 1);
    core->setCurrent(1);
    auto next = generation(2, 1);
    core->setCurrent(2);
    core->drain(1, seconds(30));
    core->workerExited(next[0], kKilled);
    ASSERT_EQ(io.respawns.size(), 1U);
    core->respawnDue(0);
    EXPECT_EQ(io.spawnedFrom.back(), 9);
    EXPECT_EQ(core->worker(io.nextPid - 1)->generation, 2U);
}

TEST_F(WorkerPoolCoreTest, ADrainIsSentOnceUnlessItEndsSooner) {
    auto pids = generation(1, 2);
    core->drain(1, seconds(60));
    EXPECT_EQ(io.count(pids[0], MessageType::Drain), 1U);
    EXPECT_EQ(io.last<ipc::Drain>(pids[0])->graceMs, 60000U);
    io.clock += seconds(1);
    core->drain(1, seconds(60));  // a later deadline: nothing to say
    EXPECT_EQ(io.count(pids[0], MessageType::Drain), 1U);
    core->drain(1, seconds(5));  // a stop during the drain brings it forward
    EXPECT_EQ(io.count(pids[0], MessageType::Drain), 2U);
    EXPECT_EQ(io.last<ipc::Drain>(pids[0])->graceMs, 5000U);
    EXPECT_EQ(state(pids[1]), State::Draining);
}

// limits.drainSpread (issue 19): an upgrade's drain carries its spread; a stop during it is sent
// only when it ends sooner than the spread does.
TEST_F(WorkerPoolCoreTest, AnUpgradesDrainCarriesItsSpread) {
    auto pids = generation(1, 1);
    core->drain(1, seconds(2), seconds(4));
    EXPECT_EQ(io.count(pids[0], MessageType::Drain), 0U);
    ASSERT_EQ(io.count(pids[0], MessageType::DrainGradually), 1U);
    EXPECT_EQ(io.last<ipc::DrainGradually>(pids[0])->graceMs, 2000U);
    EXPECT_EQ(io.last<ipc::DrainGradually>(pids[0])->spreadMs, 4000U);
    io.clock += seconds(1);
    core->drain(1, seconds(15));  // a stop whose grace ends after the spread: nothing to say
    EXPECT_EQ(io.count(pids[0], MessageType::Drain), 0U);
    core->drain(1, seconds(3));  // ends before the spread would: all closed at its end
    ASSERT_EQ(io.count(pids[0], MessageType::Drain), 1U);
    EXPECT_EQ(io.last<ipc::Drain>(pids[0])->graceMs, 3000U);
}

// A worker of an earlier build does not know DrainGradually: it is sent Drain with what is left
// of the grace (it closes at the deadline, as it always did), and that is no fault.
TEST_F(WorkerPoolCoreTest, AnEarlierWorkerIsSentDrainInsteadOfDrainGradually) {
    auto pids = generation(1, 1);
    core->drain(1, seconds(10), seconds(60));
    io.clock += milliseconds(2500);
    from(pids[0], ipc::Unknown{static_cast<uint16_t>(MessageType::DrainGradually)});
    ASSERT_EQ(io.count(pids[0], MessageType::Drain), 1U);
    EXPECT_EQ(io.last<ipc::Drain>(pids[0])->graceMs, 7500U);
    from(pids[0], ipc::Unknown{static_cast<uint16_t>(MessageType::HandshakeBound)});
    from(pids[0], ipc::Unknown{static_cast<uint16_t>(MessageType::SourcePorts)});
    EXPECT_EQ(log.count("a worker did not understand a message"), 0U);
    EXPECT_EQ(log.count("replacing a worker"), 0U);
    EXPECT_EQ(state(pids[0]), State::Draining);
}

// limits.maxHandshakes travels in its own message after every settings snapshot.
TEST_F(WorkerPoolCoreTest, TheHandshakeBoundFollowsEverySettingsSnapshot) {
    auto pids = generation(1, 1);
    ASSERT_EQ(io.count(pids[0], MessageType::HandshakeBound), 1U);
    core->setHandshakeBound(7);
    ASSERT_EQ(io.count(pids[0], MessageType::HandshakeBound), 2U);
    EXPECT_EQ(io.last<ipc::HandshakeBound>(pids[0])->maxHandshakes, 7U);
    core->setHandshakeBound(7);  // unchanged: nothing to say
    EXPECT_EQ(io.count(pids[0], MessageType::HandshakeBound), 2U);
    core->pushSettings(std::make_shared<WorkerSettings>());  // a reload: the bound goes with it
    ASSERT_EQ(io.count(pids[0], MessageType::HandshakeBound), 3U);
    EXPECT_EQ(io.last<ipc::HandshakeBound>(pids[0])->maxHandshakes, 7U);
}

// limits.sourcePorts likewise.
TEST_F(WorkerPoolCoreTest, TheSourcePortsFollowEverySettingsSnapshot) {
    auto pids = generation(1, 1);
    ASSERT_EQ(io.count(pids[0], MessageType::SourcePorts), 1U);
    EXPECT_EQ(io.last<ipc::SourcePorts>(pids[0])->low, 0U);
    core->setSourcePorts(40000, 65535);
    ASSERT_EQ(io.count(pids[0], MessageType::SourcePorts), 2U);
    EXPECT_EQ(io.last<ipc::SourcePorts>(pids[0])->low, 40000U);
    EXPECT_EQ(io.last<ipc::SourcePorts>(pids[0])->high, 65535U);
    core->setSourcePorts(40000, 65535);  // unchanged: nothing to say
    EXPECT_EQ(io.count(pids[0], MessageType::SourcePorts), 2U);
    core->pushSettings(std::make_shared<WorkerSettings>());
    ASSERT_EQ(io.count(pids[0], MessageType::SourcePorts), 3U);
    EXPECT_EQ(io.last<ipc::SourcePorts>(pids[0])->high, 65535U);
}

TEST_F(WorkerPoolCoreTest, ADrainingWorkersChannelMayCloseAServingWorkersMayNot) {
    auto pids = generation(1, 2);
    core->drain(1, seconds(10));
    core->onChannelClosed(pids[0], "end of file");
    EXPECT_EQ(log.count("replacing a worker"), 0U);
    auto others = generation(2, 1);
    core->onChannelClosed(others[0], "end of file");
    EXPECT_EQ(replacedFor(), "its channel closed: end of file");
}

TEST_F(WorkerPoolCoreTest, HowAWorkersEndIsLoggedAndWhetherItIsReplaced) {
    auto pids = generation(1, 3);
    core->setCurrent(1);
    core->drain(1, seconds(10));
    core->workerExited(pids[0], kExited0);
    EXPECT_EQ(log.count("worker exited"), 1U);
    core->workerExited(pids[1], kKilled);
    EXPECT_EQ(log.count("draining worker ended abnormally"), 1U);
    EXPECT_EQ(log.field("draining worker ended abnormally", "status"), "signal Killed");
    EXPECT_TRUE(io.respawns.empty()) << "a draining worker is not replaced";
    EXPECT_EQ(io.closed, (std::vector<pid_t>{pids[0], pids[1]}));
}

TEST_F(WorkerPoolCoreTest, RespawnsBackOffUntilAWorkerWasStable) {
    auto pids = generation(1, 1);
    core->setCurrent(1);
    core->workerExited(pids[0], kKilled);
    core->respawnDue(0);
    core->workerExited(io.nextPid - 1, kKilled);
    core->respawnDue(0);
    io.clock += seconds(31);  // this one served long enough: the backoff starts again
    core->workerExited(io.nextPid - 1, kKilled);
    ASSERT_EQ(io.respawns.size(), 3U);
    EXPECT_EQ(io.respawns[0].second, milliseconds(100));
    EXPECT_EQ(io.respawns[1].second, milliseconds(200));
    EXPECT_EQ(io.respawns[2].second, milliseconds(100));
    // A respawn that cannot fork is tried again later.
    io.failSpawn = true;
    core->respawnDue(0);
    EXPECT_EQ(log.count("cannot respawn a worker"), 1U);
    EXPECT_EQ(io.respawns.back().second, milliseconds(200));
}

TEST_F(WorkerPoolCoreTest, AStopDrainsEveryGenerationAndEndsWhenTheLastWorkerIsGone) {
    auto old = generation(1, 1);
    auto current = generation(2, 2);
    core->setCurrent(2);
    bool allExited = false;
    core->stopAll(seconds(15), [&allExited] { allExited = true; });
    EXPECT_TRUE(io.respawnsCancelled);
    EXPECT_EQ(io.stopDeadlines, std::vector<milliseconds>{seconds(17)});
    EXPECT_EQ(io.count(old[0], MessageType::Drain), 1U);
    core->workerExited(old[0], kExited0);
    core->workerExited(current[0], kExited0);
    EXPECT_FALSE(allExited);
    core->stopDeadlinePassed();
    EXPECT_EQ(log.count("worker did not end within shutdownGrace; killed"), 1U);
    EXPECT_EQ(io.killed, std::vector<pid_t>{current[1]});
    core->workerExited(current[1], kKilled);
    EXPECT_TRUE(allExited);
    EXPECT_TRUE(io.respawns.empty());
    EXPECT_EQ(log.count("worker exited unexpectedly"), 0U) << "killed by the stop: expected";
}

TEST_F(WorkerPoolCoreTest, AStopWithoutWorkersEndsAtOnce) {
    bool allExited = false;
    core->stopAll(seconds(15), [&allExited] { allExited = true; });
    EXPECT_TRUE(allExited);
    EXPECT_TRUE(io.stopDeadlines.empty());
}

TEST_F(WorkerPoolCoreTest, AWorkerThatMissesTwoPingsWithTheCpuToAnswerIsReplaced) {
    auto pids = generation(1, 2);
    io.runQueueWait = 0;
    core->pingRound();
    from(pids[1], ipc::Pong{1, 0, 0, 0, 0});
    io.clock += seconds(1);
    core->pingRound();
    io.clock += seconds(1);
    core->pingRound();
    EXPECT_EQ(io.count(pids[0], MessageType::Ping), 2U);
    EXPECT_EQ(replacedFor(), "it missed two pings");
    EXPECT_EQ(state(pids[0]), State::Stopping);
    EXPECT_EQ(state(pids[1]), State::Serving);
}

TEST_F(WorkerPoolCoreTest, AWorkerWellAboveTheAverageHoldsItsAccepts) {
    auto pids = generation(1, 2);
    core->setCurrent(1);
    core->pingRound();
    from(pids[0], ipc::Pong{1, 1000, 0, 0, 0});
    from(pids[1], ipc::Pong{1, 10, 0, 0, 0});
    io.clock += seconds(1);
    core->pingRound();
    EXPECT_EQ(io.last<ipc::Balance>(pids[0])->holdMs, 2500U);
    EXPECT_FALSE(io.last<ipc::Balance>(pids[1]));
    EXPECT_EQ(log.count("a worker holds its accepts"), 1U);
}

TEST_F(WorkerPoolCoreTest, NewSecretsAndSettingsGoToTheWorkersThatCanUseThem) {
    auto pids = generation(1, 3);
    core->drain(1, seconds(10));
    auto serving = generation(2, 1);
    core->kill(1);
    const auto chunks = io.count(serving[0], MessageType::SettingsChunk);
    core->pushSettings(std::make_shared<WorkerSettings>());
    core->pushSecrets(WorkerSecrets{});
    EXPECT_EQ(io.count(serving[0], MessageType::SettingsChunk), 2 * chunks);
    EXPECT_EQ(io.count(serving[0], MessageType::Secrets), 2U);
    EXPECT_EQ(io.count(pids[0], MessageType::Secrets), 1U) << "stopping";
    // A worker whose channel is full is replaced.
    io.fullChannels.insert(serving[0]);
    core->pushSecrets(WorkerSecrets{});
    EXPECT_EQ(replacedFor(), "cannot send new secrets");
}

TEST_F(WorkerPoolCoreTest, TheHandOverGivesAwayTheLiveWorkersAndAdoptionTakesThemBack) {
    auto pids = generation(1, 3);
    core->setCurrent(1);
    from(pids[0], ipc::Pong{1, 0, 0, 40, 0});
    from(pids[2], ipc::Pong{1, 0, 0, 2, 0});
    core->kill(1);  // not the whole generation in real life; enough to be on the way out
    auto kept = generation(2, 1);
    core->setCurrent(2);
    io.openChannels = {kept[0]};
    auto handed = core->handover();
    ASSERT_EQ(handed.size(), 1U);
    EXPECT_EQ(handed[0].pid, kept[0]);
    EXPECT_EQ(handed[0].state, HandoverWorker::kServing);
    EXPECT_EQ(handed[0].channelFd, 1000 + kept[0]);
    EXPECT_EQ(handed[0].protocol, ipc::kProtocolVersion) << "from its HelloAck, for the next image";
    EXPECT_EQ(core->exitedTunnels(), 42U);
    EXPECT_EQ(core->alive(), 0U);

    recreate(setup());
    HandoverWorker starting{500, 2, 1, HandoverWorker::kStarting, 50, 0};
    handed.push_back(starting);
    const size_t bounds = io.count(kept[0], MessageType::HandshakeBound);
    const size_t ranges = io.count(kept[0], MessageType::SourcePorts);
    core->adopt(handed, 2, kExecutable, 3);
    // This image's limits.maxHandshakes and limits.sourcePorts, which the previous image may not
    // have known.
    EXPECT_EQ(io.count(kept[0], MessageType::HandshakeBound), bounds + 1);
    EXPECT_EQ(io.count(kept[0], MessageType::SourcePorts), ranges + 1);
    EXPECT_EQ(io.count(500, MessageType::SourcePorts), 1U);
    EXPECT_EQ(io.adopted.at(kept[0]), 1000 + kept[0]);
    EXPECT_EQ(state(kept[0]), State::Serving);
    EXPECT_EQ(core->worker(kept[0])->protocol, ipc::kProtocolVersion) << "so it is still balanced";
    from(kept[0], ipc::Pong{});
    EXPECT_EQ(state(kept[0]), State::Serving);
    // Slot 2 has no worker: it is respawned.
    ASSERT_EQ(io.respawns.size(), 1U);
    EXPECT_EQ(io.respawns[0].first, 2U);
    // An adopted starting worker's HelloAck went to the previous image.
    from(500, ipc::Ready{});
    EXPECT_EQ(replacedFor(), "it sent Ready while starting");
}

TEST_F(WorkerPoolCoreTest, ViewShowsAStoppingWorkerAsDraining) {
    auto pids = generation(1, 2, false);
    ready(pids[0]);
    core->kill(1);
    generation(2, 1, false);
    auto view = core->view();
    ASSERT_EQ(view.size(), 3U);
    EXPECT_EQ(view[0].state, "draining");
    EXPECT_EQ(view[2].state, "starting");
    EXPECT_STREQ(WorkerPoolCore::stateName(State::Stopping), "stopping");
}

}  // namespace
}  // namespace relaypro::pool_test
