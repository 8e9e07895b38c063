#include "common/environment.h"

#include <array>
#include <cerrno>

#include "common/file_io.h"
#include "common/text.h"

extern char** environ;  // NOLINT(readability-redundant-declaration)

namespace relaypro {
namespace {

constexpr std::array<std::string_view, 6> kProxyKeys{"http_proxy",  "HTTP_PROXY", "https_proxy",
                                                     "HTTPS_PROXY", "no_proxy",   "NO_PROXY"};

// Keys that choose where the file is or where the config is: they are needed before the file
// is read, so a value in the file could never apply.
constexpr std::array<std::string_view, 2> kNotFromFile{"RELAYPRO_ENV_FILE", "RELAYPRO_CONFIG"};

constexpr std::array<std::string_view, 10> kKnownRelayProKeys{
    "RELAYPRO_CONFIG",        "RELAYPRO_USER",           "RELAYPRO_HTTPS_LISTEN", "RELAYPRO_HTTP_LISTEN",
    "RELAYPRO_PASSWORD_FILE", "RELAYPRO_CA_BUNDLE_FILE", "RELAYPRO_LOGGER_CONF",  "RELAYPRO_ENV_FILE",
    "RELAYPRO_HOSTS_FILE",    "RELAYPRO_RESOLV_CONF"};
constexpr std::array<std::string_view, 4> kKnownAirKeys{"AIR_CONSOLE_ADDRESS", "AIR_ORGANIZATION_ID",
                                                        "AIR_DEPLOYMENT_TOKEN", "AIR_CONSOLE_CA_CERT"};

bool isKeyStart(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}
bool isKeyChar(char c) {
    return isKeyStart(c) || (c >= '0' && c <= '9');
}

}  // namespace

bool isRelayProEnvKey(std::string_view key) {
    if (key.starts_with("RELAYPRO_") || key.starts_with("AIR_")) return true;
    for (auto k : kProxyKeys) {
        if (key == k) return true;
    }
    return false;
}

Result<std::vector<EnvFileEntry>> parseEnvFile(std::string_view text, std::string_view label) {
    std::vector<EnvFileEntry> out;
    size_t pos = 0, line = 1;
    auto err = [&](size_t at, const std::string& msg) {
        return Error{std::string(label) + ":" + std::to_string(at) + ": " + msg};
    };
    if (text.find('\0') != std::string_view::npos) {
        size_t nul = text.find('\0');
        size_t l = 1;
        for (size_t i = 0; i < nul; ++i) l += text[i] == '\n' ? 1U : 0U;
        return err(l, "NUL byte in file");
    }
    while (pos < text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos) eol = text.size();
        std::string_view raw = text.substr(pos, eol - pos);
        if (!raw.empty() && raw.back() == '\r') raw.remove_suffix(1);
        std::string_view body = trimSpace(raw);
        const size_t startLine = line;
        if (body.empty() || body.front() == '#') {
            pos = eol + 1;
            ++line;
            continue;
        }
        size_t eq = body.find('=');
        if (eq == std::string_view::npos) return err(startLine, "expected KEY=value");
        std::string_view key = trimSpace(body.substr(0, eq));
        bool keyOk = !key.empty() && isKeyStart(key.front());
        for (char c : key) keyOk = keyOk && isKeyChar(c);
        if (!keyOk) return err(startLine, quoted(key) + " is not a valid variable name");

        // The value starts after '='; a quoted value may run over several lines.
        size_t valueStart = pos + static_cast<size_t>(body.data() - raw.data()) + eq + 1;
        while (valueStart < text.size() && (text[valueStart] == ' ' || text[valueStart] == '\t')) ++valueStart;
        std::string value;
        size_t next = 0;
        if (valueStart < text.size() && (text[valueStart] == '"' || text[valueStart] == '\'')) {
            char q = text[valueStart];
            size_t close = text.find(q, valueStart + 1);
            if (close == std::string_view::npos) return err(startLine, "unterminated quoted value");
            value.assign(text.substr(valueStart + 1, close - valueStart - 1));
            for (char c : value) line += c == '\n' ? 1U : 0U;
            size_t lineEnd = text.find('\n', close);
            if (lineEnd == std::string_view::npos) lineEnd = text.size();
            std::string_view after = text.substr(close + 1, lineEnd - close - 1);
            if (!after.empty() && after.back() == '\r') after.remove_suffix(1);
            after = trimSpace(after);
            if (!after.empty() && after.front() != '#') return err(line, "unexpected text after the closing quote");
            next = lineEnd + 1;
        } else {
            size_t valueEnd = eol;
            std::string_view v = text.substr(valueStart, valueEnd > valueStart ? valueEnd - valueStart : 0);
            if (!v.empty() && v.back() == '\r') v.remove_suffix(1);
            value.assign(trimSpace(v));
            next = eol + 1;
        }
        // Keep CR out of values (files edited on Windows): a quoted CRLF becomes LF.
        std::string cleaned;
        cleaned.reserve(value.size());
        for (size_t i = 0; i < value.size(); ++i) {
            if (value[i] == '\r' && i + 1 < value.size() && value[i + 1] == '\n') continue;
            cleaned += value[i];
        }
        out.push_back(EnvFileEntry{std::string(key), std::move(cleaned), startLine});
        pos = next;
        ++line;
    }
    return out;
}

