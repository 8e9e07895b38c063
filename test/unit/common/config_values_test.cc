#include "common/config_values.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <sys/socket.h>

namespace relaypro {
namespace {

using namespace std::chrono_literals;

TEST(Size, AcceptsEveryUnitInAnyCase) {
    struct Case {
        const char* text;
        uint64_t bytes;
    } cases[] = {
        {"0", 0},
        {"1048576", 1048576},
        {"7B", 7},
        {"7b", 7},
        {"512KB", 512000},
        {"512kb", 512000},
        {"3MB", 3000000},
        {"2GB", 2000000000},
        {"1TB", 1000000000000},
        {"16KiB", 16384},
        {"16kib", 16384},
        {"16KIB", 16384},
        {"100MiB", 100ULL << 20},
        {"5GiB", 5ULL << 30},
        {"2TiB", 2ULL << 40},
        {"5 GiB", 5ULL << 30},
        {"1.5MiB", 3ULL << 19},
        {"0.5KB", 500},
    };
    for (const auto& c : cases) {
        auto r = parseSize(c.text);
        ASSERT_TRUE(r.ok()) << c.text << ": " << r.error().message;
        EXPECT_EQ(*r, c.bytes) << c.text;
    }
}

TEST(Size, RejectsMalformedText) {
    for (const char* bad : {"", "MiB", "abc", "-1", "+5", "5XB", "5 ", " 5", "5  MiB", "1.5", "1.MiB", ".MiB", "5MiBs",
                            "5 Mi B", "99999999999TiB", "18446744073709551616", "0x10", "1e3", "5,5MiB"}) {
        auto r = parseSize(bad);
        EXPECT_FALSE(r.ok()) << "accepted \"" << bad << "\"";
        if (!r.ok()) {
            EXPECT_NE(r.error().message.find("is not a valid size"), std::string::npos);
        }
    }
}

TEST(Size, FormatsWithTheLargestExactBinaryUnit) {
    EXPECT_EQ(formatSize(0), "0");
    EXPECT_EQ(formatSize(16384), "16KiB");
    EXPECT_EQ(formatSize(100ULL << 20), "100MiB");
    EXPECT_EQ(formatSize(1000), "1000");
    EXPECT_EQ(formatSize(3ULL << 40), "3TiB");
    for (uint64_t v : {1ULL, 1000ULL, 1536ULL, 1ULL << 33, 123456789ULL}) {
        EXPECT_EQ(*parseSize(formatSize(v)), v);
    }
}

TEST(Duration, AcceptsGoFormsDaysAndWeeks) {
    struct Case {
        const char* text;
        Duration d;
    } cases[] = {
        {"0", 0s},
        {"0s", 0s},
        {"90s", 90s},
        {"500ms", 500ms},
        {"1h30m", 90min},
        {"1h 30m", 90min},
        {"1.5h", 90min},
        {"10m", 10min},
        {"1d", 24h},
        {"2days", 48h},
        {"1day", 24h},
        {"1w", 168h},
        {"1week", 168h},
        {"4weeks", 4 * 168h},
        {"1H", 1h},
        {"250us", 250us},
        {"250\xc2\xb5s", 250us},
        {"7ns", 7ns},
        {"1m0.5s", 60500ms},
    };
    for (const auto& c : cases) {
        auto r = parseDuration(c.text);
        ASSERT_TRUE(r.ok()) << c.text << ": " << r.error().message;
        EXPECT_EQ(r->count(), c.d.count()) << c.text;
    }
}

TEST(Duration, RejectsMalformedText) {
    for (const char* bad : {"", "5", "10 ", " 10s", "s", "1x", "-1s", "+1s", "1h-30m", "1.s", "1months", "1y",
                            "99999999999w", "1h 30", "1 h", "1s  2s", "ten seconds"}) {
        auto r = parseDuration(bad);
        // "1 h" is a number, a space and a unit: allowed like sizes. Everything else fails.
        if (std::string(bad) == "1 h") {
            EXPECT_TRUE(r.ok());
            continue;
        }
        EXPECT_FALSE(r.ok()) << "accepted \"" << bad << "\"";
        if (!r.ok()) {
            EXPECT_NE(r.error().message.find("is not a valid duration"), std::string::npos);
        }
    }
}

TEST(Duration, FormatsLargestUnitsFirstAndRoundTrips) {
    EXPECT_EQ(formatDuration(0s), "0");
    EXPECT_EQ(formatDuration(90min), "1h30m");
    EXPECT_EQ(formatDuration(4 * 168h), "4w");
    EXPECT_EQ(formatDuration(500ms), "500ms");
    EXPECT_EQ(formatDuration(25h), "1d1h");
    for (Duration d : {Duration(1s), Duration(1500ms), Duration(12345678ns), Duration(170h), Duration(59min)}) {
        EXPECT_EQ(parseDuration(formatDuration(d))->count(), d.count());
    }
}

TEST(HostPort, AcceptsAddressesNamesAndPortZero) {
    auto a = parseHostPort("0.0.0.0:9443");
    ASSERT_TRUE(a.ok());
    EXPECT_EQ(a->host, "0.0.0.0");
    EXPECT_EQ(a->port, 9443);
    auto b = parseHostPort("[::1]:0");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->host, "::1");
    EXPECT_EQ(b->port, 0);
    EXPECT_EQ(b->text(), "[::1]:0");
    auto c = parseHostPort("relay.example.com:65535");
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->port, 65535);
    EXPECT_TRUE(parseHostPort("localhost:80").ok());
}

