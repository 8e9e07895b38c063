// RelayPro's own writes to config.yml (spec/config.md, "Writes by RelayPro"): store relayProId,
// relayId, registeredTo, securityToken, consoleCACert and migration, and remove the
// deploymentToken line. A key that exists is replaced in place, a missing key is appended at the
// end of its mapping, and every other byte of the file (comments, blank lines, key order) stays
// as it was. Strings are written double-quoted and escaped (PEM as a literal block), integers
// plain, so no value from the console can inject a key. The result is parsed again before it
// replaces the file, and the replacement is atomic.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "common/environment.h"
#include "common/result.h"

namespace relaypro {

struct ConfigUpdate {
    enum class Kind { String, Integer, Remove };
    std::vector<std::string> path;  // {"relayId"} or {"migration", "consoleAddress"}
    Kind kind = Kind::String;
    std::string value;  // the string, or the decimal integer

    static ConfigUpdate string(std::vector<std::string> path, std::string value) {
        return {std::move(path), Kind::String, std::move(value)};
    }
    static ConfigUpdate integer(std::vector<std::string> path, int64_t value) {
        return {std::move(path), Kind::Integer, std::to_string(value)};
    }
    static ConfigUpdate remove(std::vector<std::string> path) { return {std::move(path), Kind::Remove, {}}; }
};

// Applies the updates to the text of a config file and returns the new text. Pure: no I/O.
// Fails (changing nothing) when the file cannot be edited safely, e.g. a flow-style mapping,
// or when the re-parsed result does not hold exactly the values written.
Result<std::string> applyConfigUpdates(std::string_view text, const std::vector<ConfigUpdate>& updates);

// Reads `path`, applies the updates, checks that the result is still a valid configuration (when
// the file was one), and replaces the file atomically with the same mode. Refuses, with a
// message naming the fix, when the file is a symbolic link, is not owned by this process's user
// (unless root), or its folder is not writable.
Status writeConfigUpdates(const std::string& path, const std::vector<ConfigUpdate>& updates, const Environment& env);

// A random (version 4) UUID in lower case.
std::string generateUuidV4();

}  // namespace relaypro
