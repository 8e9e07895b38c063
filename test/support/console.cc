#include "test/support/console.h"

#include <gtest/gtest.h>

#include <sstream>

namespace relaypro::testing {

ConsoleSim::ConsoleSim(const std::filesystem::path& dir, Options options)
    : dir_(dir / "console"), options_(std::move(options)) {
    std::filesystem::create_directories(dir_);
    writeText(dir_ / "journal.jsonl", "");
    std::vector<std::string> argv{"/usr/bin/python3",
                                  std::string(RELAYPRO_SOURCE_DIR) + "/test/tools/console_sim.py",
                                  "--dir",
                                  dir_.string(),
                                  "--host",
                                  options_.host,
                                  "--port",
                                  std::to_string(options_.port)};
    if (options_.plainHttp) {
        argv.push_back("--http-port");
        argv.push_back(std::to_string(options_.httpPort));
    }
    process_ = ChildProcess::spawn(argv, {{"PATH", "/usr/bin:/bin"}}, dir_ / "out.txt", dir_ / "err.txt");
    eventually([&] {
        std::string out = readText(dir_ / "out.txt");
        if (out.rfind("listening ", 0) != 0 || out.back() != '\n') return false;
        std::istringstream in(out.substr(10));
        unsigned https = 0, http = 0;
        in >> https >> http;
        port_ = static_cast<uint16_t>(https);
        httpPort_ = static_cast<uint16_t>(http);
        return true;
    });
    EXPECT_NE(port_, 0) << output();
}

void ConsoleSim::setState(const std::string& json) const {
    writeText(dir_ / "state.json.tmp", json);
    std::filesystem::rename(dir_ / "state.json.tmp", dir_ / "state.json");
}

std::vector<ConsoleCall> ConsoleSim::journal() const {
    std::vector<ConsoleCall> out;
    for (const auto& line : splitLines(readText(dir_ / "journal.jsonl"))) {
        json_error_t err;
        json_t* j = json_loads(line.c_str(), 0, &err);
        if (j == nullptr) continue;
        ConsoleCall c;
        c.time = json_number_value(json_object_get(j, "time"));
        auto str = [&](const char* k) {
            const char* v = json_string_value(json_object_get(j, k));
            return std::string(v != nullptr ? v : "");
        };
        c.path = str("path");
        c.authorization = str("authorization");
        c.userAgent = str("userAgent");
        char* body = json_dumps(json_object_get(j, "body"), JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        c.body = body != nullptr ? body : "";
        std::free(body);
        json_decref(j);
        out.push_back(std::move(c));
    }
    return out;
}

size_t ConsoleSim::count(const std::string& path) const {
    size_t n = 0;
    for (const auto& c : journal()) n += c.path == path ? 1U : 0U;
    return n;
}

std::string ConsoleSim::caYaml() const {
    std::string pem;
    for (const auto& line : splitLines(certPem())) pem += "  " + line + "\n";
    return "consoleCACert: |\n" + pem;
}

std::string ConsoleSim::registeredConfig(int64_t organizationId) const {
    return "consoleAddress: \"" + address() + "\"\norganizationId: " + std::to_string(organizationId) +
           "\nrelayId: 3\nregisteredTo: \"" + address() + "\"\nsecurityToken: \"st-9f3k2\"\n" + caYaml();
}

}  // namespace relaypro::testing
