#include "common/file_io.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "test/support/test_files.h"

namespace relaypro {
namespace {

namespace fs = std::filesystem;

class FileIo : public ::testing::Test {
protected:
    testing::TempDir tmp_;
    const fs::path& dir_ = tmp_.path();
};

TEST_F(FileIo, ReadsWithinTheCapAndRefusesMore) {
    std::ofstream(dir_ / "f") << "hello";
    auto ok = readFile((dir_ / "f").string(), 5);
    ASSERT_TRUE(ok.ok());
    EXPECT_EQ(*ok, "hello");
    auto big = readFile((dir_ / "f").string(), 4);
    ASSERT_FALSE(big.ok());
    EXPECT_NE(big.error().message.find("larger than 4 bytes"), std::string::npos);
    auto missing = readFile((dir_ / "nope").string(), 10);
    ASSERT_FALSE(missing.ok());
    EXPECT_EQ(missing.error().sysErrno, ENOENT);
    auto folder = readFile(dir_.string(), 10);
    ASSERT_FALSE(folder.ok());
    EXPECT_NE(folder.error().message.find("is not a regular file"), std::string::npos);
}

TEST_F(FileIo, NewFilesAre0600AndExistingModesAreKept) {
    std::string p = (dir_ / "new").string();
    ASSERT_TRUE(writeFileAtomic(p, "x").ok());
    struct stat st {};
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    ::chmod(p.c_str(), 0644);
    ASSERT_TRUE(writeFileAtomic(p, "yy").ok());
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0644u);
    EXPECT_EQ(*readFile(p, 10), "yy");
    AtomicWriteOptions o;
    o.mode = 0640;
    ASSERT_TRUE(writeFileAtomic(p, "z", o).ok());
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
}

TEST_F(FileIo, ReportsEachStepInOrder) {
    std::vector<std::string> steps;
    AtomicWriteOptions o;
    o.onStep = [&](std::string_view s) { steps.emplace_back(s); };
    ASSERT_TRUE(writeFileAtomic((dir_ / "s").string(), "data", o).ok());
    EXPECT_EQ(steps, (std::vector<std::string>{"opened", "written", "synced", "renamed"}));
}

TEST_F(FileIo, FailsCleanlyInAMissingFolder) {
    auto s = writeFileAtomic((dir_ / "missing" / "f").string(), "x");
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("cannot open folder"), std::string::npos);
}

TEST_F(FileIo, RemovesOnlyItsOwnStaleTemporaries) {
    std::string p = (dir_ / "config.yml").string();
    std::ofstream(p) << "x";
    std::ofstream(dir_ / ".config.yml.relaypro-tmp-0123456789abcdef") << "partial";
    std::ofstream(dir_ / ".config.yml.relaypro-tmp-short") << "not ours";
    std::ofstream(dir_ / "other") << "keep";
    fs::create_symlink("/etc/passwd", dir_ / ".config.yml.relaypro-tmp-fedcba9876543210");
    removeStaleTemporaries(p);
    EXPECT_FALSE(fs::exists(dir_ / ".config.yml.relaypro-tmp-0123456789abcdef"));
    EXPECT_TRUE(fs::exists(dir_ / ".config.yml.relaypro-tmp-short"));
    EXPECT_TRUE(fs::is_symlink(dir_ / ".config.yml.relaypro-tmp-fedcba9876543210"));
    EXPECT_TRUE(fs::exists(dir_ / "other"));
}

TEST(Paths, SplitAndResolve) {
    EXPECT_EQ(dirName("/a/b/c.yml"), "/a/b");
    EXPECT_EQ(dirName("c.yml"), ".");
    EXPECT_EQ(dirName("/c.yml"), "/");
    EXPECT_EQ(baseName("/a/b/c.yml"), "c.yml");
    EXPECT_EQ(resolvePath("/a", "b"), "/a/b");
    EXPECT_EQ(resolvePath("/a/", "b"), "/a/b");
    EXPECT_EQ(resolvePath("/a", "/b"), "/b");
    EXPECT_EQ(resolvePath("/a", ""), "");
}

}  // namespace
}  // namespace relaypro
