// The process model (spec/lifecycle.md): a supervisor that forks workers from its own image and
// talks sd_notify to a service manager (played here by the project's own harness), workers that
// are confined and replaced, never taking the service down.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include "test/support/net.h"
#include "test/support/notify.h"
#include "test/support/process.h"
#include "test/support/relay.h"
#include "test/support/secrets.h"
#include "test/support/test_files.h"

namespace relaypro::testing {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A field of /proc/PID/status, or of /proc/PID/task/TID/status with `tid`.
std::string procStatus(pid_t pid, const std::string& key, pid_t tid = 0) {
    std::ifstream in("/proc/" + std::to_string(pid) + (tid > 0 ? "/task/" + std::to_string(tid) : "") + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + ":", 0) != 0) continue;
        std::string v = line.substr(key.size() + 1);
        size_t a = v.find_first_not_of(" \t");
        return a == std::string::npos ? "" : v.substr(a);
    }
    return "";
}

class ProcessModel : public ::testing::Test {
protected:
    void SetUp() override {
        writeText(dir_ / "passwords.txt", kPasswordLine);
        writeText(dir_ / "hosts", "127.0.0.1 localhost\n");
    }
    std::unique_ptr<Relay> start(uint16_t consolePort, const std::string& extra = "",
                                 std::map<std::string, std::string> env = {}) {
        env.emplace("RELAYPRO_HOSTS_FILE", (dir_ / "hosts").string());
        auto r = std::make_unique<Relay>(
            dir_,
            "consoleAddress: \"localhost:" + std::to_string(consolePort) +
                "\"\norganizationId: 1\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\npasswordFile: passwords.txt\n" + extra,
            env);
        EXPECT_TRUE(r->ready()) << r->stderrText() << readText(r->logFile());
        return r;
    }
    // Open descriptors of a process (a worker's tunnel is two: the client's and the upstream's).
    static size_t descriptorsOf(pid_t pid) {
        size_t n = 0;
        for ([[maybe_unused]] const auto& e :
             std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd"))
            ++n;
        return n;
    }
    static void tunnel(Client& c, const Relay& r, uint16_t port) {
        ASSERT_TRUE(c.connect("127.0.0.1", r.httpsPort(), true));
        ASSERT_TRUE(c.send("CONNECT localhost:" + std::to_string(port) +
                           " HTTP/1.1\r\nProxy-Authorization: " + basicCredential() + "\r\n\r\n"));
        ASSERT_EQ(statusOf(c.readHead()), 200);
    }
    TempDir dir_;
};

TEST_F(ProcessModel, SdNotifyLifecycleAndWatchdog) {
    TestServer echo(false, TestServer::echo());
    NotifyHarness harness(dir_ / "notify.sock");
    auto relay = start(echo.port(), "workers: 2\n",
                       {{"NOTIFY_SOCKET", (dir_ / "notify.sock").string()}, {"WATCHDOG_USEC", "400000"}});
    ASSERT_TRUE(eventually([&] { return !harness.with("READY=1").empty(); }));
    auto ready = harness.with("READY=1").front();
    EXPECT_EQ(ready.pid, relay->pid());
    EXPECT_NE(ready.text.find("STATUS=serving; 2 workers;"), std::string::npos) << ready.text;
    // lifecycle.md, STATUS line: the console it is (not) registered with (issue 18).
    EXPECT_NE(ready.text.find(" tunnels; not registered with localhost:" + std::to_string(echo.port()) + "\n"),
              std::string::npos)
        << ready.text;
    // WATCHDOG=1 about every 200 ms (half of WATCHDOG_USEC), from the supervisor.
    ASSERT_TRUE(eventually([&] { return harness.with("WATCHDOG=1").size() >= 5; }));
    auto pings = harness.with("WATCHDOG=1");
    for (const auto& p : pings) EXPECT_EQ(p.pid, relay->pid());
    auto gap = std::chrono::duration_cast<std::chrono::milliseconds>(pings[4].at - pings[0].at) / 4;
    EXPECT_GT(gap.count(), 100);
    EXPECT_LT(gap.count(), 400);
    // A supervisor whose loop is stopped sends no pings: systemd would restart it.
    relay->signal(SIGSTOP);
    std::this_thread::sleep_for(100ms);
    size_t before = harness.with("WATCHDOG=1").size();
    std::this_thread::sleep_for(1s);
    EXPECT_EQ(harness.with("WATCHDOG=1").size(), before);
    relay->signal(SIGCONT);
    ASSERT_TRUE(eventually([&] { return harness.with("WATCHDOG=1").size() > before; }));
    // Reload: RELOADING=1 with MONOTONIC_USEC, then READY=1 again.
    relay->signal(SIGHUP);
    ASSERT_TRUE(
        eventually([&] { return harness.with("RELOADING=1").size() == 1 && harness.with("READY=1").size() == 2; }));
    auto reloading = harness.with("RELOADING=1").front();
    EXPECT_NE(reloading.text.find("MONOTONIC_USEC="), std::string::npos);
    EXPECT_EQ(reloading.pid, relay->pid());
    EXPECT_EQ(harness.with("READY=1").back().pid, relay->pid());
    // Stop: STOPPING=1 (and room for the drain: EXTEND_TIMEOUT_USEC), exit 0.
    const pid_t supervisor = relay->pid();
    EXPECT_EQ(relay->stop(SIGTERM), 0);
    ASSERT_EQ(harness.with("STOPPING=1").size(), 1u);
    EXPECT_EQ(harness.with("STOPPING=1").front().pid, supervisor);
    ASSERT_EQ(harness.with("EXTEND_TIMEOUT_USEC=20000000").size(), 1u);  // shutdownGrace 15s + 5s
    for (const auto& m : harness.messages()) EXPECT_EQ(m.pid, harness.messages().front().pid) << m.text;
}

// What the sandbox lets a worker do, from its own self-test (RELAYPRO_TEST_HOOKS) and /proc.
void expectConfined(const Relay& relay, const std::filesystem::path& dir) {
    ASSERT_TRUE(relay.waitForLog("sandbox self-test"));
    ASSERT_TRUE(eventually([&] {
        int n = 0;
        for (const auto& l : relay.log()) n += l["msg"] == "sandbox self-test" ? 1 : 0;
        return n == 2;
    }));
    for (const auto& l : relay.log()) {
        if (l["msg"] != "sandbox self-test") continue;
        const std::string report = l["report"];
        // config.yml, the CA bundle path, the log file and the password file: none opens.
        EXPECT_NE(report.find("open:" + (dir / "config.yml").string() + "=EACCES"), std::string::npos) << report;
        EXPECT_NE(report.find("open:" + (dir / "passwords.txt").string() + "=EACCES"), std::string::npos) << report;
        EXPECT_NE(report.find("ca-bundle.pem=EACCES"), std::string::npos) << report;
        EXPECT_NE(report.find("socket:unix=EPERM"), std::string::npos) << report;
        EXPECT_NE(report.find("ptrace:supervisor=EPERM"), std::string::npos) << report;
        EXPECT_NE(report.find("process_vm_readv:supervisor=EPERM"), std::string::npos) << report;
        EXPECT_NE(report.find("kill:supervisor=EPERM"), std::string::npos) << report;
        EXPECT_NE(report.find("execve=EPERM"), std::string::npos) << report;
        EXPECT_NE(report.find("socket:inet=allowed"), std::string::npos) << report;
        // Issue 15, item 4: no resource limit of the supervisor's, no new process by any route.
        EXPECT_NE(report.find("prlimit:supervisor=EPERM"), std::string::npos) << report;
        EXPECT_NE(report.find("prlimit:self=allowed"), std::string::npos) << report;
        EXPECT_NE(report.find("fork=EPERM"), std::string::npos) << report;
        EXPECT_NE(report.find("clone:process=EPERM"), std::string::npos) << report;
        EXPECT_NE(report.find("clone3=ENOSYS"), std::string::npos) << report;
    }
    auto workers = relay.workerPids();
    ASSERT_EQ(workers.size(), 2u);
    for (pid_t pid : workers) {
        EXPECT_EQ(procStatus(pid, "NoNewPrivs"), "1");
        EXPECT_EQ(procStatus(pid, "Seccomp"), "2");
        // Every thread, not only the main one: seccomp, Landlock and no_new_privs bind the thread
        // that sets them and the threads it starts afterwards (the password-check thread).
        size_t threads = 0;
        for (const auto& t : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task")) {
            auto tid = static_cast<pid_t>(std::stol(t.path().filename().string()));
            EXPECT_EQ(procStatus(pid, "Seccomp", tid), "2") << "thread " << tid << " of worker " << pid;
            EXPECT_EQ(procStatus(pid, "NoNewPrivs", tid), "1") << "thread " << tid << " of worker " << pid;
            ++threads;
        }
        EXPECT_GE(threads, 2u) << "the password-check thread runs";
        for (const char* cap : {"CapInh", "CapPrm", "CapEff", "CapAmb"})
            EXPECT_EQ(procStatus(pid, cap), "0000000000000000") << cap;
        EXPECT_EQ(procStatus(pid, "Uid").substr(0, 5), "65534");  // nobody, whoever the supervisor is
        // No descriptor to a regular file.
        for (const auto& e : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
#ifdef RELAYPRO_SANITIZE_BUILD
            if (e.path().filename() == "2") continue;  // sanitizer builds keep stderr for their reports
#endif
            std::error_code ec;
            // Its own memory figure for the metrics (common/process_figures.h): opened before the
            // sandbox, it tells the worker nothing it does not know.
            if (std::filesystem::read_symlink(e.path(), ec) == "/proc/" + std::to_string(pid) + "/statm") continue;
            auto st = std::filesystem::status(e.path(), ec);
            EXPECT_FALSE(!ec && std::filesystem::is_regular_file(st))
                << pid << " holds " << std::filesystem::read_symlink(e.path());
        }
    }
}

TEST_F(ProcessModel, WorkersAreConfined) {
    TestServer echo(false, TestServer::echo());
    auto relay = start(echo.port(), "workers: 2\n", {{"RELAYPRO_TEST_HOOKS", "1"}});
    expectConfined(*relay, dir_.path());
    // The supervisor cannot be traced or read by its own uid either.
    EXPECT_EQ(procStatus(relay->pid(), "NoNewPrivs"), "0");
}

// As under systemd (User=): a relay started as nobody, with no switch of its own (setpriv
// switches, then execs it).
std::unique_ptr<Relay> startAsNobody(const TempDir& dir, const std::function<std::unique_ptr<Relay>()>& start) {
    EXPECT_EQ(::geteuid(), 0u) << "the test switches to nobody";
    for (const auto& e : std::filesystem::recursive_directory_iterator(dir.path())) {
        EXPECT_EQ(::lchown(e.path().c_str(), 65534, 65534), 0) << e.path();
    }
    EXPECT_EQ(::chown(dir.path().c_str(), 65534, 65534), 0);
    // setpriv after whatever wrapper the run already has: the old-kernel runs' wrapper needs root
    // to set up, and its filter stays on across setpriv's switch and exec.
    const char* outer = std::getenv("RELAYPRO_TEST_WRAPPER");
    const std::string kept = outer != nullptr ? std::string(outer) : "";
    ::setenv("RELAYPRO_TEST_WRAPPER",
             ((outer != nullptr ? kept + " " : "") + "/usr/bin/setpriv --reuid=65534 --regid=65534 --clear-groups --")
                 .c_str(),
             1);
    auto relay = start();
    if (outer != nullptr) {
        ::setenv("RELAYPRO_TEST_WRAPPER", kept.c_str(), 1);
    } else {
        ::unsetenv("RELAYPRO_TEST_WRAPPER");
    }
    return relay;
}

// The supervisor is not root, and its workers share its uid. The kernel then lets a worker
// signal, trace or limit the supervisor; only the sandbox stops it.
TEST_F(ProcessModel, WorkersAreConfinedWhenTheyShareTheSupervisorsUid) {
    ASSERT_EQ(::geteuid(), 0u) << "the test switches to nobody";
    TestServer echo(false, TestServer::echo());
    auto relay = startAsNobody(dir_, [&] {
        return start(echo.port(), "workers: 2\n", {{"RELAYPRO_TEST_HOOKS", "1"}});
    });
    ASSERT_TRUE(relay->ready());
    EXPECT_EQ(procStatus(relay->pid(), "Uid").substr(0, 5), "65534");
    expectConfined(*relay, dir_.path());
}

// lifecycle.md: the supervisor marks itself non-dumpable (PR_SET_DUMPABLE 0), so a process of its
// uid cannot trace it or read its memory. Started as under systemd (no credential change after
// the exec, which would also clear the flag), only its own prctl makes it so. The kernel shows
// it: the files of /proc/PID of a process that is not dumpable belong to root; those of a
// dumpable process of the same account (a sleep, started the same way) to that account.
TEST_F(ProcessModel, TheSupervisorIsNotDumpable) {
    ASSERT_EQ(::geteuid(), 0u) << "the test switches to nobody";
    TestServer echo(false, TestServer::echo());
    auto relay = startAsNobody(dir_, [&] { return start(echo.port()); });
    ASSERT_TRUE(relay->ready());
    ASSERT_EQ(procStatus(relay->pid(), "Uid").substr(0, 5), "65534");
    auto owner = [](pid_t pid) {
        struct stat st {};
        return ::stat(("/proc/" + std::to_string(pid) + "/environ").c_str(), &st) == 0 ? static_cast<long>(st.st_uid)
                                                                                       : -1L;
    };
    EXPECT_EQ(owner(relay->pid()), 0L) << "the supervisor is not dumpable";
    ChildProcess sleeper = ChildProcess::spawn(
        {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", "/bin/sleep", "60"},
        {{"PATH", "/usr/bin:/bin"}});
    EXPECT_TRUE(eventually([&] { return owner(sleeper.pid()) == 65534L; })) << "a dumpable process of nobody";
    sleeper.stop(SIGKILL);
}

// lifecycle.md, Stop: health answers 503 while the instance stops. A connection accepted before
// the stop asks after it (new ones are refused once every worker has closed its listeners).
TEST_F(ProcessModel, HealthAnswers503WhileStopping) {
    TestServer echo(false, TestServer::echo());
    auto relay = start(echo.port(), "limits:\n  shutdownGrace: 30s\n  headerTimeout: 60s\n");
    Client open;
    tunnel(open, *relay, echo.port());  // the stop waits for it
    Client pending;
    ASSERT_TRUE(pending.connect("127.0.0.1", relay->httpsPort(), true));  // nothing asked yet
    relay->signal(SIGTERM);
    ASSERT_TRUE(eventually([&] {
        int fd = connectTo("127.0.0.1", relay->httpsPort(), 200ms);
        if (fd >= 0) ::close(fd);
        return fd < 0;
    })) << "every worker drains";
    ASSERT_TRUE(pending.send("GET /relaypro/v1/health HTTP/1.1\r\nHost: relay\r\n\r\n"));
    std::string head = pending.readHead();
    EXPECT_EQ(statusOf(head), 503) << head;
    EXPECT_EQ(pending.readExactly(std::stoul(headerOf(head, "Content-Length"))), R"({"status":"draining"})");
    ASSERT_TRUE(open.send("tunnel"));
    EXPECT_EQ(open.readExactly(6), "tunnel") << "the tunnel runs on within the grace";
    open.close();
    EXPECT_EQ(relay->process().wait(30s), 0);
}

TEST_F(ProcessModel, KillingAWorkerEndsOnlyItsTunnelsAndItIsReplaced) {
    TestServer echo(false, TestServer::echo());
    auto relay = start(echo.port(), "workers: 2\n");
    // Open tunnels until both workers hold some: the kernel picks the worker, and a quiet
    // machine may give one worker many in a row, so count each worker's descriptors.
    auto workers = relay->workerPids();
    ASSERT_EQ(workers.size(), 2u);
    auto fds = &ProcessModel::descriptorsOf;
    const size_t base0 = fds(workers[0]), base1 = fds(workers[1]);
    std::vector<std::unique_ptr<Client>> tunnels;
    while (tunnels.size() < 200 && (tunnels.size() < 12 || fds(workers[0]) <= base0 || fds(workers[1]) <= base1)) {
        auto c = std::make_unique<Client>();
        tunnel(*c, *relay, echo.port());
        tunnels.push_back(std::move(c));
    }
    ASSERT_GT(fds(workers[0]), base0) << "worker " << workers[0] << " got none of " << tunnels.size() << " tunnels";
    ASSERT_GT(fds(workers[1]), base1) << "worker " << workers[1] << " got none of " << tunnels.size() << " tunnels";
    pid_t victim = workers[0];
    ASSERT_EQ(::kill(victim, SIGKILL), 0);
    // Tunnels of the other worker still carry bytes; the victim's are closed.
    int alive = 0, dead = 0;
    for (auto& c : tunnels) {
        if (c->send("x") && c->readExactly(1, 3s) == "x") {
            ++alive;
        } else {
            ++dead;
        }
    }
    EXPECT_GT(alive, 0);
    EXPECT_GT(dead, 0);
    EXPECT_EQ(static_cast<size_t>(alive + dead), tunnels.size());
    // A replacement is started after the first backoff step (100 ms) and serves. (How soon it
    // serves depends on the machine, so the test checks the delay the supervisor chose.)
    ASSERT_TRUE(eventually([&] { return relay->workerPids().size() == 3; }));
    EXPECT_TRUE(relay->waitForLog("worker exited unexpectedly", {{"workerPid", std::to_string(victim)}}));
    EXPECT_TRUE(relay->waitForLog("respawning a worker", {{"inMs", "100"}}));
    for (int i = 0; i < 6; ++i) {
        Client fresh;
        tunnel(fresh, *relay, echo.port());
        ASSERT_TRUE(fresh.send("y"));
        EXPECT_EQ(fresh.readExactly(1), "y");
    }
}

TEST_F(ProcessModel, AdoptsASocketFromSystemdSocketActivation) {
    if (::access("/usr/bin/systemd-socket-activate", X_OK) != 0)
        GTEST_SKIP() << "systemd-socket-activate is not installed";
    int probe = listenOn("127.0.0.1");
    uint16_t port = localPort(probe);
    ::close(probe);
    writeText(dir_ / "config.yml",
              "consoleAddress: \"localhost:1\"\norganizationId: 1\nworkers: 1\nhttpsProxy:\n  listen: \"127.0.0.1:" +
                  std::to_string(port) + "\"\n");
    // systemd-socket-activate listens, and starts the relay (with LISTEN_FDS) on the first connection.
    ChildProcess activator =
        ChildProcess::spawn({"/usr/bin/systemd-socket-activate", "-l", "127.0.0.1:" + std::to_string(port), "-E",
                             "RELAYPRO_ENV_FILE=" + (dir_ / "environment.conf").string(), RELAYPRO_BINARY, "run",
                             "--config", (dir_ / "config.yml").string(), "--user", "root"},
                            {{"PATH", "/usr/bin:/bin"}}, dir_ / "activate.out", dir_ / "activate.err");
    Client c;
    ASSERT_TRUE(eventually([&] { return c.connect("127.0.0.1", port, true); })) << readText(dir_ / "activate.err");
    ASSERT_TRUE(c.send("GET /relaypro/v1/health HTTP/1.1\r\nHost: r\r\n\r\n"));
    EXPECT_EQ(statusOf(c.readHead()), 200);
    // The supervisor's line may come after the worker's first answer (CI saw it so).
    EXPECT_TRUE(eventually([&] {
        return readText(dir_ / "logs" / "relaypro.log.txt").find("\"socketActivation\":true") != std::string::npos;
    })) << readText(dir_ / "logs" / "relaypro.log.txt");
    EXPECT_EQ(activator.stop(SIGTERM), 0);
}

// Accepts from the shared listening sockets are not spread evenly over the workers; a worker well
// above the average holds its accepts (supervisor/balance.h) and the others take new connections.
TEST_F(ProcessModel, AWorkerWellAboveTheAverageLeavesNewConnectionsToTheOthers) {
    TestServer echo(false, TestServer::echo());
    auto relay = start(echo.port(), "workers: 2\n");
    auto workers = relay->workerPids();
    ASSERT_EQ(workers.size(), 2u);
    const pid_t full = workers[0], other = workers[1];
    auto tunnelsOf = [](pid_t pid) { return descriptorsOf(pid) / 2; };
    // While the other worker is stopped, only `full` accepts: 200 tunnels, far above the margin
    // (64). (Should the stop outlast two pings, the other worker is replaced: no matter here.)
    ::kill(other, SIGSTOP);
    std::vector<std::unique_ptr<Client>> held;
    for (int i = 0; i < 200; ++i) {
        auto c = std::make_unique<Client>();
        tunnel(*c, *relay, echo.port());
        held.push_back(std::move(c));
    }
    ::kill(other, SIGCONT);
    ASSERT_TRUE(relay->waitForLog("a worker holds its accepts", {{"workerPid", std::to_string(full)}}))
        << "200 tunnels against none did not make the worker hold";
    // Until the other worker is within the margin of the average (72 more tunnels), `full` is
    // told to hold again every second: these 60 all go to the other worker.
    const size_t before = tunnelsOf(full);
    for (int i = 0; i < 60; ++i) {
        auto c = std::make_unique<Client>();
        tunnel(*c, *relay, echo.port());
        held.push_back(std::move(c));
    }
    EXPECT_LE(tunnelsOf(full), before + 2) << "the holding worker took new tunnels";
    // The held tunnels of both workers still carry bytes.
    for (size_t i = 0; i < held.size(); i += 37) {
        ASSERT_TRUE(held[i]->send("b"));
        EXPECT_EQ(held[i]->readExactly(1), "b");
    }
}

TEST_F(ProcessModel, AWorkerThatMissesTwoPingsIsReplaced) {
    TestServer echo(false, TestServer::echo());
    auto relay = start(echo.port(), "workers: 2\n");
    auto workers = relay->workerPids();
    ASSERT_EQ(workers.size(), 2u);
    ::kill(workers[0], SIGSTOP);  // alive but silent, like a worker stuck in a loop
    ASSERT_TRUE(relay->waitForLog("replacing a worker",
                                  {{"workerPid", std::to_string(workers[0])}, {"reason", "it missed two pings"}}));
    ASSERT_TRUE(eventually([&] { return relay->workerPids().size() == 3; }));
    EXPECT_TRUE(relay->waitForLog("worker exited unexpectedly", {{"workerPid", std::to_string(workers[0])}}));
    Client c;
    tunnel(c, *relay, echo.port());
}

TEST_F(ProcessModel, AWorkerThatSendsGarbageIsReplacedAlone) {
    TestServer echo(false, TestServer::echo());
    auto relay = start(echo.port(), "workers: 2\n", {{"RELAYPRO_TEST_HOOKS", "1"}});
    auto workers = relay->workerPids();
    ASSERT_EQ(workers.size(), 2u);
    ::kill(workers[0], SIGUSR1);  // test hook: garbage on the channel
    ASSERT_TRUE(relay->waitForLog("replacing a worker", {{"workerPid", std::to_string(workers[0])}}));
    ::kill(workers[1], SIGUSR2);  // test hook: a message a serving worker may not send
    ASSERT_TRUE(relay->waitForLog("replacing a worker", {{"workerPid", std::to_string(workers[1])}}));
    ASSERT_TRUE(eventually([&] { return relay->workerPids().size() == 4; }));
    bool garbage = false, unpermitted = false;
    for (const auto& l : relay->log()) {
        if (l["msg"] != "replacing a worker") continue;
        garbage = garbage || l["reason"].find("malformed frame header") != std::string::npos;
        unpermitted = unpermitted || l["reason"].find("it sent Hello while serving") != std::string::npos;
    }
    EXPECT_TRUE(garbage);
    EXPECT_TRUE(unpermitted);
    // The supervisor is unharmed and the service serves.
    EXPECT_TRUE(relay->process().running());
    Client c;
    tunnel(c, *relay, echo.port());
}

}  // namespace
}  // namespace relaypro::testing
