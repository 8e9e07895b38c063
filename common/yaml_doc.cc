#include "common/yaml_doc.h"

#include <yaml.h>

#include <memory>

namespace relaypro {
namespace {

constexpr int kMaxDepth = 32;

// Line and column of a byte offset (libyaml's reader errors only give an offset).
YamlMark markAt(std::string_view text, size_t offset) {
    YamlMark m;
    m.offset = offset;
    for (size_t i = 0; i < offset && i < text.size(); ++i) {
        if (text[i] == '\n') {
            ++m.line;
            m.column = 1;
        } else {
            ++m.column;
        }
    }
    return m;
}

std::string at(const YamlMark& m, std::string_view message) {
    return std::to_string(m.line) + ":" + std::to_string(m.column) + ": " + std::string(message);
}

struct ParserDeleter {
    void operator()(yaml_parser_t* p) const {
        yaml_parser_delete(p);
        delete p;
    }
};

class Builder {
public:
    explicit Builder(std::string_view text) : text_(text), parser_(new yaml_parser_t) {
        indexCharacters();
        ok_ = yaml_parser_initialize(parser_.get()) == 1;
        if (ok_) {
            yaml_parser_set_input_string(parser_.get(), reinterpret_cast<const unsigned char*>(text.data()),
                                         text.size());
            yaml_parser_set_encoding(parser_.get(), YAML_UTF8_ENCODING);
        }
    }

    Result<YamlDocument> build() {
        if (!ok_) return Error{"1:1: cannot initialise the YAML parser"};
        YamlDocument doc;
        Event ev;
        if (auto s = next(ev, YAML_STREAM_START_EVENT); !s) return s.error();
        if (auto s = next(ev); !s) return s.error();
        if (ev.e.type == YAML_STREAM_END_EVENT) {
            doc.end = toMark(ev.e.start_mark);
            return doc;
        }
        if (ev.e.type != YAML_DOCUMENT_START_EVENT) return Error{at(toMark(ev.e.start_mark), "expected a document")};
        auto root = node(0);
        if (!root) return root.error();
        doc.root = std::move(root.value());
        if (auto s = next(ev, YAML_DOCUMENT_END_EVENT); !s) return s.error();
        if (auto s = next(ev); !s) return s.error();
        if (ev.e.type != YAML_STREAM_END_EVENT) {
            return Error{at(toMark(ev.e.start_mark), "syntax: only one YAML document is allowed")};
        }
        doc.end = toMark(ev.e.start_mark);
        return doc;
    }

private:
    // libyaml counts marks in characters; the writer needs byte offsets. Plain ASCII needs no
    // table; otherwise remember where each character starts (a BOM counts as one).
    void indexCharacters() {
        bool ascii = true;
        for (char c : text_) ascii = ascii && static_cast<unsigned char>(c) < 0x80;
        if (ascii) return;
        for (size_t i = 0; i < text_.size(); ++i) {
            if ((static_cast<unsigned char>(text_[i]) & 0xC0) != 0x80) charStarts_.push_back(i);
        }
        charStarts_.push_back(text_.size());
    }

    YamlMark toMark(const yaml_mark_t& m) const {
        size_t offset = m.index;
        if (!charStarts_.empty()) offset = m.index < charStarts_.size() ? charStarts_[m.index] : text_.size();
        return YamlMark{offset, m.line + 1, m.column + 1};
    }

    struct Event {
        yaml_event_t e{};
        bool live = false;
        Event() = default;
        Event(const Event&) = delete;
        Event& operator=(const Event&) = delete;
        ~Event() { reset(); }
        void reset() {
            if (live) yaml_event_delete(&e);
            live = false;
        }
    };

    Status next(Event& ev, std::optional<yaml_event_type_t> expected = std::nullopt) {
        ev.reset();
        if (yaml_parser_parse(parser_.get(), &ev.e) != 1) return parserError();
        ev.live = true;
        if (expected && ev.e.type != *expected) return Error{at(toMark(ev.e.start_mark), "syntax: unexpected content")};
        return {};
    }

    Error parserError() const {
        const yaml_parser_t& p = *parser_;
        std::string problem = p.problem != nullptr ? p.problem : "malformed YAML";
        YamlMark m = p.error == YAML_READER_ERROR ? markAt(text_, p.problem_offset) : toMark(p.problem_mark);
        if (p.error == YAML_READER_ERROR) problem += " (the file must be UTF-8)";
        if (p.context != nullptr) problem = std::string(p.context) + ": " + problem;
        return Error{at(m, "syntax: " + problem)};
    }

    // Reads one node (the next event starts it).
    Result<YamlNode> node(int depth) {
        Event ev;
        if (auto s = next(ev); !s) return s.error();
        return nodeFrom(ev, depth);
    }

