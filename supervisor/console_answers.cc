#include "supervisor/console_answers.h"

#include "common/config_values.h"
#include "common/pem.h"

namespace relaypro {

bool isEnvelope(json_t* j) {
    if (!json_is_object(j)) return false;
    json_t* result = json_object_get(j, "result");
    json_t* errors = json_object_get(j, "errors");
    if (!json_is_boolean(json_object_get(j, "success")) || !json_is_integer(json_object_get(j, "statusCode")) ||
        result == nullptr || !(json_is_object(result) || json_is_null(result)) || !json_is_array(errors)) {
        return false;
    }
    size_t i = 0;
    json_t* e = nullptr;
    json_array_foreach(errors, i, e) {
        if (!json_is_string(e)) return false;
    }
    return true;
}

json_t* parseEnvelope(std::string_view body) {
    json_error_t err;
    json_t* j = json_loadb(body.data(), body.size(), JSON_REJECT_DUPLICATES, &err);
    if (isEnvelope(j)) return j;
    json_decref(j);
    return nullptr;
}

namespace {

bool succeeded(json_t* envelope) {
    return isEnvelope(envelope) && json_is_true(json_object_get(envelope, "success")) &&
           json_is_object(json_object_get(envelope, "result"));
}

}  // namespace

Result<Registration> registrationFrom(json_t* envelope) {
    if (!succeeded(envelope)) return Error{"the answer is not a successful envelope with a result"};
    json_t* result = json_object_get(envelope, "result");
    json_t* id = json_object_get(result, "relayId");
    json_t* token = json_object_get(result, "securityToken");
    json_t* ca = json_object_get(result, "consoleCACert");
    if (!json_is_integer(id) || json_integer_value(id) <= 0) return Error{"relayId is not a positive integer"};
    if (!json_is_string(token) || json_string_length(token) == 0)
        return Error{"securityToken is not a non-empty string"};
    if (ca != nullptr && !json_is_null(ca) && !json_is_string(ca)) return Error{"consoleCACert is not a string"};
    Registration reg;
    if (json_is_string(ca)) reg.consoleCACert.assign(json_string_value(ca), json_string_length(ca));
    if (!reg.consoleCACert.empty()) {
        if (auto s = validateCertificatesPem(reg.consoleCACert); !s) {
            return Error{"consoleCACert is not PEM certificates: " + s.error().message};
        }
    }
    reg.relayId = json_integer_value(id);
    reg.securityToken.assign(json_string_value(token), json_string_length(token));
    return reg;
}

Result<std::optional<Migration>> migrationFrom(json_t* envelope) {
    if (!succeeded(envelope)) return Error{"the answer is not a successful envelope with a result"};
    json_t* migration = json_object_get(json_object_get(envelope, "result"), "migration");
    if (migration == nullptr || json_is_null(migration)) return std::optional<Migration>{};
    if (!json_is_object(migration)) return Error{"migration is neither an object nor null"};
    json_t* address = json_object_get(migration, "consoleAddress");
    json_t* until = json_object_get(migration, "validUntilAt");
    if (!json_is_string(address) || !json_is_string(until)) {
        return Error{"migration needs consoleAddress and validUntilAt strings"};
    }
    std::string_view addressText(json_string_value(address), json_string_length(address));
    std::string_view untilText(json_string_value(until), json_string_length(until));
    auto parsedAddress = parseConsoleAddress(addressText);
    if (!parsedAddress) return Error{"migration.consoleAddress: " + parsedAddress.error().message};
    auto parsedUntil = parseRfc3339(untilText);
    if (!parsedUntil) return Error{"migration.validUntilAt: " + parsedUntil.error().message};
    Migration m;
    m.consoleAddress = *parsedAddress;
    m.validUntilAt = *parsedUntil;
    m.validUntilText = std::string(untilText);
    return std::optional<Migration>{std::move(m)};
}

bool verifiedValid(json_t* envelope, std::string_view responderId, int64_t organizationId) {
    if (!succeeded(envelope)) return false;
    json_t* result = json_object_get(envelope, "result");
    json_t* id = json_object_get(result, "responderId");
    json_t* org = json_object_get(result, "organizationId");
    return json_is_true(json_object_get(result, "valid")) && json_is_string(id) &&
           std::string_view(json_string_value(id), json_string_length(id)) == responderId && json_is_integer(org) &&
           json_integer_value(org) == organizationId;
}

}  // namespace relaypro
