#include "ipc/channel.h"

#include <event2/event.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <vector>

namespace relaypro::ipc {
namespace {

struct Loop {
    event_base* base = event_base_new();
    ~Loop() { event_base_free(base); }
    void runOnce() { event_base_loop(base, EVLOOP_NONBLOCK); }
    template <typename F>
    bool until(F done) {
        for (int i = 0; i < 1000 && !done(); ++i) {
            event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
            if (!done()) ::usleep(1000);
        }
        return done();
    }
};

TEST(IpcChannel, CarriesFramesAndDescriptors) {
    Loop loop;
    auto pair = Channel::socketPair();
    ASSERT_TRUE(pair.ok());
    std::vector<Received> got;
    std::string closedReason;
    Channel a(
        loop.base, std::move(pair->first), [](Received&&) {}, [](const std::string&) {});
    Channel b(
        loop.base, std::move(pair->second), [&](Received&& r) { got.push_back(std::move(r)); },
        [&](const std::string& why) { closedReason = why; });
    int fds[2];
    ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    ASSERT_TRUE(a.send(Listeners{{ListenerKind::Https}}, 2, {fds[0]}));
    ASSERT_TRUE(a.send(Ping{1}, 2));
    ASSERT_TRUE(loop.until([&] { return got.size() == 2; }));
    EXPECT_EQ(got[0].header.type, MessageType::Listeners);
    ASSERT_EQ(got[0].fds.size(), 1u);
    // The received descriptor is the same pipe, and close-on-exec.
    ASSERT_EQ(::write(fds[1], "z", 1), 1);
    char c = 0;
    ASSERT_EQ(::read(got[0].fds[0].get(), &c, 1), 1);
    EXPECT_EQ(c, 'z');
    EXPECT_NE(::fcntl(got[0].fds[0].get(), F_GETFD) & FD_CLOEXEC, 0);
    Ping ping;
    EXPECT_TRUE(decodeBody(got[1].body, ping));
    EXPECT_EQ(ping.sequence, 1u);
    ::close(fds[0]);
    ::close(fds[1]);
    EXPECT_EQ(closedReason, "");
}

// A reaped worker's last frames (its final counters) are all read at once, however many it sent
// before it ended, and its end closes the channel without the closed handler (review of issue 18).
TEST(IpcChannel, ReadPendingTakesEverythingAGonePeerSent) {
    Loop loop;
    auto pair = Channel::socketPair();
    ASSERT_TRUE(pair.ok());
    std::vector<Received> got;
    bool closedHandler = false;
    {
        Channel a(
            loop.base, std::move(pair->first), [](Received&&) {}, [](const std::string&) {});
        for (uint64_t i = 0; i < 200; ++i) ASSERT_TRUE(a.send(Ping{i}, 1));
    }  // the peer is gone
    Channel b(
        loop.base, std::move(pair->second), [&](Received&& r) { got.push_back(std::move(r)); },
        [&](const std::string&) { closedHandler = true; });
    b.readPending();
    ASSERT_EQ(got.size(), 200U) << "more than one wake-up's worth (64)";
    Ping last;
    ASSERT_TRUE(decodeBody(got.back().body, last));
    EXPECT_EQ(last.sequence, 199U);
    EXPECT_FALSE(b.open());
    EXPECT_FALSE(closedHandler);
}

TEST(IpcChannel, ClosesOnMalformedOrOversizedFramesAndOnPeerExit) {
    Loop loop;
    for (int variant = 0; variant < 3; ++variant) {
        auto pair = Channel::socketPair();
        ASSERT_TRUE(pair.ok());
        std::string reason;
        int received = 0;
        UniqueFd raw = std::move(pair->first);
        Channel b(
            loop.base, std::move(pair->second), [&](Received&&) { ++received; },
            [&](const std::string& why) { reason = why; });
        if (variant == 0) {
            ASSERT_TRUE(sendFrame(raw.get(), "garbage-not-a-frame").ok());
        } else if (variant == 1) {
            ASSERT_TRUE(sendFrame(raw.get(), std::string(kMaxFrameBytes + 100, 'x')).ok());
        } else {
            raw.reset();
        }
        ASSERT_TRUE(loop.until([&] { return !reason.empty(); })) << variant;
        EXPECT_EQ(received, 0);
        EXPECT_FALSE(b.open());
        const char* expected[] = {"a malformed frame header", "a frame longer than", "the peer closed the channel"};
        EXPECT_EQ(reason.rfind(expected[variant], 0), 0u) << reason;
    }
}

TEST(IpcChannel, QueuesWhatTheSocketCannotTakeAndFlushesIt) {
    Loop loop;
    auto pair = Channel::socketPair();
    ASSERT_TRUE(pair.ok());
    int received = 0;
    Channel a(
        loop.base, std::move(pair->first), [](Received&&) {}, [](const std::string&) {});
    UniqueFd peer = std::move(pair->second);
    // Fill the socket: frames beyond its buffer wait in the queue.
    std::string big(kMaxBodyBytes, 'b');
    for (int i = 0; i < 64; ++i) ASSERT_TRUE(a.send(encodeFrame(MessageType::Log, 1, big)));
    EXPECT_GT(a.queuedBytes(), 0u);
    Channel b(
        loop.base, std::move(peer), [&](Received&&) { ++received; }, [](const std::string&) {});
    ASSERT_TRUE(loop.until([&] { return received == 64; }));
    EXPECT_EQ(a.queuedBytes(), 0u);
}

// sendAll: many frames in order, the ones the socket cannot take queued behind the rest, none
// lost, none reordered; an oversized frame stops the batch there and is reported as not taken.
TEST(IpcChannel, SendAllKeepsOrderAndQueuesWhatDoesNotFit) {
    Loop loop;
    auto pair = Channel::socketPair();
    ASSERT_TRUE(pair.ok());
    Channel a(
        loop.base, std::move(pair->first), [](Received&&) {}, [](const std::string&) {});
    UniqueFd peer = std::move(pair->second);
    std::vector<std::string> frames;
    for (int i = 0; i < 300; ++i) {
        frames.push_back(encodeFrame(MessageType::Log, 1, std::to_string(i) + std::string(8000, 'x')));
    }
    EXPECT_EQ(a.sendAll(frames), frames.size());
    EXPECT_GT(a.queuedBytes(), 0u);                                         // 2.4 MB do not fit in a socket buffer
    EXPECT_EQ(a.sendAll({encodeFrame(MessageType::Log, 1, "after")}), 1u);  // behind the queue
    std::vector<std::string> bodies;
    Channel b(
        loop.base, std::move(peer), [&](Received&& r) { bodies.push_back(r.body.substr(0, r.body.find('x'))); },
        [](const std::string&) {});
    ASSERT_TRUE(loop.until([&] { return bodies.size() == 301; }));
    for (size_t i = 0; i < 300; ++i) ASSERT_EQ(bodies[i], std::to_string(i));
    EXPECT_EQ(bodies[300], "after");
    EXPECT_EQ(a.queuedBytes(), 0u);

    std::vector<std::string> withOversized{encodeFrame(MessageType::Log, 1, "a"), std::string(kMaxFrameBytes + 1, 'o'),
                                           encodeFrame(MessageType::Log, 1, "c")};
    EXPECT_EQ(a.sendAll(withOversized), 1u);
}

}  // namespace
}  // namespace relaypro::ipc
