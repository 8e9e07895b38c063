// Value formats and log formatting from arbitrary bytes. Properties checked, not just "no crash":
// a log line is always one valid JSON object; formatted sizes and durations parse back equal.
#include <jansson.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/config_values.h"
#include "common/log_record.h"
#include "common/proxy_env.h"

using namespace relaypro;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string text(reinterpret_cast<const char*>(data), size);
    if (auto s = parseSize(text); s && *parseSize(formatSize(*s)) != *s) std::abort();
    if (auto d = parseDuration(text); d && parseDuration(formatDuration(*d))->count() != d->count()) std::abort();
    (void)parseHostPort(text);
    if (auto a = parseConsoleAddress(text)) (void)a->normalized();
    if (auto c = parseCidr(text); c && !parseCidr(c->text())) std::abort();
    (void)parseRfc3339(text);
    (void)parseProxyUrl(text);
    if (auto np = NoProxy::parse(text)) (void)np->bypasses(text);

    LogRecord r;
    r.msg = text;
    r.component = "fuzz";
    r.fields.emplace_back(text, text);
    r.fields.emplace_back("auth", text);
    std::string line = formatLogLine(r);
    if (line.empty() || line.back() != '\n' || line.find('\n') != line.size() - 1) std::abort();
    json_error_t err;
    json_t* j = json_loadb(line.data(), line.size(), JSON_ALLOW_NUL, &err);
    if (j == nullptr || !json_is_object(j)) std::abort();
    json_decref(j);
    return 0;
}
