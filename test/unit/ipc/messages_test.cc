#include "ipc/messages.h"

#include <gtest/gtest.h>

#include <cstring>

namespace relaypro::ipc {
namespace {

// Encodes m, checks it decodes to an equal encoding, and that one byte less or one byte more is
// refused.
template <typename M>
void roundTrip(const M& m) {
    Writer w;
    m.encode(w);
    std::string body = w.data();
    M back;
    ASSERT_TRUE(decodeBody(body, back)) << messageName(M::kType);
    Writer again;
    back.encode(again);
    EXPECT_EQ(again.data(), body) << messageName(M::kType);
    M shortOne, longOne;
    if (!body.empty()) {
        EXPECT_FALSE(decodeBody(std::string_view(body).substr(0, body.size() - 1), shortOne)) << messageName(M::kType);
    }
    EXPECT_FALSE(decodeBody(body + "x", longOne)) << messageName(M::kType);
}

TEST(IpcMessages, EveryMessageRoundTripsAndRejectsShortAndLongBodies) {
    roundTrip(Hello{kProtocolVersion, 3});
    roundTrip(HelloAck{kProtocolVersion, 4242});
    roundTrip(SettingsChunk{7, 1, 3, "chunk"});
    Secrets secrets;
    secrets.secrets.tls = {"-----BEGIN CERTIFICATE-----", "-----BEGIN PRIVATE KEY-----"};
    secrets.secrets.ticketKeys.push_back({490000, {}});
    secrets.secrets.ticketKeys.push_back({489999, {}});
    secrets.secrets.ticketKeys[0].bytes.fill(7);
    secrets.secrets.masters.push_back({20416, {}});
    secrets.secrets.masters[0].key.fill(9);
    roundTrip(secrets);
    roundTrip(Listeners{{ListenerKind::Https, ListenerKind::Http}});
    roundTrip(Start{});
    roundTrip(Ready{});
    roundTrip(Stop{});
    roundTrip(SelfTest{{"/etc/relay/config.yml", "/x"}, "/run/control.sock", 42});
    roundTrip(Ping{99});
    roundTrip(Pong{99, 1, 2, 3, 4});
    roundTrip(Drain{15000});
    roundTrip(DrainGradually{2000, 4000});
    roundTrip(HandshakeBound{1024});
    roundTrip(SourcePorts{40000, 65535});
    Log log;
    log.record.time = std::chrono::system_clock::time_point(std::chrono::microseconds(1795960420123456LL));
    log.record.level = LogLevel::Warn;
    log.record.msg = "tunnel closed";
    log.record.component = "worker";
    log.record.pid = 4242;
    log.record.fields = {
        {"client", "203.0.113.7:1"}, {"bytesUp", uint64_t{5}}, {"delta", -3}, {"ok", true}, {"ratio", 0.25}};
    roundTrip(log);
    roundTrip(VerifyRequest{1, "asset-42", "credential", "4\x7f\x00\x00\x01"});
    roundTrip(VerifyAnswer{1, VerifyAnswer::Result::ConsoleUnavailable, 5});
    roundTrip(Unknown{0x7777});
    roundTrip(SelfTestResult{"open=denied\n"});
    roundTrip(AuthFailure{"4\x7f\x00\x00\x01"});
    roundTrip(SourceBlocked{"4\x7f\x00\x00\x01", 20000});
    roundTrip(CountFailure{7, "4\x7f\x00\x00\x01"});
    roundTrip(FailureCounted{7});
    roundTrip(Balance{1500});
    roundTrip(Balance{0});
}

TEST(IpcMessages, DecodersRejectValuesOutOfRange) {
    SettingsChunk c;
    EXPECT_FALSE(
        decodeBody(std::string_view("\x01\x00\x00\x00\x03\x00\x03\x00\x00\x00\x00\x00", 12), c));  // index == count
    Listeners l;
    Writer w;
    w.u32(1);
    w.u8(2);  // no such listener kind
    EXPECT_FALSE(decodeBody(w.data(), l));
    Writer many;
    many.u32(1000);  // more listeners than descriptors a frame may carry
    EXPECT_FALSE(decodeBody(many.data(), l));
    VerifyAnswer a;
    Writer bad;
    bad.u64(1);
    bad.u8(9);
    bad.u32(0);
    EXPECT_FALSE(decodeBody(bad.data(), a));
    HelloAck ack;
    EXPECT_FALSE(decodeBody(std::string_view("\x01\x00\x00\x00\x00\x00", 6), ack));  // pid 0
    Writer hugeString;
    hugeString.u32(0xFFFFFFFF);
    SelfTestResult r;
    EXPECT_FALSE(decodeBody(hugeString.data(), r));
    Log log;
    Writer badLevel;
    badLevel.u8(9);
    EXPECT_FALSE(decodeBody(badLevel.data(), log));
    // Found by fuzzing: a time the clock cannot hold (it counts nanoseconds in 64 bits).
    Log far;
    far.record.component = "worker";
    far.record.pid = 1;
    Writer w2;
    far.encode(w2);
    std::string body = w2.data();
    int64_t huge = 8463453595523821056LL;
    std::memcpy(body.data() + 1, &huge, 8);
    EXPECT_FALSE(decodeBody(body, log));
    Balance balance;
    Writer longHold;
    longHold.u32(Balance::kMaxHoldMs + 1);
    EXPECT_FALSE(decodeBody(longHold.data(), balance));
    Writer holdAndMore;
    holdAndMore.u32(1);
    holdAndMore.u8(0);
    EXPECT_FALSE(decodeBody(holdAndMore.data(), balance));
}

TEST(IpcMessages, FrameHeadersMustMatchTheirDatagram) {
    std::string f = frame(Ping{5}, 3);
    auto h = decodeFrameHeader(f);
    ASSERT_TRUE(h.has_value());
    EXPECT_EQ(h->type, MessageType::Ping);
    EXPECT_EQ(h->generation, 3u);
    EXPECT_EQ(h->bodyLength, 8u);
    EXPECT_FALSE(decodeFrameHeader(f.substr(0, f.size() - 1)).has_value());
    EXPECT_FALSE(decodeFrameHeader(f + "x").has_value());
    EXPECT_FALSE(decodeFrameHeader(f.substr(0, 11)).has_value());
    std::string reserved = f;
    reserved[2] = 1;
    EXPECT_FALSE(decodeFrameHeader(reserved).has_value());
    // A type this build does not know still has a valid header (answered with Unknown).
    auto unknown = decodeFrameHeader(encodeFrame(static_cast<MessageType>(999), 1, "abc"));
    ASSERT_TRUE(unknown.has_value());
    EXPECT_EQ(static_cast<int>(unknown->type), 999);
}

TEST(Messages, EveryTypeUpToTheLastHasANameAndNoneAfterIt) {
    for (uint16_t t = 1; t <= kLastMessageType; ++t) {
        EXPECT_NE(messageName(static_cast<MessageType>(t)), "unknown") << t;
    }
    EXPECT_EQ(messageName(static_cast<MessageType>(kLastMessageType + 1)), "unknown");
}

}  // namespace
}  // namespace relaypro::ipc
