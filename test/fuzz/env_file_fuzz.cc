// The environment file and RELAYPRO_LOGGER_CONF from arbitrary bytes.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/config.h"
#include "common/environment.h"

using namespace relaypro;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    Environment env;
    std::vector<std::string> warnings;
    if (!env.applyFileText(text, "/fuzz/env.conf", warnings)) return 0;
    // Whatever the file set feeds the config loader (overrides, AIR_* inputs, logger string).
    auto config = parseConfig(
        ConfigSource{"/fuzz/config.yml", "consoleAddress: c\norganizationId: 1\nproxyEnabled: true\n"}, env, warnings);
    (void)config;
    return 0;
}
