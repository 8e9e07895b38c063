#include "worker/tunnel.h"

#include <event2/event.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>

#include "common/unique_fd.h"

namespace relaypro {
namespace {

using namespace std::chrono_literals;

// A tunnel between two socketpairs on a real event_base: the test holds the client's and the
// upstream's far ends ("peers"), the tunnel the near ones.
class TunnelTest : public ::testing::Test {
protected:
    void SetUp() override {
        base_ = event_base_new();
        ASSERT_NE(base_, nullptr);
        connect(client_, clientPeer_);
        connect(upstream_, upstreamPeer_);
    }
    void TearDown() override {
        tunnel_.reset();
        event_base_free(base_);
    }

    static void connect(Stream& near, UniqueFd& peer) {
        int fds[2];
        ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
        near.attach(fds[0]);
        peer = UniqueFd(fds[1]);
    }

    void start(Tunnel::Plan plan = {}) {
        tunnel_ = std::make_unique<Tunnel>(base_, buffers_, client_, upstream_, std::move(plan),
                                           [this](std::string_view result) { end_ = std::string(result); });
        if (auto end = tunnel_->start()) end_ = std::string(*end);
    }

    // Turns the loop until `done` holds (false after about ten seconds: the test fails).
    bool runUntil(const std::function<bool()>& done) {
        for (int i = 0; i < 10000; ++i) {
            event_base_loop(base_, EVLOOP_NONBLOCK);
            if (done()) return true;
            std::this_thread::sleep_for(1ms);
        }
        return false;
    }

    // Everything a peer can read now; `eof` is set when its other side has ended its sending.
    static std::string readAll(const UniqueFd& peer, bool* eof = nullptr) {
        std::string out;
        char buf[65536];
        while (true) {
            ssize_t n = ::recv(peer.get(), buf, sizeof buf, 0);
            if (n > 0) {
                out.append(buf, static_cast<size_t>(n));
                continue;
            }
            if (n == 0 && eof != nullptr) *eof = true;
            return out;
        }
    }

    // As much of `data` as the socket takes now.
    static size_t writeSome(const UniqueFd& peer, std::string_view data) {
        ssize_t n = ::send(peer.get(), data.data(), data.size(), MSG_NOSIGNAL);
        return n > 0 ? static_cast<size_t>(n) : 0;
    }

    // The events the tunnel has added to the loop: (descriptor, what), -1 for a timer.
    std::set<std::pair<int, short>> addedEvents() {
        std::set<std::pair<int, short>> out;
        event_base_foreach_event(
            base_,
            [](const event_base*, const event* ev, void* arg) {
                short what = event_get_events(ev) & (EV_READ | EV_WRITE);
                static_cast<std::set<std::pair<int, short>>*>(arg)->emplace(event_get_fd(ev), what);
                return 0;
            },
            &out);
        return out;
    }

