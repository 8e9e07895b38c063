// Answers from the console (untrusted: a compromised or impersonated console, a proxy in the way)
// from arbitrary bytes: the envelope check and each endpoint's reading never crash, and what they
// accept has the members and types console-api.md fixes.
#include <jansson.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "supervisor/console_answers.h"

using namespace relaypro;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    json_t* j = parseEnvelope(std::string_view(reinterpret_cast<const char*>(data), size));
    if (j == nullptr) return 0;
    json_t* result = json_object_get(j, "result");
    if (!json_is_boolean(json_object_get(j, "success")) || !(json_is_object(result) || json_is_null(result)) ||
        !json_is_array(json_object_get(j, "errors"))) {
        std::abort();
    }
    if (auto reg = registrationFrom(j); reg && (reg->relayId <= 0 || reg->securityToken.empty())) std::abort();
    if (auto m = migrationFrom(j); m && *m && (*m)->consoleAddress.host.empty()) std::abort();
    if (verifiedValid(j, "responder-1", 1) && !json_is_true(json_object_get(result, "valid"))) std::abort();
    json_decref(j);
    return 0;
}
