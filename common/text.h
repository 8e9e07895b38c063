// Small text helpers shared by the parsers: quoting values for error messages, case folding,
// nearest-name suggestions, UTF-8 validation.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace relaypro {

// `"value"` for an error message: control bytes and quotes escaped, long values shortened.
// Never use it on a secret.
std::string quoted(std::string_view text, size_t maxBytes = 96);

std::string toLower(std::string_view text);
bool equalsIgnoreCase(std::string_view a, std::string_view b);

// Edit distance (insert, delete, substitute; case-insensitive) between a and b.
size_t editDistance(std::string_view a, std::string_view b);
// The candidate closest to `name` (empty when there are no candidates).
std::string_view nearestName(std::string_view name, std::span<const std::string_view> candidates);

// Whole text is well-formed UTF-8 (no overlongs, no surrogates, nothing above U+10FFFF).
bool isValidUtf8(std::string_view text);

std::string_view trimSpace(std::string_view text);  // spaces and tabs at both ends

}  // namespace relaypro
