// config.yml from arbitrary bytes: the loader must return a config or an error, never crash;
// when it loads, the writer's edits must re-read exactly as written.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/config.h"
#include "common/config_writer.h"

using namespace relaypro;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    static const Environment env;
    std::vector<std::string> warnings;
    auto config = parseConfig(ConfigSource{"/fuzz/config.yml", text}, env, warnings);
    if (!config) return 0;
    (void)renderEffectiveConfig(*config);
    auto updated = applyConfigUpdates(
        text, {ConfigUpdate::integer({"relayId"}, 7), ConfigUpdate::string({"registeredTo"}, "c.example:443"),
               ConfigUpdate::string({"migration", "consoleAddress"}, "m.example"),
               ConfigUpdate::remove({"deploymentToken"})});
    // applyConfigUpdates verifies its own result; a success must also load again.
    if (updated) {
        auto again = parseConfig(ConfigSource{"/fuzz/config.yml", *updated}, env, warnings);
        (void)again;
    }
    return 0;
}
