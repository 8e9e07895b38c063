#include "test/support/installation.h"

#include <gtest/gtest.h>

#include "test/support/process.h"
#include "test/support/secrets.h"

namespace relaypro::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

Installation::Installation(const TempDir& dir, const std::string& build) : dir_(dir) {
    writeText(dir_.path() / "passwords.txt", kPasswordLine);
    writeText(dir_.path() / "hosts", "127.0.0.1 localhost\n");
    install(build);
}

void Installation::install(const std::string& build) const {
    fs::copy_file(build, dir_.path() / "installed.new", fs::copy_options::overwrite_existing);
    fs::permissions(dir_.path() / "installed.new", fs::perms::owner_all);
    fs::rename(dir_.path() / "installed.new", binary());
}

std::map<std::string, std::string> Installation::env(const std::map<std::string, std::string>& extra) const {
    std::map<std::string, std::string> e{{"RELAYPRO_HOSTS_FILE", (dir_.path() / "hosts").string()},
                                         {"RELAYPRO_INSTALLED_BINARY", binary().string()}};
    for (const auto& [k, v] : extra) e[k] = v;
    return e;
}

std::unique_ptr<Relay> Installation::start(const std::string& yaml,
                                           const std::map<std::string, std::string>& extraEnv) const {
    auto r = std::make_unique<Relay>(dir_, yaml, env(extraEnv), std::vector<std::string>{}, binary().string());
    EXPECT_TRUE(r->ready()) << r->stderrText();
    return r;
}

std::pair<int, std::string> Installation::cli(const std::vector<std::string>& args) const {
    std::vector<std::string> argv{binary().string()};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back("--config");
    argv.push_back(config().string());
    auto e = env({{"PATH", "/usr/bin:/bin"}, {"RELAYPRO_ENV_FILE", (dir_.path() / "environment.conf").string()}});
    ChildProcess p = ChildProcess::spawn(argv, e, dir_.path() / "cli.out", dir_.path() / "cli.err");
    int code = p.wait(120s);
    return {code, readText(dir_.path() / "cli.out") + readText(dir_.path() / "cli.err")};
}

}  // namespace relaypro::testing
