#include "worker/token_request.h"

#include <jansson.h>
#include <sodium.h>

#include "common/token.h"

namespace relaypro {

Result<TokenRequest> parseTokenRequest(std::string_view body) {
    if (body.empty() || body.size() > kMaxTokenRequestBody) return Error{"body size out of range"};
    json_error_t err;
    json_t* j = json_loadb(body.data(), body.size(), JSON_REJECT_DUPLICATES, &err);
    if (j == nullptr || !json_is_object(j)) {
        json_decref(j);
        return Error{"the body is not a JSON object"};
    }
    json_t* id = json_object_get(j, "responderId");
    json_t* cred = json_object_get(j, "credential");
    Result<TokenRequest> out = Error{""};
    if (json_object_size(j) != 2 || !json_is_string(id) || !json_is_string(cred)) {
        out = Error{"the body must hold exactly the strings responderId and credential"};
    } else {
        TokenRequest r;
        r.responderId.assign(json_string_value(id), json_string_length(id));
        r.credential.assign(json_string_value(cred), json_string_length(cred));
        if (!isPrintableResponderId(r.responderId)) {
            sodium_memzero(r.credential.data(), r.credential.size());
            out = Error{"responderId must be 1 to 256 bytes of printable UTF-8"};
        } else if (r.credential.empty() || r.credential.size() > 8192) {
            sodium_memzero(r.credential.data(), r.credential.size());
            out = Error{"credential must be 1 to 8192 bytes"};
        } else {
            out = std::move(r);
        }
        // jansson's copy of the credential goes with the document; wipe it first.
        sodium_memzero(const_cast<char*>(json_string_value(cred)), json_string_length(cred));
    }
    json_decref(j);
    return out;
}

}  // namespace relaypro
