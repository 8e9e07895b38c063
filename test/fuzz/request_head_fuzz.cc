// The request-head parser from arbitrary bytes. Properties, not only "no crash": parsing in
// arbitrary pieces (as data arrives) gives the same answer as parsing at once, and every view
// of a complete head points inside the buffer.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "worker/request_head.h"

using namespace relaypro;

namespace {

bool inside(std::string_view buf, std::string_view v) {
    return v.empty() || (v.data() >= buf.data() && v.data() + v.size() <= buf.data() + buf.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size < 1) return 0;
    const size_t max = 1024 + data[0] * 64;
    std::string_view buf(reinterpret_cast<const char*>(data) + 1, size - 1);
    RequestHead whole;
    HeadResult once = parseRequestHead(buf, max, whole);

    RequestHead piecewise;
    size_t scanned = 0;
    HeadResult r{};
    size_t step = 1 + (data[0] % 7);
    for (size_t n = 0; n <= buf.size(); n = n == buf.size() ? n + 1 : std::min(buf.size(), n + step)) {
        r = parseRequestHead(buf.substr(0, n), max, piecewise, scanned);
        if (r.status != HeadStatus::Incomplete) break;
    }
    if (r.status != once.status) std::abort();
    if (r.status == HeadStatus::Invalid &&
        (r.error.status != once.error.status || r.error.reason != once.error.reason)) {
        std::abort();
    }
    if (once.status == HeadStatus::Complete) {
        if (whole.headLength > buf.size() || whole.headLength > max || piecewise.headLength != whole.headLength)
            std::abort();
        bool defaultPath = whole.form == TargetForm::Absolute && whole.path == "/";  // "http://host" has none
        if (!inside(buf, whole.method) || !inside(buf, whole.target) || !inside(buf, whole.host) ||
            (!defaultPath && !inside(buf, whole.path))) {
            std::abort();
        }
        for (const auto& f : whole.fields) {
            if (!inside(buf, f.name) || !inside(buf, f.value)) std::abort();
        }
        if (whole.fields.size() > kMaxHeaderFields) std::abort();
    }
    return 0;
}
