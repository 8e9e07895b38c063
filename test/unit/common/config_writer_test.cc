#include "common/config_writer.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/config.h"
#include "common/file_io.h"
#include "common/yaml_doc.h"
#include "test/support/test_files.h"

namespace relaypro {
namespace {

namespace fs = std::filesystem;
using testing::readText;
using testing::splitLines;
using testing::TempDir;

std::string exampleConfig() {
    return readText(fs::path(RELAYPRO_SOURCE_DIR) / "etc/config.example.yml");
}

std::string apply(const std::string& text, const std::vector<ConfigUpdate>& updates) {
    auto r = applyConfigUpdates(text, updates);
    EXPECT_TRUE(r.ok()) << (r.ok() ? "" : r.error().message);
    return r.ok() ? *r : text;
}

// The scalar at a dotted path after parsing, or "<absent>".
std::string valueAt(const std::string& text, const std::string& a, const std::string& b = "") {
    auto doc = parseYaml(text);
    EXPECT_TRUE(doc.ok());
    if (!doc.ok() || !doc->root) return "<absent>";
    const YamlNode* n = doc->root->find(a);
    if (n != nullptr && !b.empty()) n = n->isMapping() ? n->find(b) : nullptr;
    return n == nullptr ? "<absent>" : n->text;
}

constexpr const char* kPem =
    "-----BEGIN CERTIFICATE-----\n"
    "MIIBfzCCASWgAwIBAgIUQ2VydGlmaWNhdGVGb3JUZXN0aW5nMAoGCCqGSM49BAMC\n"
    "-----END CERTIFICATE-----\n";

TEST(ConfigWriter, ReplacesExistingKeysInPlaceAndKeepsEveryOtherLine) {
    const std::string before = exampleConfig();
    const std::string after = apply(before, {ConfigUpdate::integer({"relayId"}, 3),
                                             ConfigUpdate::string({"registeredTo"}, "console.example.com:443"),
                                             ConfigUpdate::string({"securityToken"}, "tok-1")});
    auto a = splitLines(before), b = splitLines(after);
    ASSERT_EQ(a.size(), b.size());
    int changed = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        if (a[i] == b[i]) continue;
        ++changed;
        if (a[i] == "relayId: 0")
            EXPECT_EQ(b[i], "relayId: 3");
        else if (a[i] == "registeredTo: \"\"")
            EXPECT_EQ(b[i], "registeredTo: \"console.example.com:443\"");
        else if (a[i] == "securityToken: \"\"")
            EXPECT_EQ(b[i], "securityToken: \"tok-1\"");
        else
            ADD_FAILURE() << "unexpected change of line " << i + 1 << ": " << a[i] << " -> " << b[i];
    }
    EXPECT_EQ(changed, 3);
}

TEST(ConfigWriter, AppendsMissingKeysAtTheEndOfTheTopLevelMapping) {
    const std::string before = exampleConfig();
    const std::string after =
        apply(before, {ConfigUpdate::string({"relayProId"}, "6f1c2c1e-0d7e-4a53-9a43-3c0e1f2b8d11")});
    ASSERT_EQ(after.substr(0, before.size()), before);
    EXPECT_EQ(after.substr(before.size()), "relayProId: \"6f1c2c1e-0d7e-4a53-9a43-3c0e1f2b8d11\"\n");
    EXPECT_EQ(valueAt(after, "relayProId"), "6f1c2c1e-0d7e-4a53-9a43-3c0e1f2b8d11");
}

TEST(ConfigWriter, RemovesTheDeploymentTokenLineOnly) {
    const std::string before = exampleConfig();
    const std::string after = apply(before, {ConfigUpdate::remove({"deploymentToken"})});
    auto a = splitLines(before), b = splitLines(after);
    ASSERT_EQ(a.size(), b.size() + 1);
    auto it = std::find(a.begin(), a.end(), "deploymentToken: \"\"");
    ASSERT_NE(it, a.end());
    a.erase(it);
    EXPECT_EQ(a, b);
    EXPECT_EQ(valueAt(after, "deploymentToken"), "<absent>");
    // Removing what is not there changes nothing.
    EXPECT_EQ(apply(after, {ConfigUpdate::remove({"deploymentToken"})}), after);
}

TEST(ConfigWriter, RemovesAKeyWithItsTrailingCommentAndMultiLineValue) {
    const std::string text = "a: 1\ndeploymentToken: \"abc\"  # one-time\nb: 2\n";
    EXPECT_EQ(apply(text, {ConfigUpdate::remove({"deploymentToken"})}), "a: 1\nb: 2\n");
    const std::string block = "a: 1\ndeploymentToken: |\n  line1\n  line2\n\n# keep me\nb: 2\n";
    EXPECT_EQ(apply(block, {ConfigUpdate::remove({"deploymentToken"})}), "a: 1\n\n# keep me\nb: 2\n");
    const std::string last = "a: 1\ndeploymentToken: x";
    EXPECT_EQ(apply(last, {ConfigUpdate::remove({"deploymentToken"})}), "a: 1\n");
}

TEST(ConfigWriter, WritesMigrationAsANestedMappingThenUpdatesItInPlace) {
    const std::string before = exampleConfig();
    const std::string first =
        apply(before, {ConfigUpdate::string({"migration", "consoleAddress"}, "new.example.com"),
                       ConfigUpdate::string({"migration", "validUntilAt"}, "2026-12-31T00:00:00Z")});
    ASSERT_EQ(first.substr(0, before.size()), before);
    EXPECT_EQ(first.substr(before.size()),
              "migration:\n  consoleAddress: \"new.example.com\"\n  validUntilAt: \"2026-12-31T00:00:00Z\"\n");
    const std::string second =
        apply(first, {ConfigUpdate::string({"migration", "consoleAddress"}, "newer.example.com"),
                      ConfigUpdate::string({"migration", "validUntilAt"}, "2027-01-31T00:00:00Z")});
    EXPECT_EQ(second.substr(0, before.size()), before);
    EXPECT_EQ(second.substr(before.size()),
              "migration:\n  consoleAddress: \"newer.example.com\"\n  validUntilAt: \"2027-01-31T00:00:00Z\"\n");
    // The result is a valid configuration with the migration in it.
    Environment env;
    std::vector<std::string> warnings;
    auto c = parseConfig(ConfigSource{"/srv/config.yml", second}, env, warnings);
    ASSERT_TRUE(c.ok()) << c.error().message;
    EXPECT_EQ(c->migration->consoleAddress.host, "newer.example.com");
}

TEST(ConfigWriter, FillsAnEmptySectionAndKeepsItsIndentation) {
    EXPECT_EQ(apply("a: 1\nmigration:\nb: 2\n", {ConfigUpdate::string({"migration", "consoleAddress"}, "x")}),
              "a: 1\nmigration:\n  consoleAddress: \"x\"\nb: 2\n");
    EXPECT_EQ(apply("migration: ~  # none yet\nb: 2\n", {ConfigUpdate::string({"migration", "consoleAddress"}, "x")}),
              "migration:\n  consoleAddress: \"x\"  # none yet\nb: 2\n");
    EXPECT_EQ(apply("migration:\n    consoleAddress: \"a\"\n# after\n",
                    {ConfigUpdate::string({"migration", "validUntilAt"}, "t")}),
              "migration:\n    consoleAddress: \"a\"\n    validUntilAt: \"t\"\n# after\n");
}

TEST(ConfigWriter, WritesPemAsALiteralBlockAndReplacesBlocksCleanly) {
    const std::string before = "consoleCACert: \"\"\n\n# next section\nrelayId: 0\n";
    const std::string withPem = apply(before, {ConfigUpdate::string({"consoleCACert"}, kPem)});
    EXPECT_EQ(withPem, std::string("consoleCACert: |\n") +
                           "  -----BEGIN CERTIFICATE-----\n"
                           "  MIIBfzCCASWgAwIBAgIUQ2VydGlmaWNhdGVGb3JUZXN0aW5nMAoGCCqGSM49BAMC\n"
                           "  -----END CERTIFICATE-----\n"
                           "\n# next section\nrelayId: 0\n");
    EXPECT_EQ(valueAt(withPem, "consoleCACert"), kPem);
    // Block to block: the blank line and comment after it stay.
    std::string other = std::string(kPem) + kPem;
    const std::string twice = apply(withPem, {ConfigUpdate::string({"consoleCACert"}, other)});
    EXPECT_EQ(valueAt(twice, "consoleCACert"), other);
    EXPECT_NE(twice.find("-----END CERTIFICATE-----\n\n# next section\nrelayId: 0\n"), std::string::npos);
    // Block back to a one-line value.
    EXPECT_EQ(apply(twice, {ConfigUpdate::string({"consoleCACert"}, "")}), before);
}

TEST(ConfigWriter, KeepsTrailingCommentsAndFillsEmptyValues) {
    EXPECT_EQ(apply("relayId: 0  # from the console\n", {ConfigUpdate::integer({"relayId"}, 7)}),
              "relayId: 7  # from the console\n");
    EXPECT_EQ(apply("registeredTo:\nrelayId: 0\n", {ConfigUpdate::string({"registeredTo"}, "c:443")}),
              "registeredTo: \"c:443\"\nrelayId: 0\n");
    EXPECT_EQ(apply("relayId: 0\r\nb: 1\r\n", {ConfigUpdate::integer({"relayId"}, 9)}), "relayId: 9\r\nb: 1\r\n");
    EXPECT_EQ(apply("a: 1", {ConfigUpdate::integer({"relayId"}, 1)}), "a: 1\nrelayId: 1\n");
    EXPECT_EQ(apply("", {ConfigUpdate::integer({"relayId"}, 1)}), "relayId: 1\n");
    EXPECT_EQ(apply("# only comments\n", {ConfigUpdate::integer({"relayId"}, 1)}), "# only comments\nrelayId: 1\n");
}

TEST(ConfigWriter, NoValueCanInjectAKey) {
    const std::string hostile[] = {
        "x\"\nsecurityToken: evil",
        "x\nrelayId: 99",
        "x' : y",
        "a: b",
        "- item",
        "{a: 1}",
        "#comment",
        "\\\"\\\\",
        std::string("nul\0byte", 8),
        "tab\there",
        "line\u2028sep",
        "|\n  block",
        "*alias",
        "!!tag x",
        "\xEF\xBB\xBF"
        "bom",
    };
    for (const auto& v : hostile) {
        const std::string text = "registeredTo: \"\"\nrelayId: 0\n";
        auto r = applyConfigUpdates(text, {ConfigUpdate::string({"registeredTo"}, v)});
        ASSERT_TRUE(r.ok()) << r.error().message;
        EXPECT_EQ(valueAt(*r, "registeredTo"), v);
        EXPECT_EQ(valueAt(*r, "relayId"), "0");
        EXPECT_EQ(valueAt(*r, "securityToken"), "<absent>");
        EXPECT_EQ(splitLines(*r).size(), 2u) << *r;
    }
    // Bytes that are not UTF-8 cannot be stored as written: refused, not mangled.
    auto bad = applyConfigUpdates("registeredTo: \"\"\n", {ConfigUpdate::string({"registeredTo"}, "\xff\xfe")});
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.error().message.find("would not hold registeredTo as written"), std::string::npos);
}

