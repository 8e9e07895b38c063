// Child processes for integration tests: spawned with an explicit environment and output files,
// ended by PID (never by name), always reaped — a test never leaves a process behind.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace relaypro::testing {

class ChildProcess {
public:
    ChildProcess() = default;
    ChildProcess(const ChildProcess&) = delete;
    ChildProcess& operator=(const ChildProcess&) = delete;
    ChildProcess(ChildProcess&& o) noexcept : pid_(o.pid_), exitCode_(o.exitCode_) { o.pid_ = -1; }
    ChildProcess& operator=(ChildProcess&& o) noexcept {
        if (this != &o) {
            kill();
            pid_ = o.pid_;
            exitCode_ = o.exitCode_;
            o.pid_ = -1;
        }
        return *this;
    }
    ~ChildProcess() { kill(); }

    // `env` is the whole environment of the child. Output goes to the given files ("" = /dev/null).
    static ChildProcess spawn(const std::vector<std::string>& argv, const std::map<std::string, std::string>& env,
                              const std::filesystem::path& out = {}, const std::filesystem::path& err = {},
                              const std::filesystem::path& cwd = {}) {
        std::vector<std::string> argStore = argv;
        std::vector<char*> args;
        for (auto& a : argStore) args.push_back(a.data());
        args.push_back(nullptr);
        std::vector<std::string> envStore;
        for (const auto& [k, v] : env) envStore.push_back(k + "=" + v);
        std::vector<char*> envp;
        for (auto& e : envStore) envp.push_back(e.data());
        envp.push_back(nullptr);
        // fork + exec rather than posix_spawn: the child asks for SIGKILL when this test process
        // dies, so a test that crashes or aborts leaves no relay, console or squid behind.
        const std::string outPath = out.empty() ? "/dev/null" : out.string();
        const std::string errPath = err.empty() ? "/dev/null" : err.string();
        const std::string cwdPath = cwd.string();
        const pid_t parent = ::getpid();
        ChildProcess p;
        p.pid_ = ::fork();
        if (p.pid_ == 0) {
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
            if (::getppid() != parent) ::_exit(127);
            int in = ::open("/dev/null", O_RDONLY);
            int o = ::open(outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            int e = ::open(errPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (in < 0 || o < 0 || e < 0 || ::dup2(in, 0) < 0 || ::dup2(o, 1) < 0 || ::dup2(e, 2) < 0) ::_exit(127);
            if (!cwdPath.empty() && ::chdir(cwdPath.c_str()) != 0) ::_exit(127);
            sigset_t none;
            sigemptyset(&none);
            ::sigprocmask(SIG_SETMASK, &none, nullptr);
            ::execve(args[0], args.data(), envp.data());
            ::_exit(127);
        }
        return p;
    }

    [[nodiscard]] pid_t pid() const { return pid_; }
    [[nodiscard]] bool started() const { return pid_ > 0; }

    // Whether it still runs (reaps it if it ended).
    bool running() {
        if (pid_ <= 0) return false;
        int status = 0;
        pid_t r = ::waitpid(pid_, &status, WNOHANG);
        if (r == 0) return true;
        record(status);
        return false;
    }

    void signal(int sig) const {
        if (pid_ > 0) ::kill(pid_, sig);
    }

    // Sends `sig`, waits up to `timeout` (then SIGKILL), returns the exit code (128 + signal
    // when killed by one).
    int stop(int sig = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        if (pid_ <= 0) return exitCode_;
        ::kill(pid_, sig);
        return wait(timeout);
    }

    // Waits for the process to end by itself (SIGKILL after `timeout`).
    int wait(std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
        if (pid_ <= 0) return exitCode_;
        auto deadline = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < deadline) {
            if (!running()) return exitCode_;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        kill();
        return exitCode_;
    }

    [[nodiscard]] int exitCode() const { return exitCode_; }

private:
    void record(int status) {
        exitCode_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        pid_ = -1;
    }
    void kill() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        record(status);
    }

    pid_t pid_ = -1;
    int exitCode_ = -1;
};

// Polls `ready` every few milliseconds until it holds or `timeout` passes. The timeout is a
// safety net for a broken build, not a measure of speed: keep it generous.
template <typename F>
bool eventually(F ready, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
        if (ready()) return true;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return ready();
}

}  // namespace relaypro::testing