Environment::Environment(EnvVars inherited) : inherited_(std::move(inherited)) {}

Environment Environment::fromProcess() {
    EnvVars vars;
    for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
        std::string_view kv = *e;
        size_t eq = kv.find('=');
        if (eq == std::string_view::npos) continue;
        std::string_view key = kv.substr(0, eq);
        if (isRelayProEnvKey(key)) vars.emplace(key, kv.substr(eq + 1));
    }
    return Environment(std::move(vars));
}

Status Environment::loadFile(const std::string& path, std::vector<std::string>& warnings) {
    auto text = readFile(path, kMaxEnvFileBytes);
    if (!text) {
        if (text.error().sysErrno == ENOENT) return applyFileText("", path, warnings);
        return Error{"environment file: " + text.error().describe()};
    }
    return applyFileText(*text, path, warnings);
}

Status Environment::applyFileText(std::string_view text, std::string_view label, std::vector<std::string>& warnings) {
    auto entries = parseEnvFile(text, label);
    if (!entries) return entries.error();
    std::map<std::string, EnvFileEntry, std::less<>> held;
    for (auto& e : *entries) {
        std::string where = std::string(label) + ":" + std::to_string(e.line) + ": ";
        if (!isRelayProEnvKey(e.key)) {
            warnings.push_back(where + e.key + " is not a RelayPro setting; ignored");
            continue;
        }
        bool notFromFile = false;
        for (auto k : kNotFromFile) notFromFile = notFromFile || e.key == k;
        if (notFromFile) {
            warnings.push_back(
                where + e.key +
                " cannot be set in the environment file (it is needed before the file is read); ignored");
            continue;
        }
        if (e.key.starts_with("RELAYPRO_") || e.key.starts_with("AIR_")) {
            bool known = false;
            for (auto k : kKnownRelayProKeys) known = known || e.key == k;
            for (auto k : kKnownAirKeys) known = known || e.key == k;
            if (!known) {
                std::vector<std::string_view> all(kKnownRelayProKeys.begin(), kKnownRelayProKeys.end());
                all.insert(all.end(), kKnownAirKeys.begin(), kKnownAirKeys.end());
                warnings.push_back(where + "unknown variable \"" + e.key + "\" — did you mean \"" +
                                   std::string(nearestName(e.key, all)) + "\"?");
            }
        }
        if (held.contains(e.key)) warnings.push_back(where + e.key + " is set again; the last value wins");
        held[e.key] = std::move(e);
    }
    file_ = std::move(held);
    fileLabel_ = std::string(label);
    for (const auto& [k, v] : file_) everHeld_.insert(k);
    return {};
}

std::optional<std::string> Environment::get(std::string_view key) const {
    if (auto it = file_.find(key); it != file_.end()) return it->second.value;
    if (everHeld_.contains(key)) return std::nullopt;
    if (auto it = inherited_.find(key); it != inherited_.end()) return it->second;
    return std::nullopt;
}

std::string Environment::sourceOf(std::string_view key) const {
    if (auto it = file_.find(key); it != file_.end()) return fileLabel_ + ":" + std::to_string(it->second.line);
    return "environment";
}

}  // namespace relaypro