TEST(ConfigWriter, RefusesFilesItCannotEditSafely) {
    auto flow = applyConfigUpdates("{consoleAddress: c, organizationId: 1}\n", {ConfigUpdate::integer({"relayId"}, 1)});
    ASSERT_FALSE(flow.ok());
    EXPECT_NE(flow.error().message.find("flow mapping"), std::string::npos);
    auto list = applyConfigUpdates("- a\n", {ConfigUpdate::integer({"relayId"}, 1)});
    EXPECT_FALSE(list.ok());
    auto broken = applyConfigUpdates("a: [\n", {ConfigUpdate::integer({"relayId"}, 1)});
    EXPECT_FALSE(broken.ok());
    auto notScalar = applyConfigUpdates("relayId: [1]\n", {ConfigUpdate::integer({"relayId"}, 1)});
    EXPECT_FALSE(notScalar.ok());
    auto sectionScalar =
        applyConfigUpdates("migration: 5\n", {ConfigUpdate::string({"migration", "consoleAddress"}, "x")});
    EXPECT_FALSE(sectionScalar.ok());
}

TEST(ConfigWriter, GeneratesVersion4Uuids) {
    std::string a = generateUuidV4(), b = generateUuidV4();
    EXPECT_NE(a, b);
    EXPECT_TRUE(isUuid(a));
    EXPECT_EQ(a[14], '4');
    EXPECT_TRUE(a[19] == '8' || a[19] == '9' || a[19] == 'a' || a[19] == 'b');
}

