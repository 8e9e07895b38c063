// The token endpoint's body from arbitrary bytes. Properties: what parses obeys protocol.md's
// limits, and the same pair written back as JSON parses to the same pair.
#include <jansson.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/token.h"
#include "worker/token_request.h"

using namespace relaypro;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string body(reinterpret_cast<const char*>(data), size);
    auto r = parseTokenRequest(body);
    if (!r) return 0;
    if (!isPrintableResponderId(r->responderId) || r->credential.empty() || r->credential.size() > 8192) std::abort();
    json_t* j = json_pack("{s:s%,s:s%}", "responderId", r->responderId.data(), r->responderId.size(), "credential",
                          r->credential.data(), r->credential.size());
    if (j == nullptr) std::abort();
    char* text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    auto again = parseTokenRequest(text);
    std::free(text);
    if (!again || again->responderId != r->responderId || again->credential != r->credential) std::abort();
    return 0;
}