TEST(HostPort, RejectsBadPortsAndHostsWithTheValueInTheMessage) {
    auto r = parseHostPort("0.0.0.0:99999");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().message, "\"0.0.0.0:99999\" is not a valid port");
    for (const char* bad : {"0.0.0.0", "0.0.0.0:", ":9443", "::1:80", "[::1]", "[::1]80", "[fe80::1%eth0]:80", "a b:80",
                            "host:-1", "host:+80", "host:8o", "1.2.3:80", "0x7f.1:80", "[1.2.3.4]:80", "host:123456"}) {
        EXPECT_FALSE(parseHostPort(bad).ok()) << bad;
    }
}

TEST(ConsoleAddress, StripsHttpsPrefixAndSlashAndKeepsPort) {
    auto a = parseConsoleAddress("https://Console.Example.com:8443/");
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_EQ(a->host, "Console.Example.com");
    EXPECT_EQ(a->port, 8443);
    EXPECT_TRUE(a->portGiven);
    EXPECT_EQ(a->normalized(), "console.example.com:8443");
    EXPECT_EQ(a->text(), "Console.Example.com:8443");

    auto b = parseConsoleAddress("console.example.com.");
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->port, 443);
    EXPECT_FALSE(b->portGiven);
    EXPECT_EQ(b->normalized(), "console.example.com:443");

    auto c = parseConsoleAddress("[::1]:8443");
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(c->host, "::1");
    EXPECT_EQ(c->normalized(), "[::1]:8443");
    EXPECT_EQ(parseConsoleAddress("HTTPS://10.0.0.1")->normalized(), "10.0.0.1:443");
}

TEST(ConsoleAddress, RejectsOtherSchemesPathsAndBadHosts) {
    for (const char* bad :
         {"", "http://console", "ftp://console", "https://", "console/api", "user@console", "console:0",
          "console:70000", "::1", "[::1", "console?x", "1.2.3", "10.0.0.256", "exa mple.com", "-bad.example.com"}) {
        EXPECT_FALSE(parseConsoleAddress(bad).ok()) << bad;
    }
}

TEST(Cidr, ParsesAndMatches) {
    auto v4 = parseCidr("10.0.0.0/8");
    ASSERT_TRUE(v4.ok());
    unsigned char a[16] = {};
    inet_pton(AF_INET, "10.200.3.4", a);
    EXPECT_TRUE(v4->contains(AF_INET, a));
    inet_pton(AF_INET, "11.0.0.1", a);
    EXPECT_FALSE(v4->contains(AF_INET, a));
    auto single = parseCidr("192.0.2.7");
    ASSERT_TRUE(single.ok());
    EXPECT_EQ(single->prefix, 32u);
    auto v6 = parseCidr("2001:db8::/32");
    ASSERT_TRUE(v6.ok());
    inet_pton(AF_INET6, "2001:db8:1::5", a);
    EXPECT_TRUE(v6->contains(AF_INET6, a));
    EXPECT_FALSE(v6->contains(AF_INET, a));
    EXPECT_EQ(parseCidr("10.1.0.0/17")->text(), "10.1.0.0/17");
    auto hostBits = parseCidr("10.0.0.1/8");
    ASSERT_FALSE(hostBits.ok());
    EXPECT_NE(hostBits.error().message.find("did you mean \"10.0.0.0/8\""), std::string::npos);
    for (const char* bad : {"", "10.0.0.0/33", "::/129", "10.0.0.0/", "host/8", "10.0.0.0/-1", "10.0.0.0/08x"}) {
        EXPECT_FALSE(parseCidr(bad).ok()) << bad;
    }
}