    event_base* base_ = nullptr;
    BufferPool buffers_;
    Stream client_, upstream_;
    UniqueFd clientPeer_, upstreamPeer_;
    std::unique_ptr<Tunnel> tunnel_;
    std::optional<std::string> end_;
};

std::string pattern(size_t size, unsigned seed) {
    std::string s(size, '\0');
    for (size_t i = 0; i < size; ++i) s[i] = static_cast<char>((i * 131 + seed) % 251);
    return s;
}

TEST_F(TunnelTest, RelaysBytesBothWaysEarlyBytesFirst) {
    Tunnel::Plan plan;
    plan.toUpstream = "early-";
    plan.toClient = "leftover-";
    start(std::move(plan));
    const std::string up = pattern(1 << 20, 1), down = pattern(1 << 20, 2);
    size_t upSent = 0, downSent = 0;
    std::string atUpstream, atClient;
    ASSERT_TRUE(runUntil([&] {
        upSent += writeSome(clientPeer_, std::string_view(up).substr(upSent));
        downSent += writeSome(upstreamPeer_, std::string_view(down).substr(downSent));
        atUpstream += readAll(upstreamPeer_);
        atClient += readAll(clientPeer_);
        return atUpstream.size() == up.size() + 6 && atClient.size() == down.size() + 9;
    }));
    EXPECT_EQ(atUpstream, "early-" + up);
    EXPECT_EQ(atClient, "leftover-" + down);
    EXPECT_EQ(tunnel_->bytesUp(), up.size() + 6);
    EXPECT_EQ(tunnel_->bytesDown(), down.size() + 9);
    EXPECT_FALSE(end_);
}

TEST_F(TunnelTest, PeerThatNeverReadsStopsTheReadingNotTheLoop) {
    start();
    // The client sends as fast as the tunnel takes it; the upstream reads nothing.
    const std::string chunk = pattern(64 * 1024, 3);
    size_t sent = 0;
    int quietRounds = 0;
    for (int i = 0; i < 10000 && quietRounds < 50; ++i) {
        size_t n = writeSome(clientPeer_, chunk);
        sent += n;
        event_base_loop(base_, EVLOOP_NONBLOCK);
        quietRounds = n == 0 ? quietRounds + 1 : 0;
    }
    ASSERT_EQ(quietRounds, 50) << "the tunnel kept taking bytes: " << sent;
    // Bounded: the socket buffers and one pooled buffer, nowhere near what was offered.
    EXPECT_LE(buffers_.inUse(), 1U);
    EXPECT_LT(sent, size_t{16} << 20);
    // Not spinning: the loop waits for the upstream becoming writable (and for its bytes, of
    // which none come); the client's unread bytes wake nothing, and no resume is pending.
    std::set<std::pair<int, short>> expected{{upstream_.fd(), EV_READ}, {upstream_.fd(), EV_WRITE}};
    EXPECT_EQ(addedEvents(), expected);
    // Once the upstream reads, everything arrives, in order.
    std::string atUpstream;
    ASSERT_TRUE(runUntil([&] {
        atUpstream += readAll(upstreamPeer_);
        return atUpstream.size() == sent;
    }));
    for (size_t off = 0; off < atUpstream.size(); off += chunk.size()) {
        ASSERT_EQ(atUpstream.compare(off, chunk.size(), chunk, 0, std::min(chunk.size(), atUpstream.size() - off)), 0);
    }
    EXPECT_EQ(tunnel_->bytesUp(), sent);
}

TEST_F(TunnelTest, HalfClosePassesOnAndTheOtherWayStaysOpen) {
    start();
    ASSERT_EQ(writeSome(clientPeer_, "last words"), 10U);
    ASSERT_EQ(::shutdown(clientPeer_.get(), SHUT_WR), 0);
    std::string atUpstream;
    bool upstreamEof = false;
    ASSERT_TRUE(runUntil([&] {
        atUpstream += readAll(upstreamPeer_, &upstreamEof);
        return upstreamEof;
    }));
    EXPECT_EQ(atUpstream, "last words");
    EXPECT_FALSE(end_);
    // The answer still flows down after the client's half-close.
    ASSERT_EQ(writeSome(upstreamPeer_, "answer"), 6U);
    std::string atClient;
    ASSERT_TRUE(runUntil([&] {
        atClient += readAll(clientPeer_);
        return atClient == "answer";
    }));
    EXPECT_FALSE(end_);
    // The upstream ends too: the tunnel ends, closed by the client, who ended first.
    ASSERT_EQ(::shutdown(upstreamPeer_.get(), SHUT_WR), 0);
    bool clientEof = false;
    ASSERT_TRUE(runUntil([&] {
        readAll(clientPeer_, &clientEof);
        return clientEof && end_;
    }));
    EXPECT_EQ(*end_, "closed_by_client");
    EXPECT_EQ(buffers_.inUse(), 0U);
    EXPECT_TRUE(addedEvents().empty());
}

TEST_F(TunnelTest, EndsWhenBothSidesHaveEnded) {
    start();
    ASSERT_EQ(::shutdown(upstreamPeer_.get(), SHUT_WR), 0);
    bool clientEof = false;
    ASSERT_TRUE(runUntil([&] {
        readAll(clientPeer_, &clientEof);
        return clientEof;
    }));
    EXPECT_FALSE(end_);
    ASSERT_EQ(::shutdown(clientPeer_.get(), SHUT_WR), 0);
    ASSERT_TRUE(runUntil([&] { return end_.has_value(); }));
    EXPECT_EQ(*end_, "closed_by_upstream");
    EXPECT_TRUE(addedEvents().empty());
}

TEST_F(TunnelTest, ASideThatIsGoneEndsIt) {
    start();
    upstreamPeer_.reset();
    ASSERT_EQ(writeSome(clientPeer_, "anyone?"), 7U);
    ASSERT_TRUE(runUntil([&] { return end_.has_value(); }));
    EXPECT_EQ(*end_, "upstream_reset");
    EXPECT_TRUE(addedEvents().empty());
    tunnel_.reset();
    EXPECT_EQ(buffers_.inUse(), 0U);
}

TEST_F(TunnelTest, ForwardSendsTheRequestOnlyAndEndsWithTheAnswer) {
    Tunnel::Plan plan;
    plan.mode = Tunnel::Mode::Forward;
    const std::string request = "GET / HTTP/1.1\r\nHost: console\r\n\r\n";
    plan.toUpstream = request;
    start(std::move(plan));
    ASSERT_EQ(writeSome(clientPeer_, "not forwarded"), 13U);
    std::string atUpstream;
    ASSERT_TRUE(runUntil([&] {
        atUpstream += readAll(upstreamPeer_);
        return atUpstream.size() >= request.size();
    }));
    ASSERT_EQ(writeSome(upstreamPeer_, "HTTP/1.1 200 OK\r\n\r\nbody"), 23U);
    ASSERT_EQ(::shutdown(upstreamPeer_.get(), SHUT_WR), 0);
    std::string atClient;
    bool clientEof = false;
    ASSERT_TRUE(runUntil([&] {
        atClient += readAll(clientPeer_, &clientEof);
        return clientEof && end_;
    }));
    EXPECT_EQ(*end_, "closed_by_upstream");
    EXPECT_EQ(atClient, "HTTP/1.1 200 OK\r\n\r\nbody");
    // The request alone went up, and the upstream's side was left open (no FIN after it).
    bool upstreamEof = false;
    atUpstream += readAll(upstreamPeer_, &upstreamEof);
    EXPECT_EQ(atUpstream, request);
    EXPECT_FALSE(upstreamEof);
}

TEST_F(TunnelTest, NothingMovingEndsItAfterTheQuietLimit) {
    Tunnel::Plan plan;
    plan.quietLimit = 20ms;
    start(std::move(plan));
    ASSERT_TRUE(runUntil([&] { return end_.has_value(); }));
    EXPECT_EQ(*end_, "idle_timeout");
}

TEST_F(TunnelTest, ASideThatTakesNothingEndsItWhileTheOtherWayMoves) {
    Tunnel::Plan plan;
    plan.quietLimit = 100ms;
    start(std::move(plan));
    const std::string chunk = pattern(64 * 1024, 4);
    // The upstream never reads but keeps talking, so the tunnel is never idle.
    ASSERT_TRUE(runUntil([&] {
        writeSome(clientPeer_, chunk);
        writeSome(upstreamPeer_, "x");
        readAll(clientPeer_);
        return end_.has_value();
    }));
    EXPECT_EQ(*end_, "send_timeout");
}

}  // namespace
}  // namespace relaypro
