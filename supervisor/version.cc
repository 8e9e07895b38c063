#include "supervisor/version.h"

#include "relaypro_version.h"

#ifndef RELAYPRO_VERSION_SUFFIX
#define RELAYPRO_VERSION_SUFFIX ""
#endif

namespace relaypro {

std::string_view versionString() {
    return RELAYPRO_VERSION RELAYPRO_VERSION_SUFFIX;
}
std::string_view gitDescribe() {
    return RELAYPRO_GIT_DESCRIBE;
}

}  // namespace relaypro