TEST(Rfc3339, ParsesZonesAndFractions) {
    auto z = parseRfc3339("2026-12-01T00:00:00Z");
    ASSERT_TRUE(z.ok());
    EXPECT_EQ(std::chrono::duration_cast<std::chrono::seconds>(z->time_since_epoch()).count(), 1796083200);
    auto off = parseRfc3339("2026-12-01T02:00:00+02:00");
    ASSERT_TRUE(off.ok());
    EXPECT_EQ(*off, *z);
    auto frac = parseRfc3339("2026-12-01t00:00:00.5z");
    ASSERT_TRUE(frac.ok());
    EXPECT_EQ(*frac - *z, std::chrono::milliseconds(500));
    EXPECT_TRUE(parseRfc3339("2024-02-29T23:59:60Z").ok());
    EXPECT_EQ(formatRfc3339(*z), "2026-12-01T00:00:00Z");
    for (const char* bad :
         {"", "2026-12-01", "2026-12-01T00:00:00", "2026-13-01T00:00:00Z", "2025-02-29T00:00:00Z",
          "2026-12-01T24:00:00Z", "2026-12-01T00:00:00+2:00", "2026-12-01 00:00:00Z", "2026-12-01T00:00:00Zjunk",
          "2026-12-01T00:00:00.Z", "2626-12-01T00:00:00Z", "1969-12-31T23:59:59Z", "9999-12-31T23:59:59Z"}) {
        EXPECT_FALSE(parseRfc3339(bad).ok()) << bad;
    }
}

TEST(SmallValues, YamlBoolsUuidsAndHostNames) {
    for (const char* t : {"true", "True", "TRUE", "yes", "on", "y", "Y"}) EXPECT_EQ(parseYamlBool(t), true) << t;
    for (const char* f : {"false", "False", "no", "off", "n", "OFF"}) EXPECT_EQ(parseYamlBool(f), false) << f;
    for (const char* bad : {"", "1", "0", "tRUE", "yess"}) EXPECT_FALSE(parseYamlBool(bad).has_value()) << bad;

    EXPECT_TRUE(isUuid("6f1c2c1e-0d7e-4a53-9a43-3c0e1f2b8d11"));
    EXPECT_TRUE(isUuid("6F1C2C1E-0D7E-4A53-9A43-3C0E1F2B8D11"));
    EXPECT_FALSE(isUuid("6f1c2c1e0d7e4a539a433c0e1f2b8d11"));
    EXPECT_FALSE(isUuid("6f1c2c1e-0d7e-4a53-9a43-3c0e1f2b8d1g"));

    EXPECT_TRUE(isHostName("console.example.com"));
    EXPECT_TRUE(isHostName("console.example.com."));
    EXPECT_TRUE(isHostName("localhost"));
    EXPECT_TRUE(isHostName("a-b_c.example"));
    EXPECT_FALSE(isHostName(""));
    EXPECT_FALSE(isHostName("."));
    EXPECT_FALSE(isHostName("a..b"));
    EXPECT_FALSE(isHostName("-a.b"));
    EXPECT_FALSE(isHostName("1.2.3.4"));  // an IP literal, not a name
    EXPECT_FALSE(isHostName("127.1"));
    EXPECT_FALSE(isHostName("0x7f.0x1"));
    EXPECT_FALSE(isHostName(std::string(64, 'a') + ".com"));
    EXPECT_TRUE(isIpLiteral("::ffff:1.2.3.4"));
    EXPECT_FALSE(isIpLiteral("01.2.3.4"));
    EXPECT_FALSE(isIpLiteral("fe80::1%lo"));
}

}  // namespace
}  // namespace relaypro
