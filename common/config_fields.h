// The field table of config.yml (spec/config.md), shared by the loader, the renderer and the
// reload rules in common/config*.cc: each field's name, how a change of it takes effect, whether
// it is a secret, how its text is read and shown, and how a reload keeps a restart-only one.
// Not an interface for the rest of the code: common/config.h is.
#pragma once

#include <array>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.h"

namespace relaypro::config_table {

// How a field's effective value is shown: a string (quoted or a literal block), or plain text.
struct Shown {
    std::string text;
    bool isString = false;
};

using AssignFn = Status (*)(Config&, std::string_view);
using ShowFn = Shown (*)(const Config&);
using KeepFn = void (*)(Config& next, const Config& running);

struct Field {
    std::string_view name;
    Apply apply;
    bool secret;
    AssignFn assign;  // nullptr: not a scalar (handled by the loader itself)
    ShowFn show;
    KeepFn keep = nullptr;  // Apply::Restart: puts the running value back into the next configuration
};

inline constexpr size_t kFieldCount = 40;
extern const std::array<Field, kFieldCount> kFields;  // in the order of spec/config.md

const Field* findField(std::string_view name);
// A dotted prefix of some field ("logger", "limits"), that is, a section.
bool isSection(std::string_view name);
// Names one level below `section` ("" = top level): fields and section names.
std::vector<std::string_view> namesAt(std::string_view section);

std::string loggerPath(const Config& c, const std::string& fileName);
Status checkPathText(std::string_view text);

}  // namespace relaypro::config_table
