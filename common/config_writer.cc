#include "common/config_writer.h"

#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "common/config.h"
#include "common/file_io.h"
#include "common/text.h"
#include "common/yaml_doc.h"
#include "common/yaml_emit.h"

namespace relaypro {
namespace {

std::string joinPath(const std::vector<std::string>& path) {
    std::string out;
    for (const auto& p : path) out += (out.empty() ? "" : ".") + p;
    return out;
}

size_t lineStart(std::string_view text, size_t offset) {
    while (offset > 0 && text[offset - 1] != '\n') --offset;
    return offset;
}

// Just past the end of the line holding `offset` (past its '\n', or the end of the text).
size_t lineEnd(std::string_view text, size_t offset) {
    size_t nl = text.find('\n', offset);
    return nl == std::string_view::npos ? text.size() : nl + 1;
}

// Where a scalar's own bytes end. A block scalar's mark runs over the blank lines after it;
// those belong to the layout around it, so stop after its last non-blank line.
size_t scalarEnd(std::string_view text, const YamlNode& n) {
    size_t end = n.end.offset;
    if (n.style != YamlStyle::Literal && n.style != YamlStyle::Folded) return end;
    size_t last = end;
    while (last > n.start.offset &&
           (text[last - 1] == '\n' || text[last - 1] == ' ' || text[last - 1] == '\t' || text[last - 1] == '\r')) {
        --last;
    }
    return lineEnd(text, last);
}

// The end of the last line that belongs to a mapping entry (its value, nested entries, and a
// comment on the same line).
size_t entryEnd(std::string_view text, const YamlNode& value) {
    if (value.isMapping() && !value.entries.empty() && value.style == YamlStyle::Block) {
        return entryEnd(text, value.entries.back().value);
    }
    if (value.isSequence() && !value.items.empty() && value.style == YamlStyle::Block) {
        return entryEnd(text, value.items.back());
    }
    size_t end = value.isScalar() ? scalarEnd(text, value) : value.end.offset;
    if (end > 0 && text[end - 1] == '\n') return end;
    return lineEnd(text, end);
}

Result<std::string> renderScalar(const ConfigUpdate& u, size_t indent) {
    if (u.kind == ConfigUpdate::Kind::Integer) {
        for (char c : u.value) {
            if ((c < '0' || c > '9') && c != '-') return Error{joinPath(u.path) + ": not an integer"};
        }
        return u.value;
    }
    // PEM goes as a literal block (readable, as config.md says); everything else, whatever it
    // holds, as one double-quoted line.
    if (u.value.starts_with("-----BEGIN ")) {
        if (auto block = yamlLiteralBlock(u.value, indent + 2)) return *block + "\n";
    }
    return yamlDoubleQuoted(u.value);
}

// Replaces [begin, end) of `text`, keeping the line structure: a replacement of a region that
// ended a line ends a line too.
std::string splice(std::string_view text, size_t begin, size_t end, std::string replacement) {
    bool regionEndsLine = end > begin && text[end - 1] == '\n';
    bool replacementEndsLine = !replacement.empty() && replacement.back() == '\n';
    if (regionEndsLine && !replacementEndsLine) replacement += '\n';
    if (!regionEndsLine && replacementEndsLine) replacement.pop_back();
    std::string out;
    out.reserve(text.size() + replacement.size());
    out.append(text.substr(0, begin));
    out += replacement;
    out.append(text.substr(end));
    return out;
}

std::string insertAt(std::string_view text, size_t offset, std::string_view insertion) {
    std::string out(text.substr(0, offset));
    if (!out.empty() && out.back() != '\n') out += '\n';
    out += insertion;
    out.append(text.substr(offset));
    return out;
}

// Appends `lines` (complete lines) after the last entry of `map` (or at the end of the text).
std::string appendToMapping(std::string_view text, const YamlNode* map, std::string_view lines) {
    size_t offset = text.size();
    if (map != nullptr && !map->entries.empty()) offset = entryEnd(text, map->entries.back().value);
    return insertAt(text, offset, lines);
}

size_t childIndent(const YamlNode* map, size_t fallback) {
    if (map == nullptr || map->entries.empty()) return fallback;
    return map->entries.front().key.start.column - 1;
}

// u.path[0] is absent (`section` nullptr) or set to nothing ("section:" or "section: ~") at
// `indent`: the section with u's field in it.
Result<std::string> addToEmptySection(std::string_view text, const YamlNode* root, const YamlNode* section,
                                      const ConfigUpdate& u, size_t indent) {
    if (u.kind == ConfigUpdate::Kind::Remove) return std::string(text);
    size_t inner = indent + 2;
    auto value = renderScalar(u, inner);
    if (!value) return value.error();
    std::string entry = std::string(inner, ' ') + u.path[1] + ": " + *value;
    if (entry.back() != '\n') entry += '\n';
    if (section == nullptr) return appendToMapping(text, root, std::string(indent, ' ') + u.path[0] + ":\n" + entry);
    // The mapping starts on the next line.
    const YamlNode* key = nullptr;
    for (const auto& [k, v] : root->entries) {
        if (&v == section) key = &k;
    }
    size_t begin = key->end.offset;
    size_t end = std::max(section->end.offset, begin);
    entry.pop_back();
    return splice(text, begin, end, ":\n" + entry);
}

Result<std::string> applyOne(std::string_view text, const ConfigUpdate& u) {
    const std::string name = joinPath(u.path);
    if (u.path.empty() || u.path.size() > 2) return Error{name + ": unsupported path"};
    auto doc = parseYaml(text);
    if (!doc) return Error{"config.yml does not parse: " + doc.error().message};
    const YamlNode* root = doc->root && doc->root->isMapping() ? &*doc->root : nullptr;
    if (doc->root && !doc->root->isMapping() && !doc->root->isNull()) {
        return Error{"the top level of config.yml is not a mapping"};
    }
    if (root != nullptr && root->style == YamlStyle::Flow) {
        return Error{"config.yml uses a flow mapping ({...}); write it as one \"field: value\" per line"};
    }

    const YamlNode* parent = root;
    size_t indent = childIndent(root, 0);
    if (u.path.size() == 2) {
        const YamlNode* section = root != nullptr ? root->find(u.path[0]) : nullptr;
        if (section == nullptr || section->isNull()) return addToEmptySection(text, root, section, u, indent);
        if (!section->isMapping() || section->style != YamlStyle::Block) {
            return Error{u.path[0] + " in config.yml is not a block mapping; cannot update " + name};
        }
        parent = section;
        indent = childIndent(section, indent + 2);
    }

    const std::string& key = u.path.back();
    const YamlNode* keyNode = nullptr;
    const YamlNode* valueNode = nullptr;
    if (parent != nullptr) {
        for (const auto& [k, v] : parent->entries) {
            if (k.text == key) {
                keyNode = &k;
                valueNode = &v;
            }
        }
    }
    if (keyNode == nullptr) {
        if (u.kind == ConfigUpdate::Kind::Remove) return std::string(text);
        auto value = renderScalar(u, indent);
        if (!value) return value.error();
        std::string entry = std::string(indent, ' ') + key + ": " + *value;
        if (entry.back() != '\n') entry += '\n';
        return appendToMapping(text, parent, entry);
    }
    if (u.kind == ConfigUpdate::Kind::Remove) {
        size_t begin = lineStart(text, keyNode->start.offset);
        if (std::string_view(text).substr(begin, keyNode->start.offset - begin).find_first_not_of(' ') !=
            std::string_view::npos) {
            return Error{name + " does not start its own line in config.yml; remove it by hand"};
        }
        std::string out(text.substr(0, begin));
        out.append(text.substr(entryEnd(text, *valueNode)));
        return out;
    }
    if (!valueNode->isScalar()) return Error{name + " in config.yml is not a single value; fix it by hand"};
    auto value = renderScalar(u, indent);
    if (!value) return value.error();
    size_t begin = valueNode->start.offset;
    size_t end = scalarEnd(text, *valueNode);
    std::string replacement = *value;
    if (begin == end) replacement.insert(0, " ");  // "key:" with no value yet
    return splice(text, begin, end, replacement);
}

// The value at `path` in parsed text, if it is a scalar.
const YamlNode* lookup(const YamlDocument& doc, const std::vector<std::string>& path) {
    if (!doc.root || !doc.root->isMapping()) return nullptr;
    const YamlNode* n = &*doc.root;
    for (const auto& p : path) {
        if (!n->isMapping()) return nullptr;
        n = n->find(p);
        if (n == nullptr) return nullptr;
    }
    return n;
}

}  // namespace

Result<std::string> applyConfigUpdates(std::string_view text, const std::vector<ConfigUpdate>& updates) {
    std::string current(text);
    for (const auto& u : updates) {
        auto next = applyOne(current, u);
        if (!next) return next.error();
        current = std::move(*next);
    }
    // Read the result back: every value must be exactly what was written.
    auto doc = parseYaml(current);
    if (!doc) return Error{"the updated config.yml would not parse (" + doc.error().message + "); not written"};
    for (const auto& u : updates) {
        const YamlNode* n = lookup(*doc, u.path);
        bool ok =
            u.kind == ConfigUpdate::Kind::Remove ? n == nullptr : (n != nullptr && n->isScalar() && n->text == u.value);
        if (!ok) return Error{"the updated config.yml would not hold " + joinPath(u.path) + " as written; not written"};
    }
    return current;
}

Status writeConfigUpdates(const std::string& path, const std::vector<ConfigUpdate>& updates, const Environment& env) {
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return sysError("cannot update " + path);
    if (S_ISLNK(st.st_mode))
        return Error{"cannot update " + path + ": it is a symbolic link; replace it with the file itself"};
    if (!S_ISREG(st.st_mode)) return Error{"cannot update " + path + ": not a regular file"};
    uid_t me = ::geteuid();
    if (me != 0 && st.st_uid != me) {
        return Error{"cannot update " + path + ": it is owned by uid " + std::to_string(st.st_uid) +
                     ", not by the service user (uid " + std::to_string(me) +
                     "); fix: chown the file to the service user (air-relaypro)"};
    }
    const std::string dir = dirName(path);
    if (::access(dir.c_str(), W_OK) != 0) {
        return Error{"cannot update " + path + ": its folder " + dir +
                     " is not writable by the service user; fix: make it group-writable for air-relaypro (mode 1775, "
                     "as the package does)"
                     " and, under systemd, list it in ReadWritePaths="};
    }
    auto text = readFile(path, kMaxYamlBytes);
    if (!text) return Error{"cannot update " + path + ": " + text.error().describe()};
    auto updated = applyConfigUpdates(*text, updates);
    if (!updated) return Error{"cannot update " + path + ": " + updated.error().message};
    // If the file was a valid configuration, the new one must be too.
    std::vector<std::string> ignored;
    if (parseConfig(ConfigSource{path, *text}, env, ignored).ok()) {
        auto check = parseConfig(ConfigSource{path, *updated}, env, ignored);
        if (!check)
            return Error{"cannot update " + path +
                         ": the result would not be a valid configuration: " + check.error().message};
    }
    removeStaleTemporaries(path);
    if (auto s = writeFileAtomic(path, *updated); !s)
        return Error{"cannot update " + path + ": " + s.error().describe()};
    return {};
}

std::string generateUuidV4() {
    unsigned char b[16];
    randombytes_buf(b, sizeof b);
    b[6] = static_cast<unsigned char>((b[6] & 0x0F) | 0x40);
    b[8] = static_cast<unsigned char>((b[8] & 0x3F) | 0x80);
    char out[37];
    std::snprintf(out, sizeof out, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                  b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
    return out;
}

}  // namespace relaypro
