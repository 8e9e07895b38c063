#include "supervisor/sd_daemon.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "common/unique_fd.h"
#include "test/support/test_files.h"

namespace relaypro {
namespace {

// A datagram socket bound where systemd's notify socket would be: a path, or an abstract name.
UniqueFd boundDatagram(const std::string& name) {
    UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, name.data(), name.size());
    if (name[0] == '@') a.sun_path[0] = '\0';
    auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size());
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), len) != 0) return UniqueFd();
    return fd;
}

std::string receive(int fd) {
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    return n < 0 ? "<nothing: " + std::string(std::strerror(errno)) + ">" : std::string(buf, static_cast<size_t>(n));
}

TEST(SdNotify, SendsTheStateAsOneDatagramToAPath) {
    testing::TempDir dir;
    std::string path = (dir.path() / "notify.sock").string();
    UniqueFd server = boundDatagram(path);
    ASSERT_TRUE(server);
    testing::ScopedEnv env("NOTIFY_SOCKET", path.c_str());
    EXPECT_EQ(sd::notify("READY=1\nSTATUS=serving; 2 workers\nMAINPID=42"), 1);
    EXPECT_EQ(receive(server.get()), "READY=1\nSTATUS=serving; 2 workers\nMAINPID=42");
    EXPECT_EQ(sd::notify("WATCHDOG=1"), 1);
    EXPECT_EQ(receive(server.get()), "WATCHDOG=1");
}

TEST(SdNotify, SendsToAnAbstractName) {
    std::string name = "@relaypro-test-notify-" + std::to_string(::getpid());
    UniqueFd server = boundDatagram(name);
    ASSERT_TRUE(server);
    testing::ScopedEnv env("NOTIFY_SOCKET", name.c_str());
    EXPECT_EQ(sd::notify("STOPPING=1"), 1);
    EXPECT_EQ(receive(server.get()), "STOPPING=1");
}

TEST(SdNotify, WithoutTheVariableNothingIsSent) {
    testing::ScopedEnv env("NOTIFY_SOCKET", nullptr);
    EXPECT_EQ(sd::notify("READY=1"), 0);
    testing::ScopedEnv empty("NOTIFY_SOCKET", "");
    EXPECT_EQ(sd::notify("READY=1"), 0);
}

TEST(SdNotify, MalformedOrUnreachableSocketsAreErrors) {
    {
        testing::ScopedEnv env("NOTIFY_SOCKET", "relative/notify.sock");
        EXPECT_EQ(sd::notify("READY=1"), -EINVAL);
    }
    {
        testing::ScopedEnv env("NOTIFY_SOCKET", "vsock:2:1234");  // systemd 254's VSOCK form: not for a host service
        EXPECT_EQ(sd::notify("READY=1"), -EINVAL);
    }
    {
        testing::ScopedEnv env("NOTIFY_SOCKET", "@");
        EXPECT_EQ(sd::notify("READY=1"), -EINVAL);
    }
    {
        std::string tooLong = "/" + std::string(sizeof(sockaddr_un::sun_path), 'x');
        testing::ScopedEnv env("NOTIFY_SOCKET", tooLong.c_str());
        EXPECT_EQ(sd::notify("READY=1"), -EINVAL);
    }
    {
        testing::TempDir dir;
        std::string missing = (dir.path() / "nobody-listens.sock").string();
        testing::ScopedEnv env("NOTIFY_SOCKET", missing.c_str());
        EXPECT_EQ(sd::notify("READY=1"), -ENOENT);
    }
}

TEST(SdWatchdog, TheIntervalCountsOnlyForThisProcess) {
    std::string self = std::to_string(::getpid());
    {
        testing::ScopedEnv usec("WATCHDOG_USEC", "30000000");
        testing::ScopedEnv pid("WATCHDOG_PID", nullptr);
        EXPECT_EQ(sd::watchdogMicros(), 30000000U);
    }
    {
        testing::ScopedEnv usec("WATCHDOG_USEC", "400000");
        testing::ScopedEnv pid("WATCHDOG_PID", self.c_str());
        EXPECT_EQ(sd::watchdogMicros(), 400000U);
    }
    {
        testing::ScopedEnv usec("WATCHDOG_USEC", "400000");
        testing::ScopedEnv pid("WATCHDOG_PID", "1");  // another process's watchdog
        EXPECT_EQ(sd::watchdogMicros(), 0U);
    }
    for (const char* bad : {"", "0", "-5", "12s", " 5", "99999999999999999999999", "18446744073709551615"}) {
        testing::ScopedEnv usec("WATCHDOG_USEC", bad);
        testing::ScopedEnv pid("WATCHDOG_PID", nullptr);
        EXPECT_EQ(sd::watchdogMicros(), 0U) << "WATCHDOG_USEC=" << bad;
    }
    testing::ScopedEnv usec("WATCHDOG_USEC", nullptr);
    EXPECT_EQ(sd::watchdogMicros(), 0U);
}

