// The real relaypro binary: exit codes, messages and output of the command line (spec/cli.md).
#include <fcntl.h>
#include <gtest/gtest.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "test/support/test_files.h"

extern char** environ;

namespace {

namespace fs = std::filesystem;

struct Outcome {
    int exitCode = -1;
    std::string out, err;
};

class Cli : public ::testing::Test {
protected:
    void SetUp() override {
        // Never read the machine's own environment file or config.
        env_["RELAYPRO_ENV_FILE"] = (dir_ / "env.conf").string();
        env_["PATH"] = "/usr/bin:/bin";
    }

    Outcome run(std::vector<std::string> args) {
        std::vector<std::string> argvStore{RELAYPRO_BINARY};
        argvStore.insert(argvStore.end(), args.begin(), args.end());
        std::vector<char*> argv;
        for (auto& a : argvStore) argv.push_back(a.data());
        argv.push_back(nullptr);
        std::vector<std::string> envStore;
        for (const auto& [k, v] : env_) envStore.push_back(k + "=" + v);
        std::vector<char*> envp;
        for (auto& e : envStore) envp.push_back(e.data());
        envp.push_back(nullptr);

        fs::path outPath = dir_ / "stdout", errPath = dir_ / "stderr";
        posix_spawn_file_actions_t actions;
        posix_spawn_file_actions_init(&actions);
        posix_spawn_file_actions_addopen(&actions, 1, outPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (oneStream_) {
            posix_spawn_file_actions_adddup2(&actions, 1, 2);  // 2>&1, as a terminal shows them
        } else {
            posix_spawn_file_actions_addopen(&actions, 2, errPath.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
        }
        if (!cwd_.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd_.c_str());
        pid_t pid = 0;
        EXPECT_EQ(posix_spawn(&pid, RELAYPRO_BINARY, &actions, nullptr, argv.data(), envp.data()), 0);
        posix_spawn_file_actions_destroy(&actions);
        int status = 0;
        EXPECT_EQ(waitpid(pid, &status, 0), pid);
        Outcome r;
        r.exitCode = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        r.out = relaypro::testing::readText(outPath);
        r.err = oneStream_ ? "" : relaypro::testing::readText(errPath);
        return r;
    }

    fs::path write(const std::string& name, const std::string& content) {
        return relaypro::testing::writeText(dir_ / name, content);
    }

    relaypro::testing::TempDir tmp_;
    const fs::path& dir_ = tmp_.path();
    std::string cwd_;         // the child's working directory; empty = ours
    bool oneStream_ = false;  // stderr into stdout
    std::map<std::string, std::string> env_;
};

TEST_F(Cli, HelpAndVersion) {
    for (const char* h : {"help", "--help", "-h"}) {
        Outcome r = run({h});
        EXPECT_EQ(r.exitCode, 0) << h;
        EXPECT_NE(r.out.find("check-config [--config FILE]"), std::string::npos);
        EXPECT_NE(r.out.find("ca show"), std::string::npos);
    }
    Outcome v = run({"version"});
    EXPECT_EQ(v.exitCode, 0);
    EXPECT_EQ(v.out.rfind("relaypro 0.", 0), 0u) << v.out;
    EXPECT_NE(v.out.find(" ("), std::string::npos);
    EXPECT_EQ(v.out.back(), '\n');
    EXPECT_EQ(std::count(v.out.begin(), v.out.end(), '\n'), 1) << "plain `version` stays one line (cli.md)";
    Outcome sub = run({"check-config", "--help"});
    EXPECT_EQ(sub.exitCode, 0);
    EXPECT_NE(sub.out.find("relaypro check-config [--config FILE]"), std::string::npos);
}

// What is inside: a line per library with the version the library reports, and in the packaged
// (bundled) build the Debian source package of packaging/bundle.lock it was built from.
TEST_F(Cli, VersionVerboseNamesEveryLibraryAndItsSource) {
    Outcome v = run({"version", "--verbose"});
    ASSERT_EQ(v.exitCode, 0) << v.err;
    std::vector<std::string> lines = relaypro::testing::splitLines(v.out);
    ASSERT_FALSE(lines.empty());
    EXPECT_EQ(lines[0], relaypro::testing::splitLines(run({"version"}).out).at(0));
    auto lineOf = [&](const std::string& name) -> std::string {
        for (const auto& l : lines) {
            if (l.rfind("  " + name + " ", 0) == 0) return l;
        }
        return "";
    };
    for (const char* lib :
         {"OpenSSL", "libcurl", "libevent", "libsodium", "libyaml", "jansson", "libseccomp", "zlib", "glibc"}) {
        EXPECT_NE(lineOf(lib), "") << lib << " missing from:\n" << v.out;
    }
#ifdef RELAYPRO_TEST_BUNDLED
    // Each bundled library names its pinned Debian source and reports the upstream version in it.
    const std::map<std::string, std::string> names = {
        {"openssl", "OpenSSL"}, {"curl", "libcurl"},    {"libevent", "libevent"},     {"libsodium", "libsodium"},
        {"libyaml", "libyaml"}, {"jansson", "jansson"}, {"libseccomp", "libseccomp"}, {"zlib", "zlib"}};
    int checked = 0;
    for (const auto& row : relaypro::testing::splitLines(
             relaypro::testing::readText(std::string(RELAYPRO_SOURCE_DIR) + "/packaging/bundle.lock"))) {
        std::istringstream in(row);
        std::string kind, name, version;
        in >> kind >> name >> version;
        if (kind != "source") continue;
        std::string line = lineOf(names.at(name));
        EXPECT_NE(line.find("linked statically, from Debian source package " + name + " " + version), std::string::npos)
            << line;
        std::string upstream = version.substr(version.find(':') + 1);  // no epoch
        if (upstream.find("really") != std::string::npos) upstream = upstream.substr(upstream.find("really") + 6);
        upstream = upstream.substr(0, upstream.find_first_of("-+~"));  // no Debian revision or suffix
        EXPECT_NE(line.find(" " + upstream), std::string::npos) << "the library reports another version: " << line;
        ++checked;
    }
    EXPECT_EQ(checked, 8);
    // The patched library names every patch of packaging/patches/ (applied in name order).
    std::vector<std::string> patches;
    for (const auto& entry :
         std::filesystem::directory_iterator(std::string(RELAYPRO_SOURCE_DIR) + "/packaging/patches")) {
        if (entry.path().extension() == ".patch") patches.push_back(entry.path().stem().string());
    }
    std::sort(patches.begin(), patches.end());
    ASSERT_EQ(patches.size(), 2u) << "a patch was added or removed: update this test and the operators' guide";
    std::string named = patches[0];
    for (size_t i = 1; i < patches.size(); ++i) named += " " + patches[i];
    EXPECT_NE(lineOf("OpenSSL").find("with RelayPro's patches " + named), std::string::npos) << lineOf("OpenSSL");
#else
    EXPECT_NE(lineOf("OpenSSL").find("shared library of the build machine"), std::string::npos) << v.out;
#endif
}

TEST_F(Cli, UsageErrorsExit2) {
    for (std::vector<std::string> args : {std::vector<std::string>{}, {"serve"}, {"check-config", "--bogus"}, {"ca"}}) {
        Outcome r = run(args);
        EXPECT_EQ(r.exitCode, 2);
        EXPECT_NE(r.err.find("Usage: relaypro"), std::string::npos);
    }
}

TEST_F(Cli, CheckConfigAcceptsTheExampleFile) {
    Outcome r = run({"check-config", "--config", std::string(RELAYPRO_SOURCE_DIR) + "/etc/config.example.yml"});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_NE(r.out.find("consoleAddress: \"console.example.com\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("  headerTimeout: 10s"), std::string::npos);
}

TEST_F(Cli, CheckConfigAcceptsTheDemoFileWithItsEnvironmentFile) {
    env_["RELAYPRO_ENV_FILE"] = std::string(RELAYPRO_SOURCE_DIR) + "/etc/demo/environment.conf";
    Outcome r = run({"check-config", "--config", std::string(RELAYPRO_SOURCE_DIR) + "/etc/demo/config.yml"});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    EXPECT_EQ(r.err, "");
    EXPECT_NE(r.out.find("  listen: \"127.0.0.1:9443\""), std::string::npos) << r.out;
}

TEST_F(Cli, CheckConfigReportsABadPortWithFileLineColumnAndExits78) {
    fs::path cfg =
        write("config.yml",
              "consoleAddress: console.example.com\norganizationId: 1\nhttpsProxy:\n  listen: \"0.0.0.0:99999\"\n");
    Outcome r = run({"check-config", "--config", cfg.string()});
    EXPECT_EQ(r.exitCode, 78);
    EXPECT_EQ(r.err, cfg.string() + ":4:3: httpsProxy.listen: \"0.0.0.0:99999\" is not a valid port\n");
    EXPECT_EQ(r.out, "");
}

TEST_F(Cli, CheckConfigNamesTheFileAsGiven) {
    fs::path cfg = write("config.yml", "consoleAddress: c\norganizationId: x\n");
    env_["RELAYPRO_CONFIG"] = "";
    cwd_ = dir_.string();
    Outcome r = run({"check-config", "--config", "config.yml"});
    EXPECT_EQ(r.exitCode, 78);
    EXPECT_EQ(r.err, "config.yml:2:1: organizationId: \"x\" is not an integer\n");
}

TEST_F(Cli, CheckConfigUsesRelayproConfigAndTheEnvironmentFile) {
    fs::path cfg = write("config.yml",
                         "consoleAddress: console.example.com\norganizationId: 1\nsecurityToken: s3cr3t-value\n"
                         "logger:\n  maxsize: 1MB\n");
    write("env.conf", "# test\nRELAYPRO_HTTPS_LISTEN=127.0.0.1:0\nHTTPS_PROXY=http://u:pw-secret@127.0.0.1:3128\n");
    env_["RELAYPRO_CONFIG"] = cfg.string();
    env_["RELAYPRO_HTTPS_LISTEN"] = "0.0.0.0:1";  // the file wins
    Outcome r = run({"check-config"});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    EXPECT_NE(r.out.find("  listen: \"127.0.0.1:0\""), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("securityToken: \"<redacted>\""), std::string::npos);
    EXPECT_EQ(r.out.find("s3cr3t-value"), std::string::npos);
    const std::string warning =
        cfg.string() + ":5:3: unknown field \"logger.maxsize\" — did you mean \"logger.maxSize\"?";
    EXPECT_EQ(r.err, "warning: " + warning + "\n\nwarnings (1):\n  " + warning + "\n");
}

// Issue 18: on one stream (a terminal), the warnings come before the configuration and are
// summarised after it under a heading, where a long configuration leaves the reader.
TEST_F(Cli, CheckConfigWarnsBeforeTheConfigurationAndSummarisesAfterIt) {
    fs::path cfg = write("config.yml", "consoleAddress: c\norganizationId: 1\nhttpProxy: x\nlogger:\n  maxsize: 3\n");
    write("env.conf", "RELAYPRO_PASWORD_FILE=x\n");
    oneStream_ = true;
    Outcome r = run({"check-config", "--config", cfg.string()});
    EXPECT_EQ(r.exitCode, 0) << r.out;
    const std::string w1 =
        "env.conf:1: unknown variable \"RELAYPRO_PASWORD_FILE\" — did you mean \"RELAYPRO_PASSWORD_FILE\"?";
    const std::string w2 = "config.yml:3:1: unknown field \"httpProxy\" — did you mean \"httpsProxy\"?";
    const std::string w3 = "config.yml:5:3: unknown field \"logger.maxsize\" — did you mean \"logger.maxSize\"?";
    size_t yaml = r.out.find("# Effective configuration");
    ASSERT_NE(yaml, std::string::npos) << r.out;
    for (const auto& w : {w1, w2, w3}) {
        size_t first = r.out.find(w);
        EXPECT_LT(first, yaml) << w << " before the configuration:\n" << r.out;
        EXPECT_NE(r.out.find(w, yaml), std::string::npos) << w << " summarised after it:\n" << r.out;
    }
    size_t heading = r.out.find("\nwarnings (3):\n", yaml);
    ASSERT_NE(heading, std::string::npos) << r.out;
    EXPECT_EQ(r.out.find("serverName:", heading), std::string::npos) << "the summary is last:\n" << r.out;
}

TEST_F(Cli, MalformedEnvironmentFileIsAConfigurationError) {
    fs::path cfg = write("config.yml", "consoleAddress: c\norganizationId: 1\n");
    write("env.conf", "RELAYPRO_HTTPS_LISTEN=\"unterminated\n");
    Outcome r = run({"check-config", "--config", cfg.string()});
    EXPECT_EQ(r.exitCode, 78);
    EXPECT_EQ(r.err, "relaypro: " + (dir_ / "env.conf").string() + ":1: unterminated quoted value\n");
}

TEST_F(Cli, MissingConfigFileIsAConfigurationError) {
    Outcome r = run({"check-config", "--config", (dir_ / "nope.yml").string()});
    EXPECT_EQ(r.exitCode, 78);
    EXPECT_EQ(r.err, "cannot open " + (dir_ / "nope.yml").string() + ": No such file or directory\n");
}

// Started as root, check-config reads config.yml as the service user (spec/cli.md): a file only
// root can read is refused, the same file readable by the service user is accepted.
TEST_F(Cli, AsRootCheckConfigReadsAsTheServiceUser) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    fs::path cfg = write("config.yml", "consoleAddress: c\norganizationId: 1\n");
    ::chmod(dir_.c_str(), 0755);
    ::chmod(cfg.c_str(), 0600);
    env_["RELAYPRO_USER"] = "nobody";
    Outcome denied = run({"check-config", "--config", cfg.string()});
    EXPECT_EQ(denied.exitCode, 78);
    EXPECT_EQ(denied.err, "cannot open " + cfg.string() + ": Permission denied\n");
    ::chmod(cfg.c_str(), 0644);
    Outcome allowed = run({"check-config", "--config", cfg.string()});
    EXPECT_EQ(allowed.exitCode, 0) << allowed.err;
    // Without such an account it carries on as root.
    ::chmod(cfg.c_str(), 0600);
    env_["RELAYPRO_USER"] = "relaypro-no-such-user";
    Outcome asRoot = run({"check-config", "--config", cfg.string()});
    EXPECT_EQ(asRoot.exitCode, 0) << asRoot.err;
}

TEST_F(Cli, RunAsRootNeedsTheServiceAccountOrAnExplicitRoot) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    fs::path cfg = write("config.yml", "consoleAddress: c\norganizationId: 1\n");
    env_["RELAYPRO_USER"] = "relaypro-no-such-user";
    Outcome r = run({"run", "--config", cfg.string()});
    EXPECT_EQ(r.exitCode, 78);
    EXPECT_EQ(r.err,
              "relaypro: the service account \"relaypro-no-such-user\" does not exist; create it (useradd --system "
              "relaypro-no-such-user) or run with --user root\n");
}

// Issue 18: RELAYPRO_USER in the environment file names the account too (config.md: a key in
// the file wins over the inherited environment), for run and for the other sub-commands.
TEST_F(Cli, RelayproUserInTheEnvironmentFileNamesTheAccount) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    fs::path cfg = write("config.yml", "consoleAddress: c\norganizationId: 1\n");
    env_["RELAYPRO_USER"] = "relaypro-no-such-user-1";  // the inherited value, which the file overrides
    write("env.conf", "RELAYPRO_USER=relaypro-no-such-user-2\n");
    Outcome r = run({"run", "--config", cfg.string()});
    EXPECT_EQ(r.exitCode, 78) << r.err;
    EXPECT_NE(r.err.find("the service account \"relaypro-no-such-user-2\" does not exist"), std::string::npos) << r.err;
    // check-config switches to the account the file names before it reads config.yml.
    ::chmod(dir_.c_str(), 0755);
    ::chmod(cfg.c_str(), 0600);
    write("env.conf", "RELAYPRO_USER=nobody\n");
    Outcome denied = run({"check-config", "--config", cfg.string()});
    EXPECT_EQ(denied.exitCode, 78);
    EXPECT_EQ(denied.err, "cannot open " + cfg.string() + ": Permission denied\n");
}

TEST_F(Cli, RunWithABrokenConfigExits78BeforeBinding) {
    fs::path cfg =
        write("config.yml", "consoleAddress: c\norganizationId: 1\nhttpsProxy:\n  listen: \"0.0.0.0:99999\"\n");
    Outcome r = run({"run", "--config", cfg.string(), "--user", "root"});
    EXPECT_EQ(r.exitCode, 78);
    EXPECT_EQ(r.err, cfg.string() + ":4:3: httpsProxy.listen: \"0.0.0.0:99999\" is not a valid port\n");
}

TEST_F(Cli, StatusAndUpgradeSayWhenTheServiceIsNotRunning) {
    fs::path cfg = write("config.yml", "consoleAddress: c\norganizationId: 1\n");
    for (std::vector<std::string> args : {std::vector<std::string>{"status"}, {"status", "--json"}, {"upgrade"}}) {
        args.push_back("--config");
        args.push_back(cfg.string());
        Outcome r = run(args);
        EXPECT_EQ(r.exitCode, 1);
        EXPECT_NE(
            r.err.find("the service is not running (cannot connect to " + (dir_ / "private" / "control.sock").string()),
            std::string::npos)
            << r.err;
    }
}

// ca init creates the bundle once (RSA 3072 PKCS#1 + a 10-year CA certificate, 0600) and prints
// what `openssl x509 -fingerprint -sha256` prints; ca show prints the same; a broken bundle is a
// configuration error.
TEST_F(Cli, CaInitAndShow) {
    fs::path cfg = write("config.yml", "consoleAddress: c\norganizationId: 1\n");
    const fs::path bundle = dir_ / "private" / "ca-bundle.pem";
    Outcome missing = run({"ca", "show", "--config", cfg.string()});
    EXPECT_EQ(missing.exitCode, 1);
    EXPECT_NE(missing.err.find("ca init"), std::string::npos) << missing.err;

    Outcome init = run({"ca", "init", "--config", cfg.string()});
    ASSERT_EQ(init.exitCode, 0) << init.err;
    EXPECT_EQ(init.out.rfind("created " + bundle.string() + "\n", 0), 0u) << init.out;
    struct stat st {};
    ASSERT_EQ(::stat(bundle.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    ASSERT_EQ(::stat(bundle.parent_path().c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0700u);
    std::string pem = relaypro::testing::readText(bundle);
    EXPECT_EQ(pem.rfind("-----BEGIN RSA PRIVATE KEY-----\n", 0), 0u);
    EXPECT_NE(pem.find("-----BEGIN CERTIFICATE-----"), std::string::npos);

    // The fingerprint line is openssl's own; the key is 3072 bits; the certificate a CA.
    std::string fp =
        relaypro::testing::commandOutput("openssl x509 -noout -fingerprint -sha256 -in " + bundle.string());
    EXPECT_NE(init.out.find(fp), std::string::npos) << init.out << "\nopenssl: " << fp;
    std::string text = relaypro::testing::commandOutput("openssl x509 -noout -text -in " + bundle.string());
    EXPECT_NE(text.find("Public-Key: (3072 bit)"), std::string::npos);
    EXPECT_NE(text.find("CA:TRUE"), std::string::npos);
    EXPECT_NE(init.out.find("subject: "), std::string::npos);
    EXPECT_NE(init.out.find("notAfter: "), std::string::npos);

    Outcome again = run({"ca", "init", "--config", cfg.string()});
    ASSERT_EQ(again.exitCode, 0);
    EXPECT_EQ(again.out.rfind("exists: " + bundle.string() + "\n", 0), 0u) << again.out;
    EXPECT_NE(again.out.find(fp), std::string::npos);
    Outcome show = run({"ca", "show", "--config", cfg.string()});
    ASSERT_EQ(show.exitCode, 0);
    EXPECT_NE(show.out.find(fp), std::string::npos);
    EXPECT_EQ(relaypro::testing::readText(bundle), pem);

    // RELAYPRO_CA_BUNDLE_FILE names another file; a PKCS#8 key there is refused with the fix.
    fs::path pkcs8 = dir_ / "pkcs8.pem";
    relaypro::testing::commandOutput("openssl pkcs8 -topk8 -nocrypt -in " + bundle.string() + " -out " +
                                     pkcs8.string() + " && openssl x509 -in " + bundle.string() + " >> " +
                                     pkcs8.string() + " && chmod 600 " + pkcs8.string());
    env_["RELAYPRO_CA_BUNDLE_FILE"] = pkcs8.string();
    Outcome bad = run({"ca", "show", "--config", cfg.string()});
    EXPECT_EQ(bad.exitCode, 78);
    EXPECT_NE(bad.err.find("PKCS#8"), std::string::npos) << bad.err;
    Outcome check = run({"check-config", "--config", cfg.string()});
    EXPECT_EQ(check.exitCode, 78);
    EXPECT_NE(check.err.find("PKCS#8"), std::string::npos) << check.err;
}

// install-config: what the package scripts run (packaging.md, "Install").
class InstallConfig : public Cli {
protected:
    void SetUp() override {
        Cli::SetUp();
        env_["RELAYPRO_USER"] = "relaypro-no-such-user";  // carry on as whoever runs the test
        cfg_ = dir_ / "config.yml";
    }
    // A CA certificate in dir/ca.pem.
    void makeCaPem() {
        auto r = relaypro::testing::runCommand(
            "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout " +
            (dir_ / "ca.key").string() + " -out " + (dir_ / "ca.pem").string() + " -subj /CN=console-ca -days 2 2>&1");
        EXPECT_EQ(r.exitCode, 0) << r.out;
    }
    fs::path cfg_;
};

TEST_F(InstallConfig, WithoutInputsWritesTheTemplateAndSaysWhatIsMissing) {
    Outcome r = run({"install-config", "--config", cfg_.string()});
    EXPECT_EQ(r.exitCode, 78) << r.err;
    EXPECT_NE(r.out.find("created " + cfg_.string() + " from the template"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("not ready"), std::string::npos) << r.out;
    EXPECT_NE(r.err.find("consoleAddress: is required"), std::string::npos) << r.err;
    struct stat st {};
    ASSERT_EQ(::stat(cfg_.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    std::string text = relaypro::testing::readText(cfg_);
    EXPECT_TRUE(text.starts_with("# RelayPro configuration, written at installation without the AIR_* inputs."));
    EXPECT_NE(text.find("\nconsoleAddress: \"\"\n"), std::string::npos);
    EXPECT_EQ(text.find("\nconsoleAddress: \"console.example.com\""), std::string::npos) << "no example console";
    // Run again: the file is kept as it is.
    Outcome again = run({"install-config", "--config", cfg_.string()});
    EXPECT_EQ(again.exitCode, 78);
    EXPECT_EQ(again.out.find("created"), std::string::npos);
    EXPECT_EQ(relaypro::testing::readText(cfg_), text);
}

TEST_F(InstallConfig, FillsTheAirInputsIntoTheTemplateAndKeepsEveryOtherLine) {
    ASSERT_EQ(run({"install-config", "--config", cfg_.string()}).exitCode, 78);
    const std::string before = relaypro::testing::readText(cfg_);
    makeCaPem();
    env_["AIR_CONSOLE_ADDRESS"] = "console.test:8443";
    env_["AIR_ORGANIZATION_ID"] = "7";
    env_["AIR_DEPLOYMENT_TOKEN"] = "dt-\"quoted\"\\-s3cr3t";
    env_["AIR_CONSOLE_CA_CERT"] = (dir_ / "ca.pem").string();
    Outcome r = run({"install-config", "--config", cfg_.string()});
    EXPECT_EQ(r.exitCode, 0) << r.err << r.out;
    EXPECT_NE(r.out.find("wrote consoleAddress, organizationId, deploymentToken, consoleCACert into"),
              std::string::npos)
        << r.out;
    EXPECT_NE(r.out.find("ready: " + cfg_.string()), std::string::npos);
    EXPECT_EQ((r.out + r.err).find("s3cr3t"), std::string::npos) << "the deployment token is never printed";
    const std::string after = relaypro::testing::readText(cfg_);
    EXPECT_NE(after.find("\nconsoleAddress: \"console.test:8443\"\n"), std::string::npos);
    EXPECT_NE(after.find("\norganizationId: 7\n"), std::string::npos);
    EXPECT_NE(after.find("\ndeploymentToken: \"dt-\\\"quoted\\\"\\\\-s3cr3t\"\n"), std::string::npos) << after;
    EXPECT_NE(after.find("consoleCACert: |\n  -----BEGIN CERTIFICATE-----\n"), std::string::npos) << after;
    // Every comment line of the template is still there, in order.
    size_t at = 0;
    std::istringstream lines(before);
    for (std::string line; std::getline(lines, line);) {
        if (!line.starts_with("#")) continue;
        size_t found = after.find(line + "\n", at);
        ASSERT_NE(found, std::string::npos) << "lost: " << line;
        at = found + line.size();
    }
    // The service reads the same values.
    Outcome check = run({"check-config", "--config", cfg_.string()});
    EXPECT_EQ(check.exitCode, 0) << check.err;
    EXPECT_NE(check.out.find("console.test:8443"), std::string::npos) << check.out;
    EXPECT_NE(check.out.find("organizationId: 7"), std::string::npos) << check.out;
}

TEST_F(InstallConfig, AnExistingRegistrationAndValuesAreKept) {
    const std::string registered =
        "# operator's file\nconsoleAddress: \"old.example.com\"\norganizationId: 3\nrelayId: 5\n"
        "registeredTo: \"old.example.com:443\"\nsecurityToken: \"st-1\"\n";
    write("config.yml", registered);
    ::chmod(cfg_.c_str(), 0600);
    env_["AIR_CONSOLE_ADDRESS"] = "new.example.com";
    env_["AIR_ORGANIZATION_ID"] = "9";
    env_["AIR_DEPLOYMENT_TOKEN"] = "dt-2";
    Outcome r = run({"install-config", "--config", cfg_.string()});
    EXPECT_EQ(r.exitCode, 0) << r.err;
    EXPECT_EQ(r.out.find("wrote"), std::string::npos) << r.out;
    EXPECT_EQ(relaypro::testing::readText(cfg_), registered);
}

TEST_F(InstallConfig, BadInputsAndLinksAreRefusedWithTheReason) {
    env_["AIR_CONSOLE_ADDRESS"] = "console.test";
    env_["AIR_ORGANIZATION_ID"] = "seven";
    Outcome r = run({"install-config", "--config", cfg_.string()});
    EXPECT_EQ(r.exitCode, 78);
    EXPECT_EQ(r.err, "relaypro: AIR_ORGANIZATION_ID: \"seven\" is not an integer >= 0\n");
    env_["AIR_ORGANIZATION_ID"] = "1";
    env_["AIR_CONSOLE_CA_CERT"] = "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n";
    r = run({"install-config", "--config", cfg_.string()});
    EXPECT_EQ(r.exitCode, 78);
    EXPECT_TRUE(r.err.starts_with("relaypro: AIR_CONSOLE_CA_CERT: ")) << r.err;
    env_.erase("AIR_CONSOLE_CA_CERT");

    fs::path elsewhere = write("elsewhere.yml", "# not RelayPro's\n");
    fs::path link = dir_ / "linked.yml";
    fs::create_symlink(elsewhere, link);
    r = run({"install-config", "--config", link.string()});
    EXPECT_EQ(r.exitCode, 1);
    EXPECT_NE(r.err.find("is not a regular file (a symbolic link?); refusing to write it"), std::string::npos) << r.err;
    EXPECT_EQ(relaypro::testing::readText(elsewhere), "# not RelayPro's\n");
}

TEST_F(InstallConfig, AsRootTheFileIsWrittenByTheServiceUser) {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root";
    ASSERT_EQ(::chown(dir_.c_str(), 65534, 65534), 0);  // the folder the service user may write
    env_["RELAYPRO_USER"] = "nobody";
    env_["AIR_CONSOLE_ADDRESS"] = "console.test";
    env_["AIR_ORGANIZATION_ID"] = "1";
    env_["AIR_DEPLOYMENT_TOKEN"] = "dt-3";
    makeCaPem();
    ::chmod((dir_ / "ca.pem").c_str(), 0600);  // only root can read it: read before switching
    env_["AIR_CONSOLE_CA_CERT"] = (dir_ / "ca.pem").string();
    Outcome r = run({"install-config", "--config", cfg_.string()});
    EXPECT_EQ(r.exitCode, 0) << r.err << r.out;
    struct stat st {};
    ASSERT_EQ(::stat(cfg_.c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, 65534u);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    EXPECT_NE(relaypro::testing::readText(cfg_).find("consoleCACert: |"), std::string::npos);
}

}  // namespace
