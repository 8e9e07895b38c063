// Faults around a running relay (issue 9): the supervisor killed, an upstream that resets a
// tunnel, a log disk that fills up, a config folder the registration cannot write, and a SIGKILL
// in the middle of the registration's write. Each asserts what an operator relies on: service
// goes on (or stops cleanly), nothing is half-written, nothing lingers.
//
// Mount faults run in a mount namespace of the test process's own (unshare + a private "/"), so
// a tmpfs or a read-only bind never touches the machine's mounts and goes away with the process.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <jansson.h>
#include <poll.h>
#include <sched.h>
#include <sys/inotify.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iterator>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test/support/console.h"
#include "test/support/net.h"
#include "test/support/notify.h"
#include "test/support/process.h"
#include "test/support/relay.h"
#include "test/support/secrets.h"
#include "test/support/test_files.h"

namespace relaypro::testing {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A mount namespace of this process's own. unshare(CLONE_NEWNS) refuses in a process with more
// than one thread, so a test calls it before it starts any (servers start threads).
bool privateMounts(std::string& why) {
    if (::unshare(CLONE_NEWNS) != 0) {
        why = std::string("unshare(CLONE_NEWNS): ") + std::strerror(errno);
        return false;
    }
    if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) {
        why = std::string("making / private: ") + std::strerror(errno);
        return false;
    }
    return true;
}

// A mount undone (lazily) at the end of the test, before the temporary folder is removed.
class Mounted {
public:
    Mounted(const fs::path& target, const char* type, unsigned long flags, const char* data,
            const fs::path& source = {})
        : target_(target) {
        const std::string src = source.empty() ? std::string(type != nullptr ? type : "none") : source.string();
        ok_ = ::mount(src.c_str(), target.c_str(), type, flags, data) == 0;
        if (!ok_) error_ = std::strerror(errno);
    }
    ~Mounted() {
        if (ok_) ::umount2(target_.c_str(), MNT_DETACH);
    }
    Mounted(const Mounted&) = delete;
    Mounted& operator=(const Mounted&) = delete;
    [[nodiscard]] bool ok() const { return ok_; }
    [[nodiscard]] const std::string& error() const { return error_; }

private:
    fs::path target_;
    bool ok_ = false;
    std::string error_;
};