// Runs `body` in a child whose descriptors 3 and 4 are a listening TCP socket and a datagram
// socket, as systemd would pass them; the child's exit code is the test's verdict.
int inActivatedChild(const char* listenPid, const char* listenFds, int (*body)()) {
    pid_t child = ::fork();
    if (child == 0) {
        UniqueFd tcp(::socket(AF_INET, SOCK_STREAM, 0));
        sockaddr_in a{};
        a.sin_family = AF_INET;
        a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        if (::bind(tcp.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(tcp.get(), 4) != 0) _exit(90);
        UniqueFd udp(::socket(AF_INET, SOCK_DGRAM, 0));
        if (::dup2(tcp.get(), 3) != 3 || ::dup2(udp.get(), 4) != 4) _exit(91);
        std::string pid = listenPid != nullptr ? listenPid : std::to_string(::getpid());
        ::setenv("LISTEN_PID", pid.c_str(), 1);
        ::setenv("LISTEN_FDS", listenFds, 1);
        ::setenv("LISTEN_FDNAMES", "https:other", 1);
        _exit(body());
    }
    int status = 0;
    ::waitpid(child, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100;
}

TEST(SdListenFds, TakesThePassedDescriptorsOnceAndClearsTheVariables) {
    RELAYPRO_SKIP_UNDER_QEMU();  // forks
    int verdict = inActivatedChild(nullptr, "2", [] {
        std::vector<int> fds = sd::takeListenFds();
        if (fds != std::vector<int>{3, 4}) return 1;
        if ((::fcntl(3, F_GETFD) & FD_CLOEXEC) == 0 || (::fcntl(4, F_GETFD) & FD_CLOEXEC) == 0) return 2;
        if (!sd::isListeningStreamSocket(3)) return 3;
        if (sd::isListeningStreamSocket(4)) return 4;  // a datagram socket
        if (std::getenv("LISTEN_PID") || std::getenv("LISTEN_FDS") || std::getenv("LISTEN_FDNAMES")) return 6;
        if (!sd::takeListenFds().empty()) return 7;  // taken once
        return 0;
    });
    EXPECT_EQ(verdict, 0);
}

TEST(SdListenFds, DescriptorsMeantForAnotherProcessOrMalformedAreLeftAlone) {
    RELAYPRO_SKIP_UNDER_QEMU();  // forks
    auto untouched = [] {
        if (!sd::takeListenFds().empty()) return 1;
        if ((::fcntl(3, F_GETFD) & FD_CLOEXEC) != 0) return 2;
        if (std::getenv("LISTEN_PID") || std::getenv("LISTEN_FDS")) return 3;  // cleared all the same
        return 0;
    };
    EXPECT_EQ(inActivatedChild("1", "2", untouched), 0);
    EXPECT_EQ(inActivatedChild(nullptr, "two", untouched), 0);
    EXPECT_EQ(inActivatedChild(nullptr, "-1", untouched), 0);
    EXPECT_EQ(inActivatedChild(nullptr, "0", untouched), 0);
    EXPECT_EQ(inActivatedChild("", "2", untouched), 0);
}

TEST(SdListenFds, ASocketThatDoesNotListenIsNotTaken) {
    UniqueFd tcp(::socket(AF_INET, SOCK_STREAM, 0));
    EXPECT_FALSE(sd::isListeningStreamSocket(tcp.get()));
    int pipeFds[2];
    ASSERT_EQ(::pipe(pipeFds), 0);
    EXPECT_FALSE(sd::isListeningStreamSocket(pipeFds[0]));
    ::close(pipeFds[0]);
    ::close(pipeFds[1]);
    EXPECT_FALSE(sd::isListeningStreamSocket(-1));
}

}  // namespace
}  // namespace relaypro
