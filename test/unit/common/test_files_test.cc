// The tests' own file helpers (test/support/test_files.h).
#include "test/support/test_files.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <string>

namespace {

using relaypro::testing::readText;
using relaypro::testing::TempDir;
using relaypro::testing::writeText;

// A read that fails after the open (a directory: EISDIR) reads as "", as a file that cannot be
// opened does, instead of throwing from inside the stream.
TEST(TestFiles, AReadThatFailsAfterItsOpenIsEmpty) {
    TempDir dir;
    EXPECT_EQ(readText(dir.path()), "");
    EXPECT_EQ(readText(dir.path() / "absent"), "");
    writeText(dir.path() / "f", "a\nb");
    EXPECT_EQ(readText(dir.path() / "f"), "a\nb");
}

// The case that failed Upgrade.AnUpgradeClientThatLeavesCostsNoCpu under ASan once: /proc/PID/stat
// opened while the process lived and read after it was gone fails with ESRCH. (readText opens and
// reads at once; this does the two apart to show what it must survive.)
TEST(TestFiles, AProcFileOfAProcessGoneMeanwhileFailsItsRead) {
    pid_t child = ::fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
        ::pause();
        ::_exit(0);
    }
    std::ifstream in("/proc/" + std::to_string(child) + "/stat", std::ios::binary);
    ASSERT_TRUE(in.is_open());
    ::kill(child, SIGKILL);
    ASSERT_EQ(::waitpid(child, nullptr, 0), child);
    EXPECT_THROW((void)std::string(std::istreambuf_iterator<char>(in), {}), std::ios_base::failure);
}

}  // namespace
