// Files for tests: a unique temporary folder per test, removed with its content afterwards,
// whole-file reads and writes, and environment variables set for one test.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

namespace relaypro::testing {

class TempDir {
public:
    TempDir() {
        static std::atomic<int> counter{0};
        const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
        std::string name = info != nullptr ? info->name() : "test";
        path_ = std::filesystem::temp_directory_path() /
                ("relaypro-" + name + "-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
        std::filesystem::remove_all(path_);
        std::filesystem::create_directories(path_);
        ::chmod(path_.c_str(), 0755);
    }
    ~TempDir() {
        std::error_code ignored;
        ::chmod(path_.c_str(), 0755);
        std::filesystem::remove_all(path_, ignored);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;

    [[nodiscard]] const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

private:
    std::filesystem::path path_;
};

// Tests that call fork() or start a thread skip where neither works: under this machine's
// qemu-user 7.2 (kernel 6.18) a fork()ed child or a second thread of an emulated arm64 process
// hangs — a five-line C program with pthread_create + pthread_join does — while posix_spawn,
// and so popen and system, work. test/cross sets RELAYPRO_TEST_UNDER_QEMU.
#define RELAYPRO_SKIP_UNDER_QEMU()                                                                                   \
    do {                                                                                                             \
        if (std::getenv("RELAYPRO_TEST_UNDER_QEMU") != nullptr)                                                      \
            GTEST_SKIP() << "forks or starts a thread, which hangs under qemu-user here (RELAYPRO_TEST_UNDER_QEMU)"; \
    } while (0)

// Sets (or, with nullptr, removes) an environment variable for one test; puts it back afterwards.
class ScopedEnv {
public:
    ScopedEnv(const char* name, const char* value) : name_(name) {
        if (const char* old = std::getenv(name)) old_ = old;
        if (value != nullptr) {
            ::setenv(name, value, 1);
        } else {
            ::unsetenv(name);
        }
    }
    ~ScopedEnv() {
        if (old_) {
            ::setenv(name_.c_str(), old_->c_str(), 1);
        } else {
            ::unsetenv(name_.c_str());
        }
    }
    ScopedEnv(const ScopedEnv&) = delete;
    ScopedEnv& operator=(const ScopedEnv&) = delete;

private:
    std::string name_;
    std::optional<std::string> old_;
};

// The file's bytes; "" when it cannot be opened or a read fails. A file of /proc/PID/ opens and
// then fails its read with ESRCH when the process ends in between (tests that scan /proc race
// every process on the machine), and libstdc++'s filebuf throws on a failed read.
inline std::string readText(const std::filesystem::path& p) {
    std::ifstream in(p, std::ios::binary);
    try {
        return std::string(std::istreambuf_iterator<char>(in), {});
    } catch (const std::ios_base::failure&) {
        return {};
    }
}

inline std::filesystem::path writeText(const std::filesystem::path& p, const std::string& content) {
    std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
    return p;
}

inline std::vector<std::string> splitLines(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) out.push_back(line);
    return out;
}

// Runs a shell command (a real tool such as openssl) and returns its standard output with the
// trailing newline removed. A failing command fails the calling test.
inline std::string commandOutput(const std::string& command) {
    std::string out;
    FILE* p = ::popen(command.c_str(), "r");
    if (p == nullptr) {
        ADD_FAILURE() << "cannot run " << command;
        return out;
    }
    char buf[4096];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    int status = ::pclose(p);
    EXPECT_EQ(status, 0) << command;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

struct CommandResult {
    int exitCode = -1;
    std::string out;  // standard output (stderr too when the command redirects it)
};

// Runs a shell command and returns its exit code and output, whatever the exit code.
inline CommandResult runCommand(const std::string& command) {
    CommandResult r;
    FILE* p = ::popen(command.c_str(), "r");
    if (p == nullptr) return r;
    char buf[4096];
    size_t n = 0;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
    int status = ::pclose(p);
    r.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return r;
}

}  // namespace relaypro::testing