    static YamlStyle scalarStyle(yaml_scalar_style_t style) {
        switch (style) {
            case YAML_SINGLE_QUOTED_SCALAR_STYLE:
                return YamlStyle::SingleQuoted;
            case YAML_DOUBLE_QUOTED_SCALAR_STYLE:
                return YamlStyle::DoubleQuoted;
            case YAML_LITERAL_SCALAR_STYLE:
                return YamlStyle::Literal;
            case YAML_FOLDED_SCALAR_STYLE:
                return YamlStyle::Folded;
            default:
                return YamlStyle::Plain;
        }
    }

    Result<YamlNode> nodeFrom(Event& ev, int depth) {
        const yaml_event_t& e = ev.e;
        YamlNode n;
        n.start = toMark(e.start_mark);
        n.end = toMark(e.end_mark);
        if (depth > kMaxDepth) return Error{at(n.start, "syntax: nesting is too deep")};
        switch (e.type) {
            case YAML_ALIAS_EVENT:
                return Error{at(n.start, "syntax: aliases (*name) are not supported in this file")};
            case YAML_SCALAR_EVENT: {
                if (e.data.scalar.tag != nullptr && e.data.scalar.plain_implicit == 0 &&
                    e.data.scalar.quoted_implicit == 0) {
                    return Error{at(n.start, "syntax: explicit tags (!!type) are not supported in this file")};
                }
                n.kind = YamlNode::Kind::Scalar;
                n.text.assign(reinterpret_cast<const char*>(e.data.scalar.value), e.data.scalar.length);
                n.style = scalarStyle(e.data.scalar.style);
                return n;
            }
            case YAML_SEQUENCE_START_EVENT: {
                if (e.data.sequence_start.tag != nullptr && e.data.sequence_start.implicit == 0) {
                    return Error{at(n.start, "syntax: explicit tags (!!type) are not supported in this file")};
                }
                n.kind = YamlNode::Kind::Sequence;
                n.style = e.data.sequence_start.style == YAML_FLOW_SEQUENCE_STYLE ? YamlStyle::Flow : YamlStyle::Block;
                while (true) {
                    Event child;
                    if (auto s = next(child); !s) return s.error();
                    if (child.e.type == YAML_SEQUENCE_END_EVENT) {
                        n.end = toMark(child.e.end_mark);
                        return n;
                    }
                    auto item = nodeFrom(child, depth + 1);
                    if (!item) return item.error();
                    n.items.push_back(std::move(item.value()));
                }
            }
            case YAML_MAPPING_START_EVENT: {
                if (e.data.mapping_start.tag != nullptr && e.data.mapping_start.implicit == 0) {
                    return Error{at(n.start, "syntax: explicit tags (!!type) are not supported in this file")};
                }
                n.kind = YamlNode::Kind::Mapping;
                n.style = e.data.mapping_start.style == YAML_FLOW_MAPPING_STYLE ? YamlStyle::Flow : YamlStyle::Block;
                while (true) {
                    Event keyEv;
                    if (auto s = next(keyEv); !s) return s.error();
                    if (keyEv.e.type == YAML_MAPPING_END_EVENT) {
                        n.end = toMark(keyEv.e.end_mark);
                        return n;
                    }
                    auto key = nodeFrom(keyEv, depth + 1);
                    if (!key) return key.error();
                    if (!key->isScalar()) return Error{at(key->start, "syntax: mapping keys must be plain names")};
                    for (const auto& [k, v] : n.entries) {
                        if (k.text == key->text) {
                            return Error{at(key->start, key->text + ": duplicate key (first at line " +
                                                            std::to_string(k.start.line) + ")")};
                        }
                    }
                    auto value = node(depth + 1);
                    if (!value) return value.error();
                    n.entries.push_back(YamlEntry{std::move(key.value()), std::move(value.value())});
                }
            }
            default:
                return Error{at(n.start, "syntax: unexpected content")};
        }
    }

    std::string_view text_;
    std::vector<size_t> charStarts_;  // byte offset of each character; empty for ASCII text
    std::unique_ptr<yaml_parser_t, ParserDeleter> parser_;
    bool ok_ = false;
};

}  // namespace

bool YamlNode::isNull() const {
    return kind == Kind::Scalar && style == YamlStyle::Plain &&
           (text.empty() || text == "~" || text == "null" || text == "Null" || text == "NULL");
}

const YamlNode* YamlNode::find(std::string_view key) const {
    for (const auto& [k, v] : entries) {
        if (k.text == key) return &v;
    }
    return nullptr;
}

Result<YamlDocument> parseYaml(std::string_view text) {
    if (text.size() > kMaxYamlBytes) {
        return Error{"1:1: file is larger than " + std::to_string(kMaxYamlBytes) + " bytes"};
    }
    if (text.find('\0') != std::string_view::npos) {
        YamlMark m = markAt(text, text.find('\0'));
        return Error{at(m, "syntax: NUL byte in file")};
    }
    Builder b(text);
    return b.build();
}

}  // namespace relaypro
