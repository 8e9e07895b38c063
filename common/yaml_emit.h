// Writing YAML scalars so that no value can break out of its place: strings become
// double-quoted, escaped scalars; PEM text a literal block. Used by the config writer and by
// check-config's output.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace relaypro {

// A double-quoted YAML scalar for any byte string. Invalid UTF-8 bytes and every character
// YAML does not print are escaped, so the result is always one line.
std::string yamlDoubleQuoted(std::string_view text);

// A literal block ("|" or "|-", then the lines indented by `indent` spaces), when `text` can
// be written that way unchanged (printable lines, no leading space on the first line, at most
// one final newline); otherwise nullopt.
std::optional<std::string> yamlLiteralBlock(std::string_view text, size_t indent);

}  // namespace relaypro
