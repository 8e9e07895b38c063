#include "supervisor/handover.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>

#include "test/support/test_files.h"

namespace relaypro {
namespace {

HandoverState sample(int listenerFd, int controlFd, int channelFd) {
    HandoverState s;
    s.currentGeneration = 3;
    s.startedUnixMs = 1700000000123;
    s.listeners.push_back({ListenerKind::Https, listenerFd, "127.0.0.1:9443"});
    s.controlFd = controlFd;
    s.workers.push_back({4242, 3, 1, 1, channelFd, 17});
    s.exitedTunnels = 99;
    s.everHeldEnv = {"AIR_DEPLOYMENT_TOKEN"};
    s.certificateChainPem = "-----BEGIN CERTIFICATE-----\nchain\n";
    s.privateKeyPem = "-----BEGIN PRIVATE KEY-----\nkey\n";
    s.caPem = "-----BEGIN CERTIFICATE-----\nca\n";
    s.configText = "workers: 2\n";
    s.envFileText = "RELAYPRO_HTTP_LISTEN=127.0.0.1:8080\n";
    s.httpsListen = "127.0.0.1:0";
    s.settingsBytes = "settings";
    s.caBundlePem = "-----BEGIN RSA PRIVATE KEY-----\nca key\n";
    s.revoked = true;
    s.droppedLogLines = 7;
    s.droppedLogLinesTotal = 70;
    s.metricsAddress = "127.0.0.1:9464";
    s.metricsState = "counters";
    return s;
}

TEST(Handover, WhatIsWrittenIsReadBackWithTheDescriptorsItNames) {
    testing::TempDir dir;
    int a = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int b = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int c = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    auto fd = writeHandover(sample(a, b, c), dir.path().string());
    ASSERT_TRUE(fd.ok()) << fd.error().describe();
    EXPECT_EQ(::fcntl(*fd, F_GETFD) & FD_CLOEXEC, 0) << "it must cross the exec";
    auto back = readHandover(*fd);
    ASSERT_TRUE(back.ok()) << back.error().describe();
    EXPECT_EQ(back->currentGeneration, 3U);
    EXPECT_EQ(back->startedUnixMs, 1700000000123);
    ASSERT_EQ(back->listeners.size(), 1U);
    EXPECT_EQ(back->listeners[0].address, "127.0.0.1:9443");
    EXPECT_EQ(back->workers[0].pid, 4242);
    EXPECT_EQ(back->workers[0].totalTunnels, 17U);
    EXPECT_EQ(back->privateKeyPem, "-----BEGIN PRIVATE KEY-----\nkey\n");
    EXPECT_EQ(back->format, kHandoverFormat);
    EXPECT_EQ(back->metricsFd, -1);
    EXPECT_EQ(back->metricsAddress, "127.0.0.1:9464");
    EXPECT_EQ(back->metricsState, "counters");
    EXPECT_EQ(back->configText, "workers: 2\n");
    EXPECT_EQ(back->envFileText, "RELAYPRO_HTTP_LISTEN=127.0.0.1:8080\n");
    EXPECT_EQ(back->httpsListen, "127.0.0.1:0");
    EXPECT_EQ(back->httpListen, "");
    EXPECT_EQ(back->settingsBytes, "settings");
    EXPECT_EQ(back->caBundlePem, "-----BEGIN RSA PRIVATE KEY-----\nca key\n");
    EXPECT_TRUE(back->revoked);
    EXPECT_EQ(back->upgradeReplyFd, -1);
    EXPECT_EQ(back->droppedLogLines, 7U);
    EXPECT_EQ(back->droppedLogLinesTotal, 70U);
    EXPECT_EQ(handoverDescriptors(*back), (std::vector<int>{a, b, c}));
    EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "a memfd leaves nothing in the fallback folder";
    ::close(c);
    auto stale = writeHandover(sample(a, b, c), dir.path().string());
    ASSERT_TRUE(stale.ok());
    EXPECT_FALSE(readHandover(*stale).ok()) << "a descriptor that is no longer open is refused";
    ::close(a);
    ::close(b);
}

TEST(Handover, WithoutMemfdTheFileIsUnnamedPrivateAndCrossesExec) {
    testing::TempDir dir;
    auto fd = unnamedFile(dir.path().string(), false);  // what a kernel before 3.17 gets
    ASSERT_TRUE(fd.ok()) << fd.error().describe();
    EXPECT_TRUE(std::filesystem::is_empty(dir.path())) << "no name anyone could open";
    struct stat st {};
    ASSERT_EQ(::fstat(*fd, &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600U);
    EXPECT_EQ(st.st_nlink, 0U);
    EXPECT_EQ(::fcntl(*fd, F_GETFD) & FD_CLOEXEC, 0);
    ASSERT_EQ(::write(*fd, "state", 5), 5);
    char buf[8] = {};
    ASSERT_EQ(::pread(*fd, buf, sizeof buf, 0), 5);
    EXPECT_STREQ(buf, "state");
    ::close(*fd);
    EXPECT_FALSE(unnamedFile((dir.path() / "missing").string(), false).ok());
}

// The previous release reads (and wrote) format 1: everything up to the CA certificate. This
// build writes it for a downgrade and reads it from the previous release (then, having no
// configuration snapshot, it reads the files as that release did).
TEST(Handover, FormatOneIsWhatThePreviousReleaseReadsAndWrote) {
    testing::TempDir dir;
    int listener = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    HandoverState s = sample(listener, -1, listener);
    auto fd = writeHandover(s, dir.path().string(), 1);
    ASSERT_TRUE(fd.ok());
    std::string bytes(1 << 16, '\0');
    ssize_t n = ::pread(*fd, bytes.data(), bytes.size(), 0);
    ASSERT_GT(n, 0);
    bytes.resize(static_cast<size_t>(n));
    EXPECT_TRUE(bytes.ends_with(s.caPem)) << "nothing after the CA certificate";
    EXPECT_EQ(bytes.find(s.configText), std::string::npos) << "no configuration";
    EXPECT_EQ(bytes.find("ca key"), std::string::npos) << "no CA key";
    auto back = readHandover(*fd);
    ASSERT_TRUE(back.ok()) << back.error().describe();
    EXPECT_EQ(back->format, 1U);
    EXPECT_EQ(back->workers[0].pid, 4242);
    EXPECT_TRUE(back->configText.empty());
    EXPECT_EQ(back->upgradeReplyFd, -1);
    // Format 2 without its snapshot is refused: the next image would have nothing to run on.
    bytes[0] = 2;
    auto file = unnamedFile(dir.path().string());
    ASSERT_TRUE(file.ok());
    ASSERT_EQ(::write(*file, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
    EXPECT_FALSE(readHandover(*file).ok());
    ::close(listener);
}

// Format 3 adds the metrics endpoint's socket and the totals; format 2 (the release before) has
// neither, and its reader gets no descriptor it would not know to close.
TEST(Handover, FormatThreeCarriesTheMetricsAndFormatTwoLeavesThemOut) {
    testing::TempDir dir;
    int listener = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    int metrics = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    HandoverState s = sample(listener, -1, listener);
    s.metricsFd = metrics;
    auto three = writeHandover(s, dir.path().string());
    ASSERT_TRUE(three.ok());
    auto back = readHandover(*three);
    ASSERT_TRUE(back.ok()) << back.error().describe();
    EXPECT_EQ(back->metricsFd, metrics);
    EXPECT_EQ(back->metricsState, "counters");
    const std::vector<int> named = handoverDescriptors(*back);
    EXPECT_NE(std::ranges::find(named, metrics), named.end());
    auto two = writeHandover(s, dir.path().string(), 2);
    ASSERT_TRUE(two.ok());
    back = readHandover(*two);
    ASSERT_TRUE(back.ok()) << back.error().describe();
    EXPECT_EQ(back->format, 2U);
    EXPECT_EQ(back->metricsFd, -1);
    EXPECT_TRUE(back->metricsState.empty());
    ::close(listener);
    ::close(metrics);
}

// Format 4 (issue 19): each worker's IPC protocol crosses the re-exec, so that the next image
// balances the workers it adopts; format 3 leaves it out (not known: 0).
TEST(Handover, FormatFourCarriesEachWorkersProtocol) {
    testing::TempDir dir;
    int listener = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    HandoverState s = sample(listener, -1, listener);
    s.workers[0].protocol = 3;
    auto four = writeHandover(s, dir.path().string());
    ASSERT_TRUE(four.ok());
    auto back = readHandover(*four);
    ASSERT_TRUE(back.ok()) << back.error().describe();
    ASSERT_EQ(back->workers.size(), 1U);
    EXPECT_EQ(back->workers[0].protocol, 3U);
    auto three = writeHandover(s, dir.path().string(), 3);
    ASSERT_TRUE(three.ok());
    back = readHandover(*three);
    ASSERT_TRUE(back.ok()) << back.error().describe();
    EXPECT_EQ(back->format, 3U);
    EXPECT_EQ(back->workers[0].protocol, 0U);
    ::close(listener);
}

// RelayPro's own writes config.yml could not take cross the re-exec (a registration).
TEST(Handover, UnsavedWritesCrossTheReexec) {
    testing::TempDir dir;
    int fd0 = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    HandoverState s = sample(fd0, -1, fd0);
    s.unsavedUpdates = {ConfigUpdate::integer({"relayId"}, 7), ConfigUpdate::string({"securityToken"}, "st-1"),
                        ConfigUpdate::remove({"deploymentToken"}),
                        ConfigUpdate::string({"migration", "consoleAddress"}, "next.example:443")};
    s.unsavedBase = "deploymentToken: \"dt-1\"\n";
    auto fd = writeHandover(s, dir.path().string());
    ASSERT_TRUE(fd.ok());
    auto back = readHandover(*fd);
    ASSERT_TRUE(back.ok()) << back.error().describe();
    ASSERT_EQ(back->unsavedUpdates.size(), 4U);
    EXPECT_EQ(back->unsavedUpdates[0].value, "7");
    EXPECT_EQ(back->unsavedUpdates[0].kind, ConfigUpdate::Kind::Integer);
    EXPECT_EQ(back->unsavedUpdates[2].kind, ConfigUpdate::Kind::Remove);
    EXPECT_EQ(back->unsavedUpdates[3].path, (std::vector<std::string>{"migration", "consoleAddress"}));
    EXPECT_EQ(back->unsavedBase, "deploymentToken: \"dt-1\"\n");
    ::close(fd0);
}

}  // namespace
}  // namespace relaypro
