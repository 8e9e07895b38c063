// The metrics from arbitrary bytes: a worker's Counters report (untrusted) and the registry's
// hand-over bytes. Whatever is accepted renders an exposition whose every line is a comment or a
// sample `name{labels} value` with a name of the format's alphabet, and the registry's state,
// once accepted, serializes to bytes it accepts again unchanged.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "ipc/messages.h"
#include "supervisor/metrics_registry.h"
#include "supervisor/metrics_text.h"

namespace {

bool nameChar(char c, bool first) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (!first && c >= '0' && c <= '9');
}

void checkExposition(const std::string& text) {
    size_t at = 0;
    while (at < text.size()) {
        size_t eol = text.find('\n', at);
        if (eol == std::string::npos) std::abort();  // every line ends
        std::string_view line(text.data() + at, eol - at);
        at = eol + 1;
        if (line.starts_with("# ")) continue;
        if (line.empty() || !nameChar(line[0], true)) std::abort();
        size_t i = 1;
        while (i < line.size() && nameChar(line[i], false)) ++i;
        if (i < line.size() && line[i] == '{') {
            // Inside the braces, a quote ends a value only when not escaped.
            bool quoted = false;
            for (++i; i < line.size(); ++i) {
                if (quoted && line[i] == '\\') {
                    ++i;
                } else if (line[i] == '"') {
                    quoted = !quoted;
                } else if (!quoted && line[i] == '}') {
                    break;
                }
            }
            if (i >= line.size()) std::abort();
            ++i;
        }
        if (i >= line.size() || line[i] != ' ' || line.find(' ', i + 1) != std::string_view::npos) std::abort();
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    relaypro::MetricsRegistry registry;
    relaypro::ipc::Counters report;
    if (relaypro::ipc::decodeBody(in, report)) registry.workerReported(42, report);
    if (registry.restore(in)) {
        const std::string once = registry.serialize();
        relaypro::MetricsRegistry again;
        if (!again.restore(once) || again.serialize() != once) std::abort();
    }
    relaypro::MetricsSnapshot s;
    s.version = std::string(in.substr(0, 16));  // free-form label values, escaped
    s.registration = std::string(in.substr(std::min<size_t>(size, 16), 16));
    s.workers.push_back({1, "serving", 1});
    checkExposition(relaypro::renderMetrics(registry, s));
    return 0;
}
