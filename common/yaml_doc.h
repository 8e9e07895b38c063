// A YAML document read with libyaml into a small tree that remembers where every node starts
// and ends (byte offset, line, column). The config loader uses the positions for its
// `file:line:column` messages, the config writer to replace values in place.
// Deliberately narrow: one document, no aliases, no explicit tags, bounded depth and size.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/result.h"

namespace relaypro {

struct YamlMark {
    size_t offset = 0;  // byte offset into the text
    size_t line = 1;    // counted from 1
    size_t column = 1;  // counted from 1, in bytes
};

enum class YamlStyle { Plain, SingleQuoted, DoubleQuoted, Literal, Folded, Block, Flow };

struct YamlEntry;

struct YamlNode {
    enum class Kind { Scalar, Sequence, Mapping };
    Kind kind = Kind::Scalar;
    YamlStyle style = YamlStyle::Plain;
    std::string text;  // a scalar's value
    YamlMark start, end;
    std::vector<YamlNode> items;     // a sequence's items
    std::vector<YamlEntry> entries;  // a mapping's key/value pairs, in order

    [[nodiscard]] bool isScalar() const { return kind == Kind::Scalar; }
    [[nodiscard]] bool isMapping() const { return kind == Kind::Mapping; }
    [[nodiscard]] bool isSequence() const { return kind == Kind::Sequence; }
    // A plain empty, "~" or "null" scalar: YAML's null.
    [[nodiscard]] bool isNull() const;
    // The value of a mapping entry whose key is the scalar `key`, or nullptr.
    [[nodiscard]] const YamlNode* find(std::string_view key) const;
};

struct YamlEntry {
    YamlNode key;  // always a scalar
    YamlNode value;
};

struct YamlDocument {
    std::optional<YamlNode> root;  // empty for a file of comments only
    YamlMark end;                  // where the document (stream) ends
};

// Largest config file RelayPro reads.
inline constexpr size_t kMaxYamlBytes = 1 << 20;

// Parses `text`. The error message starts with "LINE:COLUMN: ".
Result<YamlDocument> parseYaml(std::string_view text);

}  // namespace relaypro
