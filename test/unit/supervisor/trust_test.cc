// What the supervisor hands workers and when it changes: the hour's and previous hour's ticket
// keys, today's and yesterday's token masters, and the issued certificate, renewed in time.
#include "supervisor/trust.h"

#include <gtest/gtest.h>

#include <vector>

#include "test/support/test_files.h"

namespace relaypro {
namespace {

using Clock = std::chrono::system_clock;

class Records : public LogOutput {
public:
    void write(const LogRecord& r) override { messages.push_back(r.msg); }
    std::vector<std::string> messages;
};

Config trustConfig(const testing::TempDir& dir) {
    Config c;
    c.caBundleFile = (dir / "ca-bundle.pem").string();
    c.serverName = "relay.example.com";
    return c;
}

TEST(Trust, SecretsFollowTheHourAndTheDay) {
    testing::TempDir dir;
    Records records;
    Logger log(&records, "test");
    auto t = Trust::open(trustConfig(dir), log);
    ASSERT_TRUE(t) << t.error().message;
    EXPECT_EQ(records.messages.front(), "CA bundle created");
    // 2026-11-25T23:59:59Z and one second later: a new hour and a new day.
    const auto before = Clock::time_point(std::chrono::seconds(1795651199));
    const auto after = before + std::chrono::seconds(1);
    WorkerSecrets a = t->secrets(before), b = t->secrets(after);
    ASSERT_EQ(a.ticketKeys.size(), 2u);
    ASSERT_EQ(a.masters.size(), 2u);
    EXPECT_EQ(a.ticketKeys[0].hour, 1795651199 / 3600);
    EXPECT_EQ(a.ticketKeys[1].hour, 1795651199 / 3600 - 1);
    EXPECT_EQ(b.ticketKeys[1].bytes, a.ticketKeys[0].bytes) << "the current key becomes the previous one";
    EXPECT_EQ(a.masters[0].day, 20782);
    EXPECT_EQ(b.masters[0].day, 20783);
    EXPECT_EQ(b.masters[1].key, a.masters[0].key) << "today's master becomes yesterday's";
    EXPECT_EQ(a.masters[0].key, t->ca().tokenMaster(20782));
    EXPECT_EQ(a.tls.certificateChainPem, t->tls().certificateChainPem);
    // refresh() reports a change once per new hour.
    EXPECT_TRUE(t->refresh(Clock::now() + std::chrono::hours(1), log));
    EXPECT_FALSE(t->refresh(Clock::now() + std::chrono::hours(1), log));
}

TEST(Trust, TheIssuedCertificateIsRenewedBeforeItExpires) {
    testing::TempDir dir;
    Records records;
    Logger log(&records, "test");
    auto t = Trust::open(trustConfig(dir), log);
    ASSERT_TRUE(t);
    const std::string first = t->tls().certificateChainPem;
    auto expires = certificateNotAfter(first);
    ASSERT_TRUE(expires);
    auto hoursLeft = std::chrono::duration_cast<std::chrono::hours>(*expires - Clock::now()).count();
    EXPECT_GE(hoursLeft, 24 * 90 - 1);
    EXPECT_LE(hoursLeft, 24 * 90);
    // 59 days on: 31 days left, no renewal. 61 days on: 29 left, renewed.
    t->refresh(Clock::now() + std::chrono::hours(24 * 59), log);  // true: a new hour
    EXPECT_EQ(t->tls().certificateChainPem, first);
    EXPECT_TRUE(t->refresh(Clock::now() + std::chrono::hours(24 * 61), log));
    EXPECT_NE(t->tls().certificateChainPem, first);
    EXPECT_EQ(records.messages.back(), "server certificate issued");
}

TEST(Trust, AnOperatorCertificateIsNeverRenewedAndAnUpgradeKeepsTheCertificateInUse) {
    testing::TempDir dir;
    Records records;
    Logger log(&records, "test");
    auto first = Trust::open(trustConfig(dir), log);
    ASSERT_TRUE(first);
    auto adopted = Trust::open(trustConfig(dir), log, first->tls());
    ASSERT_TRUE(adopted);
    EXPECT_EQ(adopted->tls().certificateChainPem, first->tls().certificateChainPem);
    EXPECT_EQ(adopted->ca().fingerprintHex(), first->ca().fingerprintHex());

    Config c = trustConfig(dir);
    testing::writeText(dir / "op.crt", first->tls().certificateChainPem);
    testing::writeText(dir / "op.key", first->tls().privateKeyPem);
    c.certFile = (dir / "op.crt").string();
    c.keyFile = (dir / "op.key").string();
    auto op = Trust::open(c, log);
    ASSERT_TRUE(op);
    EXPECT_TRUE(op->operatorCertificate());
    op->refresh(Clock::now() + std::chrono::hours(24 * 200), log);
    EXPECT_EQ(op->tls().certificateChainPem, first->tls().certificateChainPem);
}

TEST(Trust, ChecksAtEveryHourBoundaryAndAtLeastEveryMinute) {
    const auto boundary = Clock::time_point(std::chrono::hours(498792));
    EXPECT_EQ(Trust::untilNextCheck(boundary - std::chrono::milliseconds(250)), std::chrono::milliseconds(250));
    EXPECT_EQ(Trust::untilNextCheck(boundary), std::chrono::milliseconds(60000));
    EXPECT_EQ(Trust::untilNextCheck(boundary + std::chrono::minutes(30)), std::chrono::milliseconds(60000));
}

}  // namespace
}  // namespace relaypro
