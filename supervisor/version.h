// The product version ("relaypro <semver> (<git describe>)"). Defined in a translation unit of
// its own, linked into the executable, so a test build can carry another version string (the
// upgrade tests switch between two builds).
#pragma once

#include <string_view>

namespace relaypro {

std::string_view versionString();  // semver, e.g. "0.1.0"
std::string_view gitDescribe();    // e.g. "da560d7-dirty"

}  // namespace relaypro