// Fills the file system `filler` is created in, until a write says ENOSPC.
bool fillFileSystem(const fs::path& filler) {
    int fd = ::open(filler.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return false;
    const std::string block(4096, 'f');
    while (::write(fd, block.data(), block.size()) > 0) {
    }
    bool full = errno == ENOSPC;
    ::close(fd);
    return full;
}

// Whether `pid` is gone (or only a zombie waiting for whoever adopted it).
bool exited(pid_t pid) {
    std::string stat = readText("/proc/" + std::to_string(pid) + "/stat");
    if (stat.empty()) return true;
    size_t paren = stat.rfind(')');
    return paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'Z';
}

class Faults : public ::testing::Test {
protected:
    void SetUp() override {
        writeText(dir_ / "passwords.txt", kPasswordLine);
        writeText(dir_ / "hosts", "127.0.0.1 localhost console.test\n");
    }

    std::string yaml(uint16_t consolePort, const std::string& extra = "") const {
        return "consoleAddress: \"console.test:" + std::to_string(consolePort) +
               "\"\norganizationId: 1\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\npasswordFile: " +
               (dir_ / "passwords.txt").string() + "\n" + extra;
    }
    std::map<std::string, std::string> env() const { return {{"RELAYPRO_HOSTS_FILE", (dir_ / "hosts").string()}}; }

    // config.yml as an installer leaves it: the console, a relayProId, the deployment token.
    std::string unregisteredConfig(const ConsoleSim& console, const std::string& extra = "") const {
        return "# written by the installer\nconsoleAddress: \"" + console.address() +
               "\"\norganizationId: 1\nrelayProId: \"5b0c3c4e-4a39-4c9b-9a43-0d3b6f1f2a10\"\n"
               "serverName: \"127.0.0.1\"\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\npasswordFile: " +
               (dir_ / "passwords.txt").string() + "\n" + extra + "deploymentToken: \"dt-Wq83nLp\"\n" +
               console.caYaml();
    }

    // A tunnel to the console through `relay`; its status.
    static int tunnel(Client& c, const Relay& relay, uint16_t consolePort) {
        if (!c.connect("127.0.0.1", relay.httpsPort(), true)) return -1;
        if (!c.send("CONNECT console.test:" + std::to_string(consolePort) + " HTTP/1.1\r\nHost: x\r\n" +
                    "Proxy-Authorization: " + basicCredential() + "\r\n\r\n")) {
            return -1;
        }
        return statusOf(c.readHead());
    }

    TempDir dir_;
};

// lifecycle.md: workers die with their supervisor (parent-death signal). Nothing keeps the
// listening port: it refuses connections and can be bound again at once; open tunnels end.
TEST_F(Faults, WhenTheSupervisorIsKilledItsWorkersExitAndThePortIsFree) {
    // Orphaned workers are adopted by this process, so it can tell that they exited.
    ASSERT_EQ(::prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
    TestServer console(false, TestServer::echo());
    Relay relay(dir_, yaml(console.port(), "workers: 2\n"), env());
    ASSERT_TRUE(relay.ready()) << relay.stderrText() << readText(relay.logFile());
    auto workers = relay.workerPids();
    ASSERT_EQ(workers.size(), 2u);
    Client open;
    ASSERT_EQ(tunnel(open, relay, console.port()), 200);
    ASSERT_TRUE(open.send("before"));
    ASSERT_EQ(open.readExactly(6), "before");
    const uint16_t port = relay.httpsPort();

    EXPECT_EQ(relay.stop(SIGKILL), 128 + SIGKILL);
    for (pid_t w : workers) {
        EXPECT_TRUE(eventually([&] {
            int status = 0;
            ::waitpid(w, &status, WNOHANG);  // reap it if it was handed to this process
            return exited(w);
        })) << "worker "
            << w << " outlived its supervisor";
    }
    EXPECT_TRUE(open.waitClosed()) << "the open tunnel ended with its worker";
    EXPECT_LT(connectTo("127.0.0.1", port, 2s), 0) << "nothing accepts on the port any more";
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
    EXPECT_EQ(::listen(fd, 1), 0) << "no listening socket of the old relay holds the port";
    ::close(fd);
}

// A worker SIGKILLed while four clients open tunnels back to back: only the connections that
// worker held at that moment fail (at most one per client), the others go on, and after the
// replacement every tunnel succeeds again.
TEST_F(Faults, AWorkerKilledUnderLoadCostsOnlyTheConnectionsItHeld) {
    TestServer console(false, TestServer::echo());
    Relay relay(dir_, yaml(console.port(), "workers: 2\n"), env());
    ASSERT_TRUE(relay.ready()) << relay.stderrText() << readText(relay.logFile());
    auto workers = relay.workerPids();
    ASSERT_EQ(workers.size(), 2u);
    constexpr int kClients = 4;
    std::atomic<int> phase{0};  // 0: before the kill, 1: after it, 2: replacement serving, 3: stop
    std::atomic<int> failedBefore{0}, failedAround{0}, failedAfter{0}, okAfter{0}, okBefore{0};
    std::vector<std::thread> clients;
    const std::string kib(1024, 'k');
    for (int t = 0; t < kClients; ++t) {
        clients.emplace_back([&] {
            while (phase < 3) {
                const int began = phase.load();
                Client c;
                bool ok = tunnel(c, relay, console.port()) == 200 && c.send(kib) && c.readExactly(kib.size()) == kib;
                // A tunnel that began before the kill and ended after it counts as "around".
                const int at = phase.load() == began ? began : 1;
                if (at == 0) (ok ? okBefore : failedBefore)++;
                if (at == 1 && !ok) ++failedAround;
                if (at == 2) (ok ? okAfter : failedAfter)++;
            }
        });
    }
    // (No ASSERT until the clients are joined: leaving with running threads would abort.)
    EXPECT_TRUE(eventually([&] { return okBefore >= 200; }));
    phase = 1;
    EXPECT_EQ(::kill(workers[0], SIGKILL), 0);
    EXPECT_TRUE(eventually([&] { return relay.workerPids().size() == 3; })) << "a replacement is ready";
    phase = 2;
    EXPECT_TRUE(eventually([&] { return okAfter >= 200; }));
    phase = 3;
    for (auto& t : clients) t.join();
    EXPECT_EQ(failedBefore.load(), 0);
    EXPECT_LE(failedAround.load(), kClients) << "more failed than the killed worker can have held";
    EXPECT_EQ(failedAfter.load(), 0);
    EXPECT_TRUE(relay.waitForLog("worker exited unexpectedly", {{"workerPid", std::to_string(workers[0])}}));
}

// An upstream that resets one tunnel in the middle: that tunnel ends for its client, is logged,
// and the other tunnels of the same worker carry on.
TEST_F(Faults, AnUpstreamResetMidTunnelEndsOnlyThatTunnel) {
    TestServer console(false, [](int fd, SSL*) {
        char buf[256];
        while (true) {
            ssize_t n = ::recv(fd, buf, sizeof buf, 0);
            if (n <= 0) return;
            if (std::string_view(buf, static_cast<size_t>(n)).find("reset") != std::string_view::npos) {
                linger l{1, 0};  // the server's close sends RST
                ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
                return;
            }
            if (::send(fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) return;
        }
    });
    Relay relay(dir_, yaml(console.port(), "workers: 1\n"), env());
    ASSERT_TRUE(relay.ready()) << relay.stderrText() << readText(relay.logFile());
    Client keep;
    Client victim;
    ASSERT_EQ(tunnel(keep, relay, console.port()), 200);
    ASSERT_EQ(tunnel(victim, relay, console.port()), 200);
    ASSERT_TRUE(victim.send("hello"));
    ASSERT_EQ(victim.readExactly(5), "hello");
    ASSERT_TRUE(victim.send("reset"));
    EXPECT_TRUE(victim.waitClosed()) << "the client's side ends when the upstream resets";
    EXPECT_TRUE(relay.waitForLog("tunnel closed", {{"result", "upstream_reset"}})) << readText(relay.logFile());
    ASSERT_TRUE(keep.send("still here"));
    EXPECT_EQ(keep.readExactly(10), "still here");
    Client fresh;
    EXPECT_EQ(tunnel(fresh, relay, console.port()), 200);
}

// A full log disk (a 256 KiB tmpfs under logs/): tunnels go on, no half line is left in the
// file, and once there is room again the relay logs how many lines it had to drop.
TEST_F(Faults, AFullLogDiskNeitherStopsServiceNorLeavesHalfALine) {
    std::string why;
    if (!privateMounts(why)) GTEST_SKIP() << why;
    fs::create_directories(dir_ / "logs");
    Mounted logs(dir_ / "logs", "tmpfs", MS_NOSUID | MS_NODEV, "size=256k,mode=0755");
    ASSERT_TRUE(logs.ok()) << logs.error();
    TestServer console(false, TestServer::echo());
    Relay relay(dir_, yaml(console.port(), "workers: 1\n"), env());
    ASSERT_TRUE(relay.ready()) << relay.stderrText() << readText(relay.logFile());

    const fs::path filler = dir_ / "logs" / "filler";
    ASSERT_TRUE(fillFileSystem(filler));

    for (int i = 0; i < 40; ++i) {
        Client c;
        ASSERT_EQ(tunnel(c, relay, console.port()), 200) << i;
        ASSERT_TRUE(c.send("full"));
        EXPECT_EQ(c.readExactly(4), "full") << i;
    }
    // Room again: the next line written first says how many were lost.
    ASSERT_EQ(::unlink(filler.c_str()), 0);
    Client after;
    EXPECT_EQ(tunnel(after, relay, console.port()), 200);
    after.close();
    ASSERT_TRUE(relay.waitForLog("log lines dropped")) << readText(relay.logFile());
    for (const auto& l : relay.log()) {
        if (l["msg"] == "log lines dropped") {
            EXPECT_GE(std::stol(l["dropped"]), 1);
        }
    }
    for (const auto& line : splitLines(readText(relay.logFile()))) {
        json_error_t err;
        json_t* j = json_loads(line.c_str(), 0, &err);
        EXPECT_NE(j, nullptr) << "not a whole JSON line: " << line;
        json_decref(j);
    }
}

// Issue 18 (packaging.md): a CA bundle RelayPro must create on a read-only path is exit 78 with
// the ReadWritePaths= hint, as the log and private folders have (here RELAYPRO_CA_BUNDLE_FILE
// in a read-only bind mount, which stops root too).
TEST_F(Faults, ACaBundleOnAReadOnlyPathIsExit78NamingReadWritePaths) {
    std::string why;
    if (!privateMounts(why)) GTEST_SKIP() << why;
    const fs::path ro = dir_ / "ca-readonly";
    fs::create_directories(ro);
    Mounted bind(ro, nullptr, MS_BIND, nullptr, ro);
    ASSERT_TRUE(bind.ok()) << bind.error();
    ASSERT_EQ(::mount(ro.c_str(), ro.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr), 0)
        << std::strerror(errno);
    Relay relay(dir_, "consoleAddress: c\norganizationId: 1\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\n",
                {{"RELAYPRO_CA_BUNDLE_FILE", (ro / "ca-bundle.pem").string()}});
    ASSERT_FALSE(relay.ready());
    EXPECT_EQ(relay.process().wait(30s), 78) << relay.stderrText();
    const std::string err = relay.stderrText();
    EXPECT_NE(err.find("CA bundle " + (ro / "ca-bundle.pem").string()), std::string::npos) << err;
    EXPECT_NE(err.find("Read-only file system"), std::string::npos) << err;
    EXPECT_NE(err.find("add its folder to ReadWritePaths= with a drop-in"), std::string::npos) << err;
}

// config.md, "Writes by RelayPro": a config folder the service cannot write (here a read-only
// bind mount, which stops root too) makes the registration an error that names the fix; the
// relay serves on with the registration in memory, and config.yml is untouched.
TEST_F(Faults, ARegistrationThatCannotBeStoredIsLoggedWithTheFixAndServiceGoesOn) {
    std::string why;
    if (!privateMounts(why)) GTEST_SKIP() << why;
    const fs::path conf = dir_ / "conf";
    fs::create_directories(conf / "logs");
    // The private folder outside: a Unix socket's path (its control socket) holds 107 bytes.
    const fs::path priv = fs::path("/tmp") / ("rp-faults-" + std::to_string(::getpid()));
    fs::create_directories(priv);
    struct Remove {
        fs::path p;
        ~Remove() {
            std::error_code ignored;
            fs::remove_all(p, ignored);
        }
    } removePriv{priv};
    ConsoleSim console(dir_.path());
    ASSERT_TRUE(console.started());
    console.setState(R"({"responders": {"resp-A": "cred-A7hQ"}})");
    const std::string original = unregisteredConfig(console, "privateFolder: " + priv.string() + "\n");
    writeText(conf / "config.yml", original);
    Mounted bind(conf, nullptr, MS_BIND, nullptr, conf);
    ASSERT_TRUE(bind.ok()) << bind.error();
    ASSERT_EQ(::mount(conf.c_str(), conf.c_str(), nullptr, MS_REMOUNT | MS_BIND | MS_RDONLY, nullptr), 0)
        << std::strerror(errno);
    Mounted logs(conf / "logs", "tmpfs", MS_NOSUID | MS_NODEV, "size=8m,mode=0755");
    ASSERT_TRUE(logs.ok()) << logs.error();

    Relay relay(dir_, "", {}, {}, RELAYPRO_BINARY, conf);
    ASSERT_TRUE(relay.ready()) << relay.stderrText() << readText(relay.logFile());
    ASSERT_TRUE(relay.waitForLog("registered")) << readText(relay.logFile());
    bool named = false;
    for (const auto& l : relay.log()) {
        if (l["msg"] != "the registration could not be stored in config.yml; it holds until the service stops")
            continue;
        named = l["error"].find("is not writable by the service user; fix:") != std::string::npos;
        EXPECT_TRUE(named) << l.text;
    }
    EXPECT_TRUE(named) << readText(relay.logFile());
    EXPECT_EQ(readText(conf / "config.yml"), original) << "config.yml is untouched";
    // Serving on, and registered: the token endpoint (which needs the registration) issues tokens.
    writeText(dir_ / "body.json", R"({"responderId":"resp-A","credential":"cred-A7hQ"})");
    CommandResult token = runCommand(
        "curl -s -k -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' "
        "--data-binary @" +
        (dir_ / "body.json").string() + " https://127.0.0.1:" + std::to_string(relay.httpsPort()) +
        "/relaypro/v1/token");
    EXPECT_EQ(token.out, "200");
    EXPECT_EQ(console.count("/api/public/relay-pro/register"), 1u);
    // Issue 16: the registration held in memory survives a reload and an upgrade (which read
    // config.yml again, and it does not have it): RelayPro's own unsaved writes apply on top.
    auto issued = [&] {
        return runCommand(
                   "curl -s -k -o /dev/null -w '%{http_code}' -H 'Content-Type: application/json' "
                   "--data-binary @" +
                   (dir_ / "body.json").string() + " https://127.0.0.1:" + std::to_string(relay.httpsPort()) +
                   "/relaypro/v1/token")
            .out;
    };
    relay.signal(SIGHUP);
    ASSERT_TRUE(relay.waitForLog("reload")) << readText(relay.logFile());
    std::this_thread::sleep_for(std::chrono::milliseconds(200));  // the settings reach the worker
    EXPECT_EQ(issued(), "200") << "after a reload";
    relay.signal(SIGUSR2);
    ASSERT_TRUE(relay.waitForLog("supervisor re-executed")) << readText(relay.logFile());
    EXPECT_TRUE(eventually([&] { return issued() == "200"; })) << "after an upgrade\n" << readText(relay.logFile());
    EXPECT_EQ(console.count("/api/public/relay-pro/register"), 1u) << "no second registration";
    // The operator makes the folder writable and sets a new deployment token: for that field the
    // file wins over RelayPro's unstored removal of it (the registration itself stays).
    ASSERT_EQ(::mount(conf.c_str(), conf.c_str(), nullptr, MS_REMOUNT | MS_BIND, nullptr), 0) << std::strerror(errno);
    std::string edited = original;
    edited.replace(edited.find("dt-Wq83nLp"), 10, "dt-Second1");
    writeText(conf / "config.yml", edited);
    relay.signal(SIGHUP);
    EXPECT_TRUE(relay.waitForLog("config.yml now sets a field RelayPro could not store; the file's value applies",
                                 {{"field", "deploymentToken"}}))
        << readText(relay.logFile());
    EXPECT_EQ(issued(), "200");
}

// A SIGKILL while the registration writes config.yml (the moment its temporary file appears):
// config.yml is the old file or the new one, never a mix; the next start completes the
// registration and leaves no temporary file behind.
TEST_F(Faults, ASigkillDuringTheRegistrationWriteLeavesTheOldOrTheNewFile) {
    ConsoleSim console(dir_.path());
    ASSERT_TRUE(console.started());
    const fs::path conf = dir_ / "conf";
    fs::create_directories(conf);
    const std::string original = unregisteredConfig(console);
    writeText(conf / "config.yml", original);
    int watch = ::inotify_init1(IN_CLOEXEC);
    ASSERT_GE(watch, 0);
    ASSERT_GE(::inotify_add_watch(watch, conf.c_str(), IN_CREATE), 0);

    Relay relay(dir_, "", {}, {}, RELAYPRO_BINARY, conf);
    ASSERT_TRUE(relay.ready()) << relay.stderrText() << readText(relay.logFile());
    bool seen = false;
    alignas(inotify_event) char buf[4096];
    while (!seen) {
        pollfd p{watch, POLLIN, 0};
        ASSERT_EQ(::poll(&p, 1, 20000), 1) << "the registration never wrote config.yml";
        ssize_t n = ::read(watch, buf, sizeof buf);
        ASSERT_GT(n, 0);
        for (char* at = buf; at < buf + n;) {
            auto* e = reinterpret_cast<inotify_event*>(at);
            if (e->len > 0 && std::string_view(e->name).starts_with(".config.yml")) seen = true;
            at += sizeof(inotify_event) + e->len;
        }
    }
    relay.stop(SIGKILL);
    ::close(watch);

    const std::string after = readText(conf / "config.yml");
    const bool old = after == original;
    const bool updated =
        after.find("\nsecurityToken: \"") != std::string::npos && after.find("deploymentToken") == std::string::npos;
    EXPECT_TRUE(old || updated) << after;
    std::printf("killed during the write: config.yml is the %s file\n", old ? "old" : "new");
    CommandResult check =
        runCommand("RELAYPRO_ENV_FILE=" + (dir_ / "no-environment").string() + " RELAYPRO_USER=relaypro-no-such-user " +
                   std::string(RELAYPRO_BINARY) + " check-config --config " + (conf / "config.yml").string() + " 2>&1");
    EXPECT_EQ(check.exitCode, 0) << check.out;

    Relay again(dir_, "", {}, {}, RELAYPRO_BINARY, conf);
    ASSERT_TRUE(again.ready()) << again.stderrText() << readText(again.logFile());
    if (old) {
        ASSERT_TRUE(again.waitForLog("registered"));
    }
    const std::string final = readText(conf / "config.yml");
    EXPECT_NE(final.find("\nsecurityToken: \""), std::string::npos) << final;
    EXPECT_EQ(final.find("deploymentToken"), std::string::npos) << final;
    if (old) {
        for (const auto& e : fs::directory_iterator(conf)) {
            EXPECT_FALSE(e.path().filename().string().starts_with(".config.yml")) << "left behind: " << e.path();
        }
    }
}

// Issue 17, item 6: the shipped binary has no test hook. With every hook's variable set as a
// test build would obey it, the shipped relaypro serves as usual: a held worker start would
// never be ready, SIGUSR1 would make a worker send garbage (and be replaced), and the upgrade
// would execute /nonexistent instead of the path it was started from.
TEST_F(Faults, TheShippedBinaryObeysNoTestHook) {
    TestServer console(false, TestServer::echo());
    writeText(dir_ / "hold", "");
    auto e = env();
    e["RELAYPRO_TEST_HOOKS"] = "1";
    e["RELAYPRO_TEST_HOLD_FILE"] = (dir_ / "hold").string();
    e["RELAYPRO_INSTALLED_BINARY"] = "/nonexistent";
    Relay relay(dir_, yaml(console.port(), "workers: 1\n"), e);
    ASSERT_TRUE(relay.ready()) << relay.stderrText();
    Client held;
    ASSERT_EQ(tunnel(held, relay, console.port()), 200);
    auto workers = relay.workerPids();
    ASSERT_EQ(workers.size(), 1U);
    ::kill(workers[0], SIGUSR1);  // ignored by a shipped worker
    ASSERT_TRUE(held.send("still"));
    ASSERT_EQ(held.readExactly(5), "still") << "the worker holding the tunnel is still there";
    ChildProcess up = ChildProcess::spawn({RELAYPRO_BINARY, "upgrade", "--config", (dir_ / "config.yml").string()}, e,
                                          dir_ / "up.out", dir_ / "up.err");
    ASSERT_EQ(up.wait(60s), 0) << readText(dir_ / "up.err") << readText(relay.logFile());
    EXPECT_TRUE(relay.waitForLog("upgrade: done"));
    for (const auto& l : relay.log()) {
        EXPECT_NE(l["msg"], "sandbox self-test") << "a shipped supervisor asks for no self-test";
        EXPECT_NE(l["binary"], "/nonexistent");
        EXPECT_NE(l["msg"], "replacing a worker");
    }
}

// Issue 16, item 2: SIGTERM while an upgrade's old generation drains (drainTimeout 60s) waited
// for that generation's deadline, 58 s, though shutdownGrace is 2 s and the supervisor had told
// systemd it needed 7 s (EXTEND_TIMEOUT_USEC). Now every generation's deadline comes forward to
// now + shutdownGrace, and the stop ends within what it announced.
TEST_F(Faults, AStopDuringADrainTakesOnlyTheGrace) {
    TestServer console(false, TestServer::echo());
    NotifyHarness harness(dir_ / "notify.sock");
    auto e = env();
    e["NOTIFY_SOCKET"] = (dir_ / "notify.sock").string();
    e["RELAYPRO_ENV_FILE"] = (dir_ / "environment.conf").string();
    Relay relay(dir_, yaml(console.port(), "workers: 1\nlimits:\n  drainTimeout: 60s\n  shutdownGrace: 2s\n"), e);
    ASSERT_TRUE(relay.ready()) << relay.stderrText();
    Client held;
    ASSERT_EQ(tunnel(held, relay, console.port()), 200);
    ChildProcess up = ChildProcess::spawn({RELAYPRO_BINARY, "upgrade", "--config", (dir_ / "config.yml").string()}, e,
                                          dir_ / "up.out", dir_ / "up.err");
    ASSERT_EQ(up.wait(60s), 0) << readText(dir_ / "up.err");
    ASSERT_TRUE(held.send("drains"));
    ASSERT_EQ(held.readExactly(6), "drains") << "the old generation holds its tunnel while it drains";
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_EQ(relay.stop(SIGTERM), 0);
    const auto took = std::chrono::steady_clock::now() - t0;
    auto extend = harness.with("EXTEND_TIMEOUT_USEC=");
    ASSERT_EQ(extend.size(), 1U);
    const long long announcedUs = std::atoll(extend[0].text.substr(extend[0].text.find('=') + 1).c_str());
    EXPECT_EQ(announcedUs, 7000000) << "shutdownGrace 2s + 5s";
    EXPECT_LT(took, std::chrono::microseconds(announcedUs)) << "the stop outlived what it told systemd";
    EXPECT_TRUE(held.waitClosed());
    // The draining worker ended at the grace, by itself, not by the backstop 2 s later.
    for (const auto& l : relay.log()) EXPECT_NE(l["msg"], "worker did not end within shutdownGrace; killed");
}

// Issue 16, item 2: on SIGTERM the listening sockets stayed open in the supervisor and in every
// worker until they exited: a new connection completed TCP and then waited, unanswered, for the
// whole grace. Now they close at the start of the stop, in every process, and a connection is
// refused while the open tunnels finish their grace.
TEST_F(Faults, AStopRefusesNewConnectionsAtOnce) {
    TestServer console(false, TestServer::echo());
    Relay relay(dir_, yaml(console.port(), "workers: 2\nlimits:\n  shutdownGrace: 30s\n"), env());
    ASSERT_TRUE(relay.ready()) << relay.stderrText();
    Client held;
    ASSERT_EQ(tunnel(held, relay, console.port()), 200);
    const uint16_t port = relay.httpsPort();
    const auto t0 = std::chrono::steady_clock::now();
    relay.signal(SIGTERM);
    bool refused = eventually(
        [&] {
            // Non-blocking: a connection queued where no one accepts must not hold the probe up.
            int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
            sockaddr_in a{};
            a.sin_family = AF_INET;
            a.sin_port = htons(port);
            a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            int err = ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 ? 0 : errno;
            if (err == EINPROGRESS) {
                pollfd p{fd, POLLOUT, 0};
                err = ::poll(&p, 1, 500) == 1 ? 0 : ETIMEDOUT;
                socklen_t len = sizeof err;
                if (err == 0) ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
            }
            ::close(fd);
            return err == ECONNREFUSED;
        },
        10s);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0);
    EXPECT_TRUE(refused) << "connections were still accepted (and never served) during the stop";
    RecordProperty("refusedAfterMs", static_cast<int>(ms.count()));
    std::printf("refused %lld ms after SIGTERM\n", static_cast<long long>(ms.count()));
    ASSERT_TRUE(held.send("grace")) << "the open tunnel keeps its grace";
    ASSERT_EQ(held.readExactly(5), "grace");
    held.close();
    EXPECT_EQ(relay.stop(SIGTERM), 0);
}

// Issue 16, item 5: the count of log lines dropped on a full disk restarted at each re-exec
// (13,354 reported where about 16,300 were lost). It crosses the upgrade now: the lines of 100
// refused requests (one "request refused" line each) lost before the upgrade are in the count
// reported after it.
TEST_F(Faults, DroppedLogLinesAreCountedAcrossAnUpgrade) {
    std::string why;
    if (!privateMounts(why)) GTEST_SKIP() << why;
    fs::create_directories(dir_ / "logs");
    Mounted logs(dir_ / "logs", "tmpfs", MS_NOSUID | MS_NODEV, "size=256k,mode=0755");
    ASSERT_TRUE(logs.ok()) << logs.error();
    TestServer console(false, TestServer::echo());
    auto e = env();
    e["RELAYPRO_ENV_FILE"] = (dir_ / "environment.conf").string();
    Relay relay(dir_, yaml(console.port(), "workers: 1\n"), e);
    ASSERT_TRUE(relay.ready()) << relay.stderrText() << readText(relay.logFile());
    const fs::path filler = dir_ / "logs" / "filler";
    ASSERT_TRUE(fillFileSystem(filler));
    for (int i = 0; i < 100; ++i) {
        Client c;
        ASSERT_TRUE(c.connect("127.0.0.1", relay.httpsPort(), true));
        ASSERT_TRUE(
            c.send("CONNECT console.test:1 HTTP/1.1\r\nProxy-Authorization: " + basicCredential() + "\r\n\r\n"));
        ASSERT_EQ(statusOf(c.readHead()), 403) << i;
    }
    relay.signal(SIGUSR2);
    auto generation = [&] {
        ChildProcess p = ChildProcess::spawn(
            {RELAYPRO_BINARY, "status", "--json", "--config", (dir_ / "config.yml").string()}, e, dir_ / "st.out");
        if (p.wait(30s) != 0) return 0LL;
        json_error_t err;
        json_t* j = json_loads(readText(dir_ / "st.out").c_str(), 0, &err);
        long long g = j != nullptr ? json_integer_value(json_object_get(j, "generation")) : 0;
        json_decref(j);
        return g;
    };
    ASSERT_TRUE(eventually([&] { return generation() == 2; }));
    ASSERT_EQ(::unlink(filler.c_str()), 0);
    Client after;
    EXPECT_EQ(tunnel(after, relay, console.port()), 200);
    after.close();
    ASSERT_TRUE(relay.waitForLog("log lines dropped")) << readText(relay.logFile());
    // The log file's last page had room for a few lines (tmpfs allocates pages): those are in
    // the file; every other refused request's line was dropped and is counted.
    long refusedWritten = 0, dropped = 0;
    for (const auto& l : relay.log()) {
        refusedWritten += l["msg"] == "request refused" ? 1 : 0;
        if (l["msg"] == "log lines dropped") dropped += std::stol(l["dropped"]);
    }
    EXPECT_GE(dropped, 100 - refusedWritten) << readText(relay.logFile());
}

// Issue 16, item 4: only what is handed over on purpose crosses the supervisor's re-exec. Each
// image of a registered relay left its libcurl wake-up socket pair open across the exec: 17
// descriptors, 47 after 15 upgrades. Counted with only the current workers left, after 1
// upgrade and after 6.
TEST_F(Faults, TheSupervisorsDescriptorsDoNotGrowAcrossUpgrades) {
    ConsoleSim console(dir_.path());
    ASSERT_TRUE(console.started());
    auto e = env();
    e["RELAYPRO_ENV_FILE"] = (dir_ / "environment.conf").string();
    Relay relay(dir_,
                console.registeredConfig() +
                    "serverName: \"127.0.0.1\"\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\nworkers: 2\npasswordFile: " +
                    (dir_ / "passwords.txt").string() + "\n",
                e);
    ASSERT_TRUE(relay.ready()) << relay.stderrText();
    const std::string proc = "/proc/" + std::to_string(relay.pid());
    auto upgrade = [&] {
        ChildProcess up = ChildProcess::spawn({RELAYPRO_BINARY, "upgrade", "--config", (dir_ / "config.yml").string()},
                                              e, dir_ / "up.out", dir_ / "up.err");
        EXPECT_EQ(up.wait(60s), 0) << readText(dir_ / "up.err");
    };
    auto settled = [&] {
        // The old workers had no tunnel to drain: they leave, and two children remain.
        EXPECT_TRUE(eventually([&] {
            std::istringstream children(readText(proc + "/task/" + std::to_string(relay.pid()) + "/children"));
            return std::distance(std::istream_iterator<int>(children), std::istream_iterator<int>()) == 2;
        }));
        EXPECT_TRUE(eventually([&] { return console.count("/api/public/relay-pro/heartbeat") > 0; }));
        // The fewest of a few looks: a console call in flight holds a connection for a moment.
        size_t fewest = SIZE_MAX;
        for (int look = 0; look < 5; ++look) {
            size_t n = 0;
            for ([[maybe_unused]] const auto& f : fs::directory_iterator(proc + "/fd")) ++n;
            fewest = std::min(fewest, n);
            std::this_thread::sleep_for(100ms);
        }
        return fewest;
    };
    upgrade();
    const size_t afterOne = settled();
    for (int i = 0; i < 5; ++i) upgrade();
    const size_t afterSix = settled();
    // One more is a connection that happened to be open at every look; the leak was one per upgrade.
    EXPECT_LE(afterSix, afterOne + 1) << "supervisor descriptors after 1 upgrade and after 6";
    std::printf("supervisor descriptors: %zu after 1 upgrade, %zu after 6\n", afterOne, afterSix);
}

}  // namespace
}  // namespace relaypro::testing
