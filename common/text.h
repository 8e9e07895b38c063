// Small text helpers shared by the parsers: quoting values for error messages, case folding,
// nearest-name suggestions, UTF-8 validation.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace relaypro {

// `"value"` for an error message: control bytes and quotes escaped, long values shortened.
// Never use it on a secret.
std::string quoted(std::string_view text, size_t maxBytes = 96);

// `text` safe to print on a terminal: control characters (C0, DEL, C1), bytes that are not
// well-formed UTF-8, and backslashes become \xNN (byte by byte); the rest is kept. Cut to at most
// `maxBytes` at a character's or an escape's start.
std::string escapedText(std::string_view text, size_t maxBytes = SIZE_MAX);

std::string toLower(std::string_view text);
bool equalsIgnoreCase(std::string_view a, std::string_view b);

// Edit distance (insert, delete, substitute; case-insensitive) between a and b.
size_t editDistance(std::string_view a, std::string_view b);
// The candidate closest to `name` (empty when there are no candidates).
std::string_view nearestName(std::string_view name, std::span<const std::string_view> candidates);

// Decodes the UTF-8 sequence at text[i] into `codePoint`; returns its length in bytes, or 0
// when the bytes there are not well-formed UTF-8 (overlong, surrogate, above U+10FFFF, cut).
size_t decodeUtf8(std::string_view text, size_t i, uint32_t& codePoint);

// Whole text is well-formed UTF-8.
// Every byte is in base64's alphabet (URL-safe: A-Z a-z 0-9 - _; else + /), padding '=' allowed
// only where `padding` says. libsodium 1.0.18's decoder maps some bytes >= 0x80 to digits, so
// callers check the alphabet first.
bool isBase64Alphabet(std::string_view text, bool urlSafe, bool padding);
bool isValidUtf8(std::string_view text);

std::string_view trimSpace(std::string_view text);  // spaces and tabs at both ends

}  // namespace relaypro