class ConfigFile : public ::testing::Test {
protected:
    void SetUp() override {
        path_ = testing::writeText(tmp_ / "config.yml", exampleConfig());
        ::chmod(path_.c_str(), 0640);
    }
    Status write(const std::vector<ConfigUpdate>& updates) {
        Environment env;
        return writeConfigUpdates(path_.string(), updates, env);
    }
    TempDir tmp_;
    const fs::path& dir_ = tmp_.path();
    fs::path path_;
};

TEST_F(ConfigFile, WritesAtomicallyKeepingModeAndLeavingNoTemporaryFile) {
    ASSERT_TRUE(write({ConfigUpdate::integer({"relayId"}, 3), ConfigUpdate::remove({"deploymentToken"})}).ok());
    struct stat st {};
    ASSERT_EQ(::stat(path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0640u);
    EXPECT_EQ(valueAt(readText(path_), "relayId"), "3");
    int entries = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++entries;
    EXPECT_EQ(entries, 1);
}

TEST_F(ConfigFile, KeepsTheOwnerWhenRunAsRoot) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file another owner";
    ASSERT_EQ(::chown(path_.c_str(), 4321, 4321), 0);
    ASSERT_TRUE(write({ConfigUpdate::integer({"relayId"}, 5)}).ok());
    struct stat st {};
    ASSERT_EQ(::stat(path_.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 4321u);
    EXPECT_EQ(st.st_gid, 4321u);
}

TEST_F(ConfigFile, RefusesASymbolicLink) {
    fs::rename(path_, dir_ / "real.yml");
    fs::create_symlink(dir_ / "real.yml", path_);
    auto s = write({ConfigUpdate::integer({"relayId"}, 3)});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("is a symbolic link"), std::string::npos);
    EXPECT_EQ(readText(dir_ / "real.yml"), exampleConfig());
}

