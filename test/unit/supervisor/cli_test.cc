#include "supervisor/cli.h"

#include <gtest/gtest.h>

#include <cstdlib>

namespace relaypro {
namespace {

CommandLine ok(std::vector<std::string> args) {
    auto p = parseCommandLine(args);
    EXPECT_TRUE(p.command.has_value()) << p.error;
    return p.command.value_or(CommandLine{});
}

std::string usageError(std::vector<std::string> args) {
    auto p = parseCommandLine(args);
    EXPECT_FALSE(p.command.has_value());
    return p.error;
}

TEST(CommandLine, ParsesEveryCommandAndItsFlags) {
    EXPECT_EQ(ok({"help"}).command, "help");
    EXPECT_EQ(ok({"--help"}).command, "help");
    EXPECT_EQ(ok({"-h"}).command, "help");
    EXPECT_EQ(ok({"version"}).command, "version");
    EXPECT_FALSE(ok({"version"}).verbose);
    EXPECT_TRUE(ok({"version", "--verbose"}).verbose);

    CommandLine run = ok({"run", "--config", "/etc/r.yml", "--user", "root"});
    EXPECT_EQ(run.command, "run");
    EXPECT_EQ(run.config, "/etc/r.yml");
    EXPECT_EQ(run.user, "root");

    CommandLine check = ok({"check-config", "--config=/x.yml"});
    EXPECT_EQ(check.config, "/x.yml");

    CommandLine status = ok({"status", "--json"});
    EXPECT_TRUE(status.json);
    CommandLine upgrade = ok({"upgrade", "--timeout", "90"});
    EXPECT_EQ(upgrade.timeoutSeconds, 90u);
    EXPECT_EQ(ok({"ca", "init", "--config", "c.yml"}).command, "ca init");
    EXPECT_EQ(ok({"ca", "show"}).command, "ca show");
    EXPECT_TRUE(ok({"check-config", "--help"}).help);
    EXPECT_TRUE(ok({"ca", "show", "-h"}).help);
}

TEST(CommandLine, UsageErrorsSayWhatIsWrong) {
    EXPECT_EQ(usageError({}), "missing command");
    EXPECT_EQ(usageError({"serve"}), "unknown command \"serve\"");
    EXPECT_EQ(usageError({"run", "--json"}), "unknown option \"--json\" for run");
    EXPECT_EQ(usageError({"check-config", "--user", "x"}), "unknown option \"--user\" for check-config");
    EXPECT_EQ(usageError({"check-config", "--config"}), "--config needs a value");
    EXPECT_EQ(usageError({"check-config", "--config="}), "--config needs a file name");
    EXPECT_EQ(usageError({"upgrade", "--timeout", "0"}), "--timeout needs a number of seconds (1 to 86400)");
    EXPECT_EQ(usageError({"upgrade", "--timeout", "-5"}), "--timeout needs a number of seconds (1 to 86400)");
    EXPECT_EQ(usageError({"upgrade", "--timeout", "5s"}), "--timeout needs a number of seconds (1 to 86400)");
    EXPECT_EQ(usageError({"ca"}), "ca needs a sub-command: init or show");
    EXPECT_EQ(usageError({"ca", "rotate"}), "unknown ca sub-command \"rotate\"");
    EXPECT_EQ(usageError({"version", "--config", "x"}), "unknown option \"--config\" for version");
    EXPECT_EQ(usageError({"version", "--verbose=yes"}), "unknown option \"--verbose=yes\" for version");
    EXPECT_EQ(usageError({"status", "--verbose"}), "unknown option \"--verbose\" for status");
    EXPECT_EQ(usageError({"status", "extra"}), "unknown option \"extra\" for status");
}

TEST(CommandLine, ConfigPathPrecedence) {
    ::unsetenv("RELAYPRO_CONFIG");
    EXPECT_EQ(configPathFor(ok({"check-config"})), "/opt/binalyze/air/relaypro/config.yml");
    ::setenv("RELAYPRO_CONFIG", "/env/config.yml", 1);
    EXPECT_EQ(configPathFor(ok({"check-config"})), "/env/config.yml");
    EXPECT_EQ(configPathFor(ok({"check-config", "--config", "/flag.yml"})), "/flag.yml");
    ::unsetenv("RELAYPRO_CONFIG");
}

}  // namespace
}  // namespace relaypro
