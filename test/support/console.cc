#include "test/support/console.h"

#include <gtest/gtest.h>

#include <sstream>

namespace relaypro::testing {

ConsoleSim::ConsoleSim(const std::filesystem::path& dir) : dir_(dir) {
    const std::string cert = certFile().string(), key = (dir_ / "console-key.pem").string();
    commandOutput(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=console "
        "-addext subjectAltName=IP:127.0.0.1,DNS:console.test -keyout " +
        key + " -out " + cert + " 2>/dev/null");
    setState("{}");
    writeText(dir_ / "console-journal.jsonl", "");
    process_ =
        ChildProcess::spawn({"/usr/bin/python3", std::string(RELAYPRO_SOURCE_DIR) + "/test/support/console_sim.py",
                             "--cert", cert, "--key", key, "--state", (dir_ / "console-state.json").string(),
                             "--journal", (dir_ / "console-journal.jsonl").string()},
                            {{"PATH", "/usr/bin:/bin"}}, dir_ / "console.out", dir_ / "console.err");
    eventually([&] {
        std::string out = readText(dir_ / "console.out");
        if (out.rfind("listening ", 0) != 0 || out.back() != '\n') return false;
        port_ = static_cast<uint16_t>(std::stoi(out.substr(10)));
        return true;
    });
    EXPECT_NE(port_, 0) << readText(dir_ / "console.err");
}

void ConsoleSim::setState(const std::string& json) const {
    writeText(dir_ / "console-state.json.tmp", json);
    std::filesystem::rename(dir_ / "console-state.json.tmp", dir_ / "console-state.json");
}

std::vector<std::pair<std::string, std::string>> ConsoleSim::journal() const {
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& line : splitLines(readText(dir_ / "console-journal.jsonl"))) {
        json_error_t err;
        json_t* j = json_loads(line.c_str(), 0, &err);
        if (j == nullptr) continue;
        const char* path = json_string_value(json_object_get(j, "path"));
        char* body = json_dumps(json_object_get(j, "body"), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        out.emplace_back(path != nullptr ? path : "", body != nullptr ? body : "");
        std::free(body);
        json_decref(j);
    }
    return out;
}

size_t ConsoleSim::count(const std::string& path) const {
    size_t n = 0;
    for (const auto& [p, b] : journal()) n += p == path ? 1U : 0U;
    return n;
}

std::string ConsoleSim::registeredConfig(int64_t organizationId) const {
    std::string pem;
    for (const auto& line : splitLines(certPem())) pem += "  " + line + "\n";
    return "consoleAddress: \"" + address() + "\"\norganizationId: " + std::to_string(organizationId) +
           "\nrelayId: 3\nregisteredTo: \"" + address() + "\"\nsecurityToken: \"st-9f3k2\"\nconsoleCACert: |\n" + pem;
}

}  // namespace relaypro::testing