// Runs `body` in a child process switched to uid/gid 65534; returns its message ("" = success).
std::string asNobody(const std::function<Status()>& body) {
    int pipeFds[2];
    EXPECT_EQ(::pipe(pipeFds), 0);
    pid_t pid = ::fork();
    if (pid == 0) {
        ::close(pipeFds[0]);
        if (::setresgid(65534, 65534, 65534) != 0 || ::setresuid(65534, 65534, 65534) != 0) ::_exit(3);
        Status s = body();
        std::string m = s.ok() ? "" : s.error().message;
        [[maybe_unused]] ssize_t n = ::write(pipeFds[1], m.data(), m.size());
        ::_exit(0);
    }
    ::close(pipeFds[1]);
    std::string out;
    char buf[512];
    ssize_t n;
    while ((n = ::read(pipeFds[0], buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(n));
    ::close(pipeFds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    return out;
}

TEST_F(ConfigFile, RefusesAFileOwnedBySomeoneElseNamingTheFix) {
    RELAYPRO_SKIP_UNDER_QEMU();
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run as another user";
    ::chmod(dir_.c_str(), 0777);
    ::chmod(path_.c_str(), 0666);
    std::string message = asNobody([&] { return write({ConfigUpdate::integer({"relayId"}, 3)}); });
    EXPECT_NE(message.find("is owned by uid 0, not by the service user (uid 65534); fix: chown"), std::string::npos)
        << message;
    EXPECT_EQ(readText(path_), exampleConfig());
}

TEST_F(ConfigFile, RefusesWhenTheFolderIsNotWritableNamingTheFix) {
    RELAYPRO_SKIP_UNDER_QEMU();
    if (::geteuid() != 0) GTEST_SKIP() << "needs root to run as another user";
    ASSERT_EQ(::chown(path_.c_str(), 65534, 65534), 0);
    ::chmod(dir_.c_str(), 0755);
    std::string message = asNobody([&] { return write({ConfigUpdate::integer({"relayId"}, 3)}); });
    EXPECT_NE(message.find("is not writable by the service user; fix:"), std::string::npos) << message;
    EXPECT_EQ(readText(path_), exampleConfig());
}

TEST_F(ConfigFile, RefusesAResultThatIsNotAValidConfiguration) {
    auto s = write({ConfigUpdate::string({"relayProId"}, "not-a-uuid")});
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.error().message.find("would not be a valid configuration"), std::string::npos) << s.error().message;
    EXPECT_EQ(readText(path_), exampleConfig());
}

// A crash at every step of the write leaves the old or the new file, never a partial one.
TEST_F(ConfigFile, CrashAtAnyStepLeavesOldOrNewFile) {
    RELAYPRO_SKIP_UNDER_QEMU();
    const std::string oldText = exampleConfig();
    auto expectedNew = applyConfigUpdates(oldText, {ConfigUpdate::integer({"relayId"}, 8)});
    ASSERT_TRUE(expectedNew.ok());
    for (const char* step : {"opened", "written", "synced", "renamed"}) {
        testing::writeText(path_, oldText);
        pid_t pid = ::fork();
        if (pid == 0) {
            AtomicWriteOptions o;
            o.onStep = [step](std::string_view s) {
                if (s == step) ::kill(::getpid(), SIGKILL);
            };
            (void)writeFileAtomic(path_.string(), *expectedNew, o);
            ::_exit(0);
        }
        int status = 0;
        ASSERT_EQ(::waitpid(pid, &status, 0), pid);
        ASSERT_TRUE(WIFSIGNALED(status)) << step;
        std::string now = readText(path_);
        bool renamed = std::string(step) == "renamed";
        EXPECT_EQ(now, renamed ? *expectedNew : oldText) << step;
        // The next write clears what the crash left behind.
        ASSERT_TRUE(write({ConfigUpdate::integer({"relayId"}, 9)}).ok());
        int entries = 0;
        for ([[maybe_unused]] const auto& e : fs::directory_iterator(dir_)) ++entries;
        EXPECT_EQ(entries, 1) << step;
    }
}

// The same with real, unannounced kills: a writer child rewrites the file in a loop and is
// killed at arbitrary moments; every observed state is one of the two complete versions.
TEST_F(ConfigFile, KilledWriterNeverLeavesAPartialFile) {
    RELAYPRO_SKIP_UNDER_QEMU();
    std::string a(200000, 'a'), b(300000, 'b');
    a += "\n";
    b += "\n";
    testing::writeText(path_, a);
    for (int round = 0; round < 40; ++round) {
        pid_t pid = ::fork();
        if (pid == 0) {
            for (int i = 0;; ++i) (void)writeFileAtomic(path_.string(), i % 2 == 0 ? b : a);
        }
        ::usleep(static_cast<useconds_t>(200 + (round * 997) % 3000));
        ::kill(pid, SIGKILL);
        int status = 0;
        ::waitpid(pid, &status, 0);
        std::string now = readText(path_);
        ASSERT_TRUE(now == a || now == b) << "round " << round << ": partial file of " << now.size() << " bytes";
        removeStaleTemporaries(path_.string());
    }
}

}  // namespace
}  // namespace relaypro
