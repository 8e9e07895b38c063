#include "common/text.h"

#include <algorithm>
#include <vector>

namespace relaypro {

std::string quoted(std::string_view text, size_t maxBytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out = "\"";
    size_t n = std::min(text.size(), maxBytes);
    for (size_t i = 0; i < n; ++i) {
        auto c = static_cast<unsigned char>(text[i]);
        if (c == '"' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c < 0x20 || c == 0x7f) {
            out += "\\x";
            out += kHex[c >> 4];
            out += kHex[c & 15];
        } else {
            out += static_cast<char>(c);
        }
    }
    if (n < text.size()) out += "...";
    out += '"';
    return out;
}

std::string toLower(std::string_view text) {
    std::string out(text);
    for (char& c : out) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return out;
}

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

size_t editDistance(std::string_view a, std::string_view b) {
    std::string la = toLower(a), lb = toLower(b);
    std::vector<size_t> prev(lb.size() + 1), cur(lb.size() + 1);
    for (size_t j = 0; j <= lb.size(); ++j) prev[j] = j;
    for (size_t i = 1; i <= la.size(); ++i) {
        cur[0] = i;
        for (size_t j = 1; j <= lb.size(); ++j) {
            size_t sub = prev[j - 1] + (la[i - 1] == lb[j - 1] ? 0 : 1);
            cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
        }
        std::swap(prev, cur);
    }
    return prev[lb.size()];
}

std::string_view nearestName(std::string_view name, std::span<const std::string_view> candidates) {
    std::string_view best;
    size_t bestDistance = static_cast<size_t>(-1);
    for (auto c : candidates) {
        size_t d = editDistance(name, c);
        if (d < bestDistance) {
            bestDistance = d;
            best = c;
        }
    }
    return best;
}

size_t decodeUtf8(std::string_view s, size_t i, uint32_t& cp) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
        cp = c;
        return 1;
    }
    size_t len = 0;
    if (c >= 0xC2 && c <= 0xDF) {
        len = 2;
        cp = c & 0x1Fu;
    } else if (c >= 0xE0 && c <= 0xEF) {
        len = 3;
        cp = c & 0x0Fu;
    } else if (c >= 0xF0 && c <= 0xF4) {
        len = 4;
        cp = c & 0x07u;
    } else {
        return 0;
    }
    if (i + len > s.size()) return 0;
    for (size_t k = 1; k < len; ++k) {
        auto cc = static_cast<unsigned char>(s[i + k]);
        if ((cc & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (cc & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
        return 0;
    }
    return len;
}

bool isBase64Alphabet(std::string_view text, bool urlSafe, bool padding) {
    for (char c : text) {
        if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) continue;
        if (urlSafe ? (c == '-' || c == '_') : (c == '+' || c == '/')) continue;
        if (padding && c == '=') continue;
        return false;
    }
    return true;
}

std::string escapedText(std::string_view text, size_t maxBytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < text.size();) {
        uint32_t cp = 0;
        size_t n = decodeUtf8(text, i, cp);
        std::string piece;
        // Invisible format characters (bidirectional overrides and isolates, zero-width ones)
        // would let a name reorder or hide the columns around it: each of their bytes is escaped.
        const bool format = (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
                            (cp >= 0x2060 && cp <= 0x2069) || cp == 0xFEFF;
        if (n == 0 || cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp < 0xA0) || cp == '\\') {
            auto b = static_cast<unsigned char>(text[i]);  // a C1 control's second byte comes next
            piece = {'\\', 'x', kHex[b >> 4], kHex[b & 0xF]};
            n = 1;
        } else if (format) {
            for (size_t k = 0; k < n; ++k) {
                auto b = static_cast<unsigned char>(text[i + k]);
                piece += {'\\', 'x', kHex[b >> 4], kHex[b & 0xF]};
            }
        } else {
            piece = text.substr(i, n);
        }
        if (piece.size() > maxBytes - out.size()) break;
        out += piece;
        i += n;
    }
    return out;
}

bool isValidUtf8(std::string_view s) {
    uint32_t cp = 0;
    for (size_t i = 0; i < s.size();) {
        size_t len = decodeUtf8(s, i, cp);
        if (len == 0) return false;
        i += len;
    }
    return true;
}

std::string_view trimSpace(std::string_view t) {
    while (!t.empty() && (t.front() == ' ' || t.front() == '\t')) t.remove_prefix(1);
    while (!t.empty() && (t.back() == ' ' || t.back() == '\t')) t.remove_suffix(1);
    return t;
}

}  // namespace relaypro
