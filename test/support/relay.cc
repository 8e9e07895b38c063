#include "test/support/relay.h"

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <sstream>

#include "test/support/secrets.h"

namespace relaypro::testing {

Relay::Relay(const TempDir& dir, const std::string& configYaml, std::map<std::string, std::string> env,
             std::vector<std::string> extraArgs, const std::string& binary, const std::filesystem::path& configDir)
    : dir_(dir.path()), configDir_(configDir.empty() ? dir.path() : configDir) {
    if (!configYaml.empty()) writeText(configDir_ / "config.yml", configYaml);
    std::map<std::string, std::string> full{{"PATH", "/usr/bin:/bin"},
                                            {"RELAYPRO_ENV_FILE", (dir_ / "environment.conf").string()},
                                            {"ASAN_OPTIONS", "detect_leaks=1"}};
    for (auto& [k, v] : env) full[k] = v;
    std::vector<std::string> argv{binary, "run", "--config", (configDir_ / "config.yml").string(), "--user", "root"};
    argv.insert(argv.end(), extraArgs.begin(), extraArgs.end());
    // RELAYPRO_TEST_WRAPPER: words run in front of the relay, which they exec (the old-kernel
    // tests: test/tools/old_kernel.cc), so the relay's pid is the one started here.
    if (const char* wrapper = std::getenv("RELAYPRO_TEST_WRAPPER"); wrapper != nullptr && *wrapper != '\0') {
        std::istringstream words(wrapper);
        std::vector<std::string> front{std::istream_iterator<std::string>(words), std::istream_iterator<std::string>()};
        argv.insert(argv.begin(), front.begin(), front.end());
    }
    process_ = ChildProcess::spawn(argv, full, dir_ / "stdout.txt", dir_ / "stderr.txt");
    // Only this process's lines count: a test may run relays one after another in one folder.
    const std::string pid = std::to_string(process_.pid());
    ready_ = eventually([&] {
        return !process_.running() || waitForLog("ready", {{"pid", pid}}, std::chrono::milliseconds(0));
    });
    ready_ = ready_ && process_.running();
    for (const auto& l : log()) {
        if (l["msg"] != "listening" || l["pid"] != pid) continue;
        std::string address = l["address"];
        auto port = static_cast<uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
        if (l["kind"] == "https") httpsPort_ = port;
        if (l["kind"] == "http") httpPort_ = port;
        if (l["kind"] == "metrics") metricsPort_ = port;
    }
}

Relay::~Relay() {
    if (process_.running()) process_.stop(SIGKILL);
    // No secret of the test's may appear in anything the relay wrote.
    const std::string written = readText(logFile()) + readText(dir_ / "stdout.txt") + readText(dir_ / "stderr.txt");
    for (const auto& s : secretsIn(written)) {
        ADD_FAILURE() << "a secret the test used (" << s.substr(0, 3) << "..., " << s.size()
                      << " bytes) appears in what the relay wrote under " << dir_;
    }
}

std::vector<LogLine> Relay::log() const {
    std::vector<LogLine> out;
    std::ifstream in(logFile());
    std::string line;
    while (std::getline(in, line)) {
        json_error_t err;
        json_t* j = json_loads(line.c_str(), 0, &err);
        if (j == nullptr) continue;
        LogLine l;
        l.text = line;
        const char* key = nullptr;
        json_t* v = nullptr;
        json_object_foreach(j, key, v) {
            if (json_is_string(v))
                l.fields[key] = json_string_value(v);
            else if (json_is_integer(v))
                l.fields[key] = std::to_string(json_integer_value(v));
            else if (json_is_true(v))
                l.fields[key] = "true";
            else if (json_is_false(v))
                l.fields[key] = "false";
        }
        json_decref(j);
        out.push_back(std::move(l));
    }
    return out;
}

bool Relay::waitForLog(const std::string& msg, const std::map<std::string, std::string>& match,
                       std::chrono::milliseconds timeout) const {
    return eventually(
        [&] {
            for (const auto& l : log()) {
                if (l["msg"] != msg) continue;
                bool all = true;
                for (const auto& [k, v] : match) all = all && l[k] == v;
                if (all) return true;
            }
            return false;
        },
        timeout);
}

std::vector<pid_t> Relay::workerPids() const {
    std::vector<pid_t> out;
    for (const auto& l : log()) {
        if (l["msg"] == "worker ready") out.push_back(std::stoi(l["workerPid"]));
    }
    return out;
}

long Relay::rssKiB() const {
    std::ifstream in("/proc/" + std::to_string(process_.pid()) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
}

}  // namespace relaypro::testing
