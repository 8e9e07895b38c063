#include "ipc/snapshot.h"

#include <gtest/gtest.h>

namespace relaypro::ipc {
namespace {

using namespace std::chrono_literals;

std::shared_ptr<WorkerSettings> sample() {
    auto s = std::make_shared<WorkerSettings>();
    s->limits.maxConnections = 100;
    s->limits.headerTimeout = 3s;
    s->limits.idleTimeout = 1h;
    s->limits.tokenRequestsPerMinute = 7;
    s->maxConnections = 50;
    Migration m{*parseConsoleAddress("new.example.com:8443"),
                std::chrono::system_clock::time_point(std::chrono::seconds(1800000000)), "2027-01-15T08:00:00Z"};
    s->policy = TargetPolicy(*parseConsoleAddress("console.example.com"), m);
    s->passwords = std::make_shared<const PasswordFile>(
        PasswordFile::fromEntries({{"u", "p", false}, {"h", "$argon2id$v=19$m=8,t=1,p=1$c2FsdA$aGFzaA", true}}));
    s->proxyEnabled = true;
    s->proxy.https = *parseProxyUrl("https://user:pw@proxy:3128");
    s->proxy.noProxy = *NoProxy::parse(".internal,10.0.0.0/8");
    s->names.hosts = parseHosts("127.0.0.1 localhost console.test\n::1 localhost\n");
    s->names.resolver = parseResolvConf("nameserver 10.0.0.53\nsearch corp.example\noptions ndots:2 timeout:3\n");
    s->trustedSources = {*parseCidr("10.0.0.0/8")};
    s->registered = true;
    s->caPem = "-----BEGIN CERTIFICATE-----\n";
    s->debugLogging = true;
    return s;
}

TEST(Snapshot, RoundTripsEveryField) {
    auto s = sample();
    std::string bytes = encodeSettings(*s);
    auto back = decodeSettings(bytes);
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(encodeSettings(**back), bytes);
    const WorkerSettings& b = **back;
    EXPECT_EQ(b.limits.headerTimeout, 3s);
    EXPECT_EQ(b.maxConnections, 50u);
    EXPECT_TRUE(b.policy.allows("new.example.com", false, 8443,
                                std::chrono::system_clock::time_point(std::chrono::seconds(1700000000))));
    EXPECT_EQ(b.passwords->find("h")->hashed, true);
    EXPECT_EQ(b.proxy.https->password, "pw");
    EXPECT_TRUE(b.proxy.noProxy.bypasses("10.1.1.1"));
    EXPECT_EQ(b.names.hosts.find("console.test")->front(), "127.0.0.1");
    EXPECT_EQ(b.names.resolver.ndots, 2);
    EXPECT_TRUE(b.registered);
}

TEST(Snapshot, RejectsEveryTruncationAndTrailingBytes) {
    std::string bytes = encodeSettings(*sample());
    for (size_t n = 0; n < bytes.size(); n += 7) EXPECT_FALSE(decodeSettings(bytes.substr(0, n)).ok()) << n;
    EXPECT_FALSE(decodeSettings(bytes + "x").ok());
    std::string format = bytes;
    format[0] = 9;
    EXPECT_FALSE(decodeSettings(format).ok());
    // Found by fuzzing: a migration deadline beyond what the clock holds.
    auto s = sample();
    Migration m = *s->policy.migration();
    m.validUntilAt = std::chrono::system_clock::time_point(std::chrono::seconds(7258118400LL - 1));
    s->policy = TargetPolicy(s->policy.console(), m);
    std::string edge = encodeSettings(*s);
    EXPECT_TRUE(decodeSettings(edge).ok());
    size_t at = edge.find(std::string("\xff\x18\x9e\xb0\x01\x00\x00\x00", 8));  // 7258118399 little-endian
    ASSERT_NE(at, std::string::npos);
    edge[at] = static_cast<char>(0x00);
    edge[at + 1] = static_cast<char>(0x19);  // 7258118400: out of range
    EXPECT_FALSE(decodeSettings(edge).ok());
}

TEST(Snapshot, ChunksReassembleInOrderOnly) {
    std::string big(3 * kMaxChunkBytes + 5, 'q');
    auto chunks = chunkSnapshot(4, big);
    ASSERT_EQ(chunks.size(), 4u);
    SnapshotAssembler a;
    for (const auto& c : chunks) {
        EXPECT_FALSE(a.complete());
        ASSERT_TRUE(a.add(c).ok());
    }
    ASSERT_TRUE(a.complete());
    EXPECT_EQ(a.take(), big);
    SnapshotAssembler b;
    ASSERT_TRUE(b.add(chunks[0]).ok());
    EXPECT_FALSE(b.add(chunks[2]).ok());
    SnapshotAssembler c;
    ASSERT_TRUE(c.add(chunks[0]).ok());
    SettingsChunk other = chunks[1];
    other.snapshotId = 5;
    EXPECT_FALSE(c.add(other).ok());
    EXPECT_EQ(chunkSnapshot(1, "").size(), 1u);
}

}  // namespace
}  // namespace relaypro::ipc
