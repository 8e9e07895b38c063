#include "common/yaml_doc.h"

#include <gtest/gtest.h>

namespace relaypro {
namespace {

TEST(YamlDoc, RecordsPositionsOfKeysAndValues) {
    auto doc = parseYaml("a: 1\nsection:\n  key: \"v\"  # comment\nlist: [x, y]\n");
    ASSERT_TRUE(doc.ok()) << doc.error().message;
    const YamlNode& root = *doc->root;
    ASSERT_TRUE(root.isMapping());
    ASSERT_EQ(root.entries.size(), 3u);
    const auto& [k, v] = root.entries[1].value.entries[0];
    EXPECT_EQ(k.text, "key");
    EXPECT_EQ(k.start.line, 3u);
    EXPECT_EQ(k.start.column, 3u);
    EXPECT_EQ(v.text, "v");
    EXPECT_EQ(v.style, YamlStyle::DoubleQuoted);
    EXPECT_EQ(v.start.column, 8u);
    EXPECT_EQ(root.find("list")->items.size(), 2u);
    EXPECT_EQ(root.find("missing"), nullptr);
}

TEST(YamlDoc, OffsetsAreBytesEvenAfterMultiByteCharacters) {
    const std::string text =
        "\xEF\xBB\xBF# caf\xC3\xA9 \xE2\x80\x94 \xF0\x9F\x98\x80\nk: \"\xC3\xA9t\xC3\xA9\"\nnext: 1\n";
    auto doc = parseYaml(text);
    ASSERT_TRUE(doc.ok()) << doc.error().message;
    const YamlNode* k = doc->root->find("k");
    const YamlNode* next = doc->root->find("next");
    ASSERT_NE(k, nullptr);
    EXPECT_EQ(text.substr(k->start.offset, k->end.offset - k->start.offset), "\"\xC3\xA9t\xC3\xA9\"");
    EXPECT_EQ(text.substr(next->start.offset, 1), "1");
    EXPECT_EQ(doc->root->entries[1].key.start.line, 3u);
}

TEST(YamlDoc, EmptyAndCommentOnlyFilesHaveNoRoot) {
    for (const char* text : {"", "# only a comment\n", "\n\n"}) {
        auto doc = parseYaml(text);
        ASSERT_TRUE(doc.ok()) << text;
        EXPECT_FALSE(doc->root.has_value());
    }
}

TEST(YamlDoc, NullForms) {
    auto doc = parseYaml("a:\nb: ~\nc: null\nd: \"\"\ne: 'null'\n");
    ASSERT_TRUE(doc.ok());
    EXPECT_TRUE(doc->root->find("a")->isNull());
    EXPECT_TRUE(doc->root->find("b")->isNull());
    EXPECT_TRUE(doc->root->find("c")->isNull());
    EXPECT_FALSE(doc->root->find("d")->isNull());  // a quoted empty string is a string
    EXPECT_FALSE(doc->root->find("e")->isNull());
}

TEST(YamlDoc, RejectsWhatTheConfigDoesNotUse) {
    struct Case {
        const char* text;
        const char* message;
    } cases[] = {
        {"a: 1\na: 2\n", "2:1: a: duplicate key (first at line 1)"},
        {"a: &x 1\nb: *x\n", "2:4: syntax: aliases"},
        {"a: !!str 1\n", "1:4: syntax: explicit tags"},
        {"a: 1\n---\nb: 2\n", "syntax: only one YAML document"},
        {"a: [1\n", "syntax:"},
        {"a: b: c\n", "1:5: syntax:"},
        {"a: \"unterminated\n", "syntax:"},
        {"a: 1\n\0b: 2\n", "2:1: syntax: NUL byte"},
        {"a: \xff\xfe\n", "syntax:"},
        {"? [a, b]\n: 1\n", "mapping keys must be plain names"},
    };
    for (const auto& c : cases) {
        std::string text = c.text;
        if (std::string(c.message).find("NUL") != std::string::npos) text = std::string("a: 1\n\0b: 2\n", 11);
        auto doc = parseYaml(text);
        ASSERT_FALSE(doc.ok()) << c.text;
        EXPECT_NE(doc.error().message.find(c.message), std::string::npos) << c.text << " -> " << doc.error().message;
    }
}

TEST(YamlDoc, BoundsDepthAndSize) {
    std::string deep;
    for (int i = 0; i < 100; ++i) deep += "[";
    auto doc = parseYaml(deep);
    ASSERT_FALSE(doc.ok());
    std::string big(kMaxYamlBytes + 1, '#');
    auto large = parseYaml(big);
    ASSERT_FALSE(large.ok());
    EXPECT_NE(large.error().message.find("larger than"), std::string::npos);
}

}  // namespace
}  // namespace relaypro
