#include "common/yaml_emit.h"

#include <cstdint>

#include "common/text.h"

namespace relaypro {
namespace {

// YAML 1.1 c-printable, minus the line breaks that must be escaped inside a quoted scalar.
bool printableInQuotes(uint32_t cp) {
    if (cp >= 0x20 && cp <= 0x7E) return true;
    if (cp == 0x85 || cp == 0x2028 || cp == 0x2029 || cp == 0xFEFF) return false;
    return (cp >= 0xA0 && cp <= 0xD7FF) || (cp >= 0xE000 && cp <= 0xFFFD) || (cp >= 0x10000 && cp <= 0x10FFFF);
}

void appendHex(std::string& out, char kind, uint32_t value, int digits) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    out += '\\';
    out += kind;
    for (int d = digits - 1; d >= 0; --d) out += kHex[(value >> (4 * d)) & 15];
}

}  // namespace

std::string yamlDoubleQuoted(std::string_view text) {
    std::string out = "\"";
    for (size_t i = 0; i < text.size();) {
        uint32_t cp = 0;
        size_t len = decodeUtf8(text, i, cp);
        if (len == 0) {
            // Not UTF-8: keep the byte's value as the code point of the same number, so the
            // file stays valid UTF-8 and the writer's re-read tells the difference.
            appendHex(out, 'x', static_cast<unsigned char>(text[i]), 2);
            ++i;
            continue;
        }
        switch (cp) {
            case '"':
                out += "\\\"";
                break;
            case '\\':
                out += "\\\\";
                break;
            case '\n':
                out += "\\n";
                break;
            case '\t':
                out += "\\t";
                break;
            case '\r':
                out += "\\r";
                break;
            case 0:
                out += "\\0";
                break;
            default:
                if (printableInQuotes(cp)) {
                    out.append(text.substr(i, len));
                } else if (cp <= 0xFF) {
                    appendHex(out, 'x', cp, 2);
                } else if (cp <= 0xFFFF) {
                    appendHex(out, 'u', cp, 4);
                } else {
                    appendHex(out, 'U', cp, 8);
                }
        }
        i += len;
    }
    out += '"';
    return out;
}

std::optional<std::string> yamlLiteralBlock(std::string_view text, size_t indent) {
    if (text.empty()) return std::nullopt;
    std::string_view body = text;
    bool finalNewline = body.back() == '\n';
    if (finalNewline) body.remove_suffix(1);
    if (body.empty() || body.back() == '\n' || body.front() == ' ' || body.front() == '\n') return std::nullopt;
    std::string out = finalNewline ? "|" : "|-";
    const std::string pad(indent, ' ');
    size_t pos = 0;
    while (pos <= body.size()) {
        size_t eol = body.find('\n', pos);
        if (eol == std::string_view::npos) eol = body.size();
        std::string_view line = body.substr(pos, eol - pos);
        for (char ch : line) {
            auto c = static_cast<unsigned char>(ch);
            if (c < 0x20 || c > 0x7E) return std::nullopt;  // PEM is ASCII; anything else goes quoted
        }
        if (!line.empty() && line.back() == ' ') return std::nullopt;
        out += '\n';
        if (!line.empty()) out += pad;
        out += line;
        pos = eol + 1;
    }
    return out;
}

}  // namespace relaypro
