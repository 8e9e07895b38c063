#include "common/target_policy.h"

#include <gtest/gtest.h>

namespace relaypro {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;

TargetPolicy policy(const char* console, const char* migration = nullptr, Clock::time_point until = {}) {
    std::optional<Migration> m;
    if (migration != nullptr) m = Migration{*parseConsoleAddress(migration), until, "t"};
    return TargetPolicy(*parseConsoleAddress(console), m);
}

TEST(TargetPolicy, NamesMatchCaseInsensitivelyWithOneTrailingDot) {
    auto p = policy("Console.Example.com");
    auto now = Clock::now();
    EXPECT_TRUE(p.allows("console.example.com", false, 443, now));
    EXPECT_TRUE(p.allows("CONSOLE.EXAMPLE.COM.", false, 443, now));
    EXPECT_FALSE(p.allows("console.example.com..", false, 443, now));
    EXPECT_FALSE(p.allows("evil.console.example.com", false, 443, now));
    EXPECT_FALSE(p.allows("console.example.co", false, 443, now));
    EXPECT_FALSE(p.allows("console.example.com", true, 443, now));
}

// Issue 15, item 7: the relay dials the console's name as configured, whatever the client wrote.
TEST(TargetPolicy, TheNameDialledIsTheConfiguredOne) {
    auto now = Clock::now();
    auto p = policy("Console.Example.com");
    EXPECT_EQ(p.dialName("CONSOLE.EXAMPLE.COM.", false, now), "Console.Example.com");
    EXPECT_EQ(p.dialName("console.example.com", false, now), "Console.Example.com");
    // A single-label name: a client's trailing dot would skip the search list.
    EXPECT_EQ(policy("console").dialName("console.", false, now), "console");
    EXPECT_EQ(policy("[2001:DB8::1]").dialName("2001:db8::1", true, now), "2001:DB8::1");
    auto m = policy("old.example.com", "New.Example.com", now + 1h);
    EXPECT_EQ(m.dialName("new.example.com.", false, now), "New.Example.com");
    EXPECT_EQ(m.dialName("OLD.example.com", false, now), "old.example.com");
}

TEST(TargetPolicy, PortsAre443_80_4222AndTheAddressOwn) {
    auto now = Clock::now();
    auto plain = policy("console.example.com");
    for (uint16_t port : {uint16_t{443}, uint16_t{80}, uint16_t{4222}})
        EXPECT_TRUE(plain.allows("console.example.com", false, port, now)) << port;
    for (uint16_t port : {uint16_t{22}, uint16_t{8443}, uint16_t{4223}, uint16_t{65535}})
        EXPECT_FALSE(plain.allows("console.example.com", false, port, now)) << port;
    auto withPort = policy("console.example.com:8443");
    EXPECT_TRUE(withPort.allows("console.example.com", false, 8443, now));
    EXPECT_TRUE(withPort.allows("console.example.com", false, 4222, now));
}

TEST(TargetPolicy, AddressesMatchOnlyTheSameCanonicalAddress) {
    auto now = Clock::now();
    auto v4 = policy("10.0.0.5");
    EXPECT_TRUE(v4.allows("10.0.0.5", false, 443, now));
    for (const char* other :
         {"010.0.0.5", "10.0.0.05", "167772165", "0xa.0.0.5", "0x0a000005", "10.5", "10.0.0.5.", "10.0.0.6"}) {
        EXPECT_FALSE(v4.allows(other, false, 443, now)) << other;
    }
    EXPECT_FALSE(v4.allows("::ffff:10.0.0.5", true, 443, now));
    auto v6 = policy("[2001:db8::1]:8443");
    EXPECT_TRUE(v6.allows("2001:db8::1", true, 8443, now));
    EXPECT_TRUE(v6.allows("2001:DB8:0::1", true, 443, now));
    EXPECT_FALSE(v6.allows("2001:db8::1", false, 443, now));  // without brackets
    EXPECT_FALSE(v6.allows("2001:db8::2", true, 443, now));
    // A name is not matched by its address, nor an address by a name.
    auto name = policy("localhost");
    EXPECT_FALSE(name.allows("127.0.0.1", false, 443, now));
    EXPECT_FALSE(name.allows("::1", true, 443, now));
    EXPECT_FALSE(policy("127.0.0.1").allows("localhost", false, 443, now));
}

TEST(TargetPolicy, MigrationAddressOnlyBeforeItsDeadline) {
    auto now = Clock::now();
    auto p = policy("old.example.com", "new.example.com:9443", now + 1h);
    EXPECT_TRUE(p.allows("old.example.com", false, 443, now));
    EXPECT_TRUE(p.allows("new.example.com", false, 443, now));
    EXPECT_TRUE(p.allows("new.example.com", false, 9443, now));
    EXPECT_FALSE(p.allows("old.example.com", false, 9443, now));  // each address its own port
    EXPECT_FALSE(p.allows("new.example.com", false, 443, now + 2h));
    EXPECT_TRUE(p.allows("old.example.com", false, 443, now + 2h));
}

TEST(TargetPolicy, PlainHttpOnlyToPort80) {
    auto now = Clock::now();
    auto p = policy("console.example.com:8443");
    EXPECT_TRUE(p.allowsPlainHttp("console.example.com", false, 80, now));
    EXPECT_FALSE(p.allowsPlainHttp("console.example.com", false, 8443, now));
    EXPECT_FALSE(p.allowsPlainHttp("console.example.com", false, 443, now));
    EXPECT_FALSE(p.allowsPlainHttp("other.example.com", false, 80, now));
}

}  // namespace
}  // namespace relaypro
