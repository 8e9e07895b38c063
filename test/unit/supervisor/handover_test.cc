#include "supervisor/handover.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "test/support/test_files.h"

namespace relaypro {
namespace {

HandoverState sample(int listenerFd, int controlFd, int channelFd) {
    HandoverState s;
    s.currentGeneration = 3;
    s.startedUnixMs = 1700000000123;
    s.listeners.push_back({0, listenerFd, "127.0.0.1:9443"});
    s.controlFd = controlFd;
    s.workers.push_back({4242, 3, 1, 1, channelFd, 17});
    s.exitedTunnels = 99;
    s.everHeldEnv = {"AIR_DEPLOYMENT_TOKEN"};
    s.certificateChainPem = "-----BEGIN CERTIFICATE-----\nchain\n";
    s.privateKeyPem = "-----BEGIN PRIVATE KEY-----\nkey\n";
    s.caPem = "-----BEGIN CERTIFICATE-----\nca\n";
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

}  // namespace
}  // namespace relaypro
