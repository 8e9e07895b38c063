#include "supervisor/log_sink.h"

#include <gtest/gtest.h>
#include <jansson.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "test/support/test_files.h"

namespace relaypro {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::system_clock;
using testing::readText;
using testing::splitLines;
using testing::TempDir;

std::string gunzip(const fs::path& p) {
    gzFile gz = gzopen(p.c_str(), "rb");
    EXPECT_NE(gz, nullptr);
    std::string out;
    char buf[4096];
    int n;
    while ((n = gzread(gz, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    gzclose(gz);
    return out;
}

std::vector<std::string> listDir(const fs::path& dir) {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
}

// A fixed, steppable clock so rotated names and ages are exact.
struct FakeClock {
    Clock::time_point now = Clock::time_point(std::chrono::seconds(1795960420)) + 123ms;  // 2026-11-29T13:53:40.123Z
};

class LogSinkTest : public ::testing::Test {
protected:
    void SetUp() override { RELAYPRO_SKIP_UNDER_QEMU(); }  // the sink compresses on a thread
    std::unique_ptr<LogSink> open(LogSinkOptions o) {
        if (o.path.empty()) o.path = (dir_ / "logs" / "relaypro.log.txt").string();
        o.clock = [this] { return clock_.now; };
        auto s = LogSink::open(std::move(o));
        EXPECT_TRUE(s.ok()) << (s.ok() ? "" : s.error().message);
        return s.ok() ? std::move(*s) : nullptr;
    }

    static std::string line(int i, size_t pad = 0) {
        return "{\"n\":" + std::to_string(i) + ",\"pad\":\"" + std::string(pad, 'x') + "\"}\n";
    }

    TempDir tmp_;
    const fs::path& dir_ = tmp_.path();
    FakeClock clock_;
};

TEST_F(LogSinkTest, CreatesFolderAndFileAndAppendsRecords) {
    auto sink = open({});
    Logger log(sink.get(), "supervisor");
    log.info("start", {{"version", "0.1.0"}});
    log.info("ready");
    fs::path file = dir_ / "logs" / "relaypro.log.txt";
    struct stat st {};
    ASSERT_EQ(::stat((dir_ / "logs").c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0750u);
    ASSERT_EQ(::stat(file.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    auto got = splitLines(readText(file));
    ASSERT_EQ(got.size(), 2u);
    json_error_t err;
    json_t* j = json_loads(got[0].c_str(), 0, &err);
    ASSERT_NE(j, nullptr);
    EXPECT_STREQ(json_string_value(json_object_get(j, "msg")), "start");
    EXPECT_STREQ(json_string_value(json_object_get(j, "component")), "supervisor");
    EXPECT_STREQ(json_string_value(json_object_get(j, "version")), "0.1.0");
    json_decref(j);
}

// Issue 18: a log path in folders that do not exist yet gets them all (0750), the way the
// logs/ folder itself is made; a folder on the way may be a link, a file there is refused.
TEST_F(LogSinkTest, CreatesEveryMissingFolderOfTheLogPath) {
    LogSinkOptions o;
    o.path = (dir_ / "logs" / "archive" / "2026" / "relaypro.log.txt").string();
    auto sink = open(o);
    ASSERT_NE(sink, nullptr);
    Logger(sink.get(), "supervisor").info("start");
    for (const fs::path& d : {dir_ / "logs", dir_ / "logs" / "archive", dir_ / "logs" / "archive" / "2026"}) {
        struct stat st {};
        ASSERT_EQ(::lstat(d.c_str(), &st), 0) << d;
        EXPECT_TRUE(S_ISDIR(st.st_mode)) << d;
        EXPECT_EQ(st.st_mode & 07777, 0750u) << d;
    }
    EXPECT_EQ(splitLines(readText(o.path)).size(), 1u);

    fs::create_directories(dir_ / "elsewhere");
    fs::create_symlink(dir_ / "elsewhere", dir_ / "linked");
    o.path = (dir_ / "linked" / "sub" / "relaypro.log.txt").string();
    EXPECT_NE(open(o), nullptr);
    EXPECT_TRUE(fs::is_directory(dir_ / "elsewhere" / "sub"));

    relaypro::testing::writeText(dir_ / "plain", "not a folder");
    o.path = (dir_ / "plain" / "sub" / "relaypro.log.txt").string();
    auto refused = LogSink::open(o);
    ASSERT_FALSE(refused.ok());
    EXPECT_NE(refused.error().message.find((dir_ / "plain").string() + " is not a folder"), std::string::npos)
        << refused.error().message;
}

TEST_F(LogSinkTest, RotatedNamesCarryTheUtcTimestamp) {
    EXPECT_EQ(LogSink::rotatedName("relaypro.log.txt", clock_.now), "relaypro.log-2026-11-29T13-53-40.123.txt");
    EXPECT_EQ(LogSink::rotatedName("relaypro", clock_.now), "relaypro-2026-11-29T13-53-40.123");
    EXPECT_EQ(LogSink::rotatedName("a.json", clock_.now + 1h + 5ms), "a-2026-11-29T14-53-40.128.json");
}

TEST_F(LogSinkTest, RotatesBeforeALineWouldPassMaxSizeAndCompresses) {
    auto sink = open({.maxSize = 300});
    for (int i = 0; i < 3; ++i) sink->writeLine(line(i, 80));  // ~92 bytes each: 3 fit in 300
    clock_.now += 1s;
    sink->writeLine(line(3, 80));  // would pass 300: rotates first
    sink->waitForBackground();
    fs::path logs = dir_ / "logs";
    EXPECT_EQ(listDir(logs),
              (std::vector<std::string>{"relaypro.log-2026-11-29T13-53-41.123.txt.gz", "relaypro.log.txt"}));
    EXPECT_EQ(readText(logs / "relaypro.log.txt"), line(3, 80));
    EXPECT_EQ(gunzip(logs / "relaypro.log-2026-11-29T13-53-41.123.txt.gz"), line(0, 80) + line(1, 80) + line(2, 80));
}

TEST_F(LogSinkTest, NoCompressKeepsRotatedFilesPlainAndALongLineStillLands) {
    auto sink = open({.maxSize = 50, .compress = false});
    sink->writeLine(line(0, 100));  // longer than maxSize: written to the empty file
    sink->writeLine(line(1, 100));
    sink->waitForBackground();
    auto names = listDir(dir_ / "logs");
    ASSERT_EQ(names.size(), 2u);
    EXPECT_EQ(names[0], "relaypro.log-2026-11-29T13-53-40.123.txt");
    EXPECT_EQ(readText(dir_ / "logs" / names[0]), line(0, 100));
    EXPECT_EQ(readText(dir_ / "logs" / "relaypro.log.txt"), line(1, 100));
}

TEST_F(LogSinkTest, TwoRotationsInOneMillisecondGetDistinctNames) {
    auto sink = open({.maxSize = 10, .compress = false});
    for (int i = 0; i < 4; ++i) sink->writeLine(line(i));
    sink->waitForBackground();
    auto names = listDir(dir_ / "logs");
    EXPECT_EQ(names, (std::vector<std::string>{"relaypro.log-2026-11-29T13-53-40.123.txt",
                                               "relaypro.log-2026-11-29T13-53-40.124.txt",
                                               "relaypro.log-2026-11-29T13-53-40.125.txt", "relaypro.log.txt"}));
}

TEST_F(LogSinkTest, KeepsAtMostMaxBackups) {
    auto sink = open({.maxSize = 10, .maxBackups = 2});
    for (int i = 0; i < 6; ++i) {
        clock_.now += 1s;
        sink->writeLine(line(i));
    }
    sink->waitForBackground();
    EXPECT_EQ(listDir(dir_ / "logs"),
              (std::vector<std::string>{"relaypro.log-2026-11-29T13-53-45.123.txt.gz",
                                        "relaypro.log-2026-11-29T13-53-46.123.txt.gz", "relaypro.log.txt"}));
    EXPECT_EQ(gunzip(dir_ / "logs" / "relaypro.log-2026-11-29T13-53-46.123.txt.gz"), line(4));
}

TEST_F(LogSinkTest, RemovesBackupsOlderThanMaxAgeAndLeavesOtherFilesAlone) {
    fs::create_directories(dir_ / "logs");
    auto old = clock_.now - 30 * 24h;
    auto recent = clock_.now - 2 * 24h;
    std::ofstream(dir_ / "logs" / LogSink::rotatedName("relaypro.log.txt", old)) << "old\n";
    std::ofstream(dir_ / "logs" / (LogSink::rotatedName("relaypro.log.txt", old - 1s) + ".gz")) << "old gz\n";
    std::ofstream(dir_ / "logs" / (LogSink::rotatedName("relaypro.log.txt", recent) + ".gz")) << "recent\n";
    std::ofstream(dir_ / "logs" / "notes.txt") << "operator's file\n";
    std::ofstream(dir_ / "logs" / "relaypro.log-garbage.txt") << "not a rotation\n";
    auto sink = open({.maxAge = 28 * 24h, .compress = false});
    sink->waitForBackground();
    EXPECT_EQ(listDir(dir_ / "logs"),
              (std::vector<std::string>{"notes.txt", "relaypro.log-2026-11-27T13-53-40.123.txt.gz",
                                        "relaypro.log-garbage.txt", "relaypro.log.txt"}));
}

TEST_F(LogSinkTest, CompressesBackupsThatAnEarlierRunLeftPlain) {
    fs::create_directories(dir_ / "logs");
    std::string name = LogSink::rotatedName("relaypro.log.txt", clock_.now - 1h);
    std::ofstream(dir_ / "logs" / name) << "left behind\n";
    auto sink = open({});
    sink->waitForBackground();
    EXPECT_FALSE(fs::exists(dir_ / "logs" / name));
    EXPECT_EQ(gunzip(dir_ / "logs" / (name + ".gz")), "left behind\n");
}

TEST_F(LogSinkTest, ReopenFollowsAnExternalRotation) {
    auto sink = open({});
    sink->writeLine(line(1));
    fs::rename(dir_ / "logs" / "relaypro.log.txt", dir_ / "logs" / "moved.txt");
    sink->writeLine(line(2));  // still goes to the moved file, like any open file
    ASSERT_TRUE(sink->reopen().ok());
    sink->writeLine(line(3));
    EXPECT_EQ(readText(dir_ / "logs" / "moved.txt"), line(1) + line(2));
    EXPECT_EQ(readText(dir_ / "logs" / "relaypro.log.txt"), line(3));
}

TEST_F(LogSinkTest, CopiesLinesToTheEchoDescriptor) {
    int fds[2];
    ASSERT_EQ(::pipe(fds), 0);
    auto sink = open({.echoFd = fds[1]});
    sink->writeLine(line(7));
    char buf[256] = {};
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    EXPECT_EQ(std::string(buf, static_cast<size_t>(n)), line(7));
    ::close(fds[0]);
    ::close(fds[1]);
}

TEST_F(LogSinkTest, RefusesASymbolicLinkAsTheLogFile) {
    fs::create_directories(dir_ / "logs");
    fs::create_symlink("/etc/passwd", dir_ / "logs" / "relaypro.log.txt");
    LogSinkOptions o;
    o.path = (dir_ / "logs" / "relaypro.log.txt").string();
    auto s = LogSink::open(o);
    EXPECT_FALSE(s.ok());
}

// A full disk, simulated with the file-size limit (writes past it fail with EFBIG like ENOSPC):
// lines are dropped and counted, never half-written, and the count is logged once writing works.
TEST_F(LogSinkTest, FullDiskDropsAndCountsLinesThenReportsThem) {
    RELAYPRO_SKIP_UNDER_QEMU();
    fs::path file = dir_ / "logs" / "relaypro.log.txt";
    pid_t pid = ::fork();
    if (pid == 0) {
        ::signal(SIGXFSZ, SIG_IGN);
        LogSinkOptions o;
        o.path = file.string();
        auto sink = LogSink::open(o);
        if (!sink) ::_exit(10);
        (*sink)->writeLine(line(1, 100));  // 112 bytes
        struct rlimit lim {
            200, RLIM_INFINITY
        };
        if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(11);
        (*sink)->writeLine(line(2, 100));  // would end at 224 > 200: partial, cut back, dropped
        (*sink)->writeLine(line(3, 100));
        (*sink)->writeLine(line(4, 10));  // 22 bytes: fits... but the drop report comes first
        if ((*sink)->droppedSinceLastReport() != 3) ::_exit(12);
        lim.rlim_cur = RLIM_INFINITY;
        if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) ::_exit(13);
        (*sink)->writeLine(line(5));
        if ((*sink)->droppedSinceLastReport() != 0 || (*sink)->droppedTotal() != 3) ::_exit(14);
        ::_exit(0);
    }
    int status = 0;
    ASSERT_EQ(::waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status));
    ASSERT_EQ(WEXITSTATUS(status), 0);
    auto got = splitLines(readText(file));
    ASSERT_EQ(got.size(), 3u) << readText(file);
    EXPECT_EQ(got[0] + "\n", line(1, 100));
    json_error_t err;
    json_t* j = json_loads(got[1].c_str(), 0, &err);
    ASSERT_NE(j, nullptr) << got[1];
    EXPECT_STREQ(json_string_value(json_object_get(j, "msg")), "log lines dropped");
    EXPECT_STREQ(json_string_value(json_object_get(j, "level")), "warn");
    EXPECT_EQ(json_integer_value(json_object_get(j, "dropped")), 3);
    json_decref(j);
    EXPECT_EQ(got[2] + "\n", line(5));
}

TEST(Gzip, CompressesAndRemovesTheOriginal) {
    TempDir tmp;
    const fs::path& dir = tmp.path();
    std::string content;
    for (int i = 0; i < 10000; ++i) content += "line " + std::to_string(i) + "\n";
    std::ofstream(dir / "f.txt") << content;
    ASSERT_TRUE(gzipFile((dir / "f.txt").string()).ok());
    EXPECT_FALSE(fs::exists(dir / "f.txt"));
    EXPECT_EQ(gunzip(dir / "f.txt.gz"), content);
    EXPECT_LT(fs::file_size(dir / "f.txt.gz"), content.size() / 4);
    EXPECT_FALSE(gzipFile((dir / "missing.txt").string()).ok());
}

}  // namespace
}  // namespace relaypro
