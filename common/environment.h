// The environment RelayPro reads its settings from (spec/config.md, "Environment variables"
// and "The environment file"): the inherited process environment, overlaid by the environment
// file (RELAYPRO_ENV_FILE) that RelayPro reads itself at start, on every reload and on upgrade.
//
// For the RELAYPRO_*, proxy and AIR_* keys a key in the file wins over the inherited value; a
// key the file held at an earlier read and no longer holds is unset; keys the file never held
// come from the inherited environment.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace relaypro {

inline constexpr std::string_view kDefaultEnvFile = "/etc/environment.d/binalyze-air-relaypro.conf";
inline constexpr size_t kMaxEnvFileBytes = 1 << 20;

struct EnvFileEntry {
    std::string key;
    std::string value;
    size_t line = 0;
};

// Parses the environment file syntax: `KEY=value` lines, `#` comment lines, blank lines,
// a value optionally in single or double quotes (taken literally, may span lines), no
// variable expansion. `label` prefixes error messages ("label:LINE: message").
Result<std::vector<EnvFileEntry>> parseEnvFile(std::string_view text, std::string_view label);

// Keys the environment file may set: RELAYPRO_*, AIR_* and the proxy variables.
bool isRelayProEnvKey(std::string_view key);

using EnvVars = std::map<std::string, std::string, std::less<>>;

class Environment {
public:
    Environment() = default;
    explicit Environment(EnvVars inherited);
    // The current process environment (only the keys RelayPro reads).
    static Environment fromProcess();

    // Reads the environment file at `path` (missing = empty) and makes it the overlay. On error
    // nothing changes. Warnings (ignored keys) are appended to `warnings`.
    Status loadFile(const std::string& path, std::vector<std::string>& warnings);
    // Same, from text already read.
    Status applyFileText(std::string_view text, std::string_view label, std::vector<std::string>& warnings);

    [[nodiscard]] std::optional<std::string> get(std::string_view key) const;
    // Where a value came from, for messages: "environment file PATH:LINE" or "environment".
    [[nodiscard]] std::string sourceOf(std::string_view key) const;

    // Keys the file held at any read so far (they survive an upgrade's re-exec).
    [[nodiscard]] const std::set<std::string, std::less<>>& everHeld() const { return everHeld_; }
    void restoreEverHeld(std::set<std::string, std::less<>> keys) { everHeld_ = std::move(keys); }

private:
    EnvVars inherited_;
    std::map<std::string, EnvFileEntry, std::less<>> file_;
    std::set<std::string, std::less<>> everHeld_;
    std::string fileLabel_;
};

}  // namespace relaypro
