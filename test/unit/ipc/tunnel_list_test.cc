#include "ipc/tunnel_list.h"

#include <gtest/gtest.h>

namespace relaypro::ipc {
namespace {

TunnelRow row(std::string identity = "resp-A", TunnelRow::Auth auth = TunnelRow::Auth::Bearer) {
    TunnelRow r;
    r.auth = auth;
    r.identity = std::move(identity);
    r.source = "203.0.113.7:50112";
    r.targetPort = 443;
    r.ageMs = 5231000;
    r.bytesUp = 1024;
    r.bytesDown = 1ULL << 40;
    return r;
}

std::string encoded(const TunnelList& m) {
    Writer w;
    m.encode(w);
    return w.take();
}

bool decodes(const std::string& body) {
    TunnelList m;
    return decodeBody(body, m);
}

TEST(TunnelList, RequestAndChunkRoundTrip) {
    TunnelListRequest q{7, 42, 1000};
    Writer w;
    q.encode(w);
    TunnelListRequest back;
    ASSERT_TRUE(decodeBody(w.data(), back));
    EXPECT_EQ(back.requestId, 7U);
    EXPECT_EQ(back.after, 42U);
    EXPECT_EQ(back.maxRows, 1000U);
    EXPECT_FALSE(decodeBody(w.data() + "x", back));

    TunnelList m{9, 42, 57, false, {row(), row("alice", TunnelRow::Auth::Basic), row("", TunnelRow::Auth::None)}};
    std::string body = encoded(m);
    EXPECT_EQ(body.size(),
              TunnelList::kFixedBytes + m.rows[0].encodedSize() + m.rows[1].encodedSize() + m.rows[2].encodedSize());
    TunnelList out;
    ASSERT_TRUE(decodeBody(body, out));
    EXPECT_EQ(encoded(out), body);
    ASSERT_EQ(out.rows.size(), 3U);
    EXPECT_EQ(out.rows[1].identity, "alice");
    EXPECT_EQ(out.rows[0].bytesDown, 1ULL << 40);
    EXPECT_FALSE(decodes(body.substr(0, body.size() - 1)));
    EXPECT_FALSE(decodes(body + "x"));
}

TEST(TunnelList, MalformedChunksAreRefused) {
    auto with = [](TunnelRow r, bool done = true, uint64_t next = 0) {
        return encoded(TunnelList{1, 0, next, done, {std::move(r)}});
    };
    EXPECT_TRUE(decodes(with(row())));
    TunnelRow r = row();
    r.identity = "resp\x1b[2J";  // a terminal escape
    EXPECT_FALSE(decodes(with(r)));
    r = row("\xff\xfe");  // not UTF-8
    EXPECT_FALSE(decodes(with(r)));
    r = row(std::string(257, 'a'));
    EXPECT_FALSE(decodes(with(r)));
    r = row("");  // Bearer without an identity
    EXPECT_FALSE(decodes(with(r)));
    r = row("someone", TunnelRow::Auth::None);  // an identity without authentication
    EXPECT_FALSE(decodes(with(r)));
    r = row();
    r.source = "";
    EXPECT_FALSE(decodes(with(r)));
    r.source = "1.2.3.4:5 \n";
    EXPECT_FALSE(decodes(with(r)));
    r = row();
    r.targetPort = 0;
    EXPECT_FALSE(decodes(with(r)));
    r = row();
    r.ageMs = TunnelRow::kMaxAgeMs;
    EXPECT_FALSE(decodes(with(r)));
    std::string badAuth = with(row());
    badAuth[TunnelList::kFixedBytes] = 3;
    EXPECT_FALSE(decodes(badAuth));
    // A chunk that is not the last must move on.
    EXPECT_FALSE(decodes(encoded(TunnelList{1, 10, 10, false, {}})));
    EXPECT_TRUE(decodes(encoded(TunnelList{1, 10, 11, false, {}})));
    // More rows than a chunk may have, refused before they are read.
    std::string many = encoded(TunnelList{1, 0, 0, true, {}});
    many[TunnelList::kFixedBytes - 4] = static_cast<char>(0xE9);  // 1001
    many[TunnelList::kFixedBytes - 3] = 0x03;
    EXPECT_FALSE(decodes(many));
    TunnelListRequest q;
    Writer zero;
    TunnelListRequest{1, 0, 0}.encode(zero);
    EXPECT_FALSE(decodeBody(zero.data(), q));
    Writer over;
    TunnelListRequest{1, 0, 1001}.encode(over);
    EXPECT_FALSE(decodeBody(over.data(), q));
}

TEST(TunnelList, ABasicUserIsEscapedForTheWire) {
    EXPECT_EQ(wireIdentity("alice"), "alice");
    EXPECT_EQ(wireIdentity("ünïcode"), "ünïcode");
    EXPECT_EQ(wireIdentity("a\x1b[31mb"), "a\\x1b[31mb");
    EXPECT_EQ(wireIdentity("a\\b"), "a\\x5cb");
    EXPECT_EQ(wireIdentity("\xc2\x9b"), "\\xc2\\x9b");  // a C1 control (CSI)
    EXPECT_EQ(wireIdentity("\xff"), "\\xff");
    std::string longName(300, 'x');
    EXPECT_EQ(wireIdentity(longName).size(), TunnelRow::kMaxIdentityBytes);
    std::string escapes(100, '\x01');
    std::string cut = wireIdentity(escapes);
    EXPECT_LE(cut.size(), TunnelRow::kMaxIdentityBytes);
    EXPECT_EQ(cut.size() % 4, 0U);  // whole escapes only
    // Whatever it makes, the wire takes.
    for (std::string user : {std::string("a\x1b"), longName, escapes, std::string("\xc3")}) {
        TunnelRow r = row(wireIdentity(user), TunnelRow::Auth::Basic);
        EXPECT_TRUE(decodes(encoded(TunnelList{1, 0, 0, true, {r}}))) << user;
    }
}

}  // namespace
}  // namespace relaypro::ipc
