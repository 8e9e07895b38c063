#include "worker/request_head.h"

#include <gtest/gtest.h>
#include <jansson.h>
#include <sodium.h>

#include <deque>
#include <map>
#include <set>

#include "test/support/test_files.h"

namespace relaypro {
namespace {

constexpr size_t kMax = 16384;

// The head's views point into the text, so the texts live as long as the test binary.
const std::string& keep(std::string text) {
    static std::deque<std::string> texts;
    return texts.emplace_back(std::move(text));
}

RequestHead parsed(const std::string& input) {
    const std::string& text = keep(input);
    RequestHead h;
    auto r = parseRequestHead(text, kMax, h);
    EXPECT_EQ(r.status, HeadStatus::Complete) << r.error.reason << " in " << text;
    return h;
}

HeadError rejected(const std::string& text, size_t max = kMax) {
    RequestHead h;
    auto r = parseRequestHead(text, max, h);
    EXPECT_EQ(r.status, HeadStatus::Invalid) << text;
    return r.error;
}

TEST(RequestHead, ConnectInAuthorityForm) {
    RequestHead h = parsed(
        "CONNECT console.example.com:443 HTTP/1.1\r\nHost: console.example.com:443\r\n"
        "Proxy-Authorization: Basic dTpw\r\nUser-Agent: curl/7.88.1\r\n\r\n");
    EXPECT_EQ(h.method, "CONNECT");
    EXPECT_EQ(h.form, TargetForm::Authority);
    EXPECT_EQ(h.host, "console.example.com");
    EXPECT_EQ(h.port, 443);
    EXPECT_EQ(h.proxyAuthorization, "Basic dTpw");
    EXPECT_EQ(h.fields.size(), 3u);
    EXPECT_EQ(h.field("user-agent"), "curl/7.88.1");
    EXPECT_TRUE(h.keepAlive());
}

TEST(RequestHead, Http10ConnectWithoutHostAsPythonSendsIt) {
    RequestHead h = parsed("CONNECT [::1]:4222 HTTP/1.0\r\n\r\n");
    EXPECT_EQ(h.minorVersion, 0);
    EXPECT_EQ(h.host, "::1");
    EXPECT_TRUE(h.hostIsIpv6);
    EXPECT_EQ(h.port, 4222);
    EXPECT_FALSE(h.keepAlive());
}

TEST(RequestHead, OriginAndAbsoluteForms) {
    RequestHead o = parsed("GET /relaypro/v1/health?x=1 HTTP/1.1\r\nHost: relay\r\nConnection: close\r\n\r\n");
    EXPECT_EQ(o.form, TargetForm::Origin);
    EXPECT_EQ(o.path, "/relaypro/v1/health?x=1");
    EXPECT_FALSE(o.keepAlive());
    RequestHead a =
        parsed("GET http://Console.example.com/api/app/check HTTP/1.1\r\nHost: console.example.com\r\n\r\n");
    EXPECT_EQ(a.form, TargetForm::Absolute);
    EXPECT_EQ(a.scheme, "http");
    EXPECT_EQ(a.host, "Console.example.com");
    EXPECT_FALSE(a.portGiven);
    EXPECT_EQ(a.path, "/api/app/check");
    RequestHead b = parsed("HEAD http://10.0.0.1:80 HTTP/1.0\r\n\r\n");
    EXPECT_EQ(b.path, "/");
    EXPECT_EQ(b.port, 80);
    RequestHead star = parsed("OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(star.form, TargetForm::Asterisk);
}

TEST(RequestHead, BodiesAndKeepAlive) {
    RequestHead post = parsed("POST /relaypro/v1/token HTTP/1.1\r\nHost: r\r\nContent-Length: 42\r\n\r\n{...");
    EXPECT_EQ(post.contentLength, 42u);
    EXPECT_TRUE(post.hasBody());
    EXPECT_EQ(post.headLength,
              std::string("POST /relaypro/v1/token HTTP/1.1\r\nHost: r\r\nContent-Length: 42\r\n\r\n").size());
    RequestHead chunked = parsed("POST / HTTP/1.1\r\nHost: r\r\nTransfer-Encoding: Chunked\r\n\r\n");
    EXPECT_TRUE(chunked.chunked);
    RequestHead ka = parsed("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n");
    EXPECT_TRUE(ka.keepAlive());
    RequestHead leading = parsed("\r\n\r\nGET / HTTP/1.1\r\nHost: r\r\n\r\n");
    EXPECT_EQ(leading.method, "GET");
    RequestHead ows = parsed("GET / HTTP/1.1\r\nHost:\t r \t\r\nX-Empty:\r\n\r\n");
    EXPECT_EQ(ows.hostHeader, "r");
    EXPECT_EQ(ows.field("x-empty"), "");
}

TEST(RequestHead, IncompleteUntilTheEmptyLine) {
    RequestHead h;
    for (std::string partial : {"", "CONNECT", "CONNECT a:1 HTTP/1.1\r", "CONNECT a:1 HTTP/1.1\r\n",
                                "CONNECT a:1 HTTP/1.1\r\nHost: a\r\n\r"}) {
        EXPECT_EQ(parseRequestHead(partial, kMax, h).status, HeadStatus::Incomplete) << partial;
    }
}

TEST(RequestHead, ScanningResumesWhereItStopped) {
    const std::string full = "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\nTLS";
    RequestHead h;
    size_t scanned = 0;
    HeadResult r;
    for (size_t n = 1; n <= full.size(); ++n) {
        r = parseRequestHead(std::string_view(full).substr(0, n), kMax, h, scanned);
        if (r.status != HeadStatus::Incomplete) break;
        EXPECT_LE(scanned, n);
    }
    ASSERT_EQ(r.status, HeadStatus::Complete);
    EXPECT_EQ(h.headLength, full.size() - 3);
    EXPECT_EQ(h.port, 443);
}

TEST(RequestHead, EveryRejectionOfTheErrorTable) {
    struct Case {
        std::string text;
        int status;
        std::string_view reason;
    } cases[] = {
        {"CONNECT a HTTP/1.1\r\n\r\n", 400, "authority without port"},
        {"CONNECT user:pw@a:443 HTTP/1.1\r\n\r\n", 400, "userinfo in authority"},
        {"CONNECT a:443@evil:443 HTTP/1.1\r\n\r\n", 400, "userinfo in authority"},
        {"GET http://u@a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "userinfo in authority"},
        {"CONNECT a%2eb:443 HTTP/1.1\r\n\r\n", 400, "malformed authority"},
        {"CONNECT [fe80::1%25eth0]:443 HTTP/1.1\r\n\r\n", 400, "malformed authority"},
        {"CONNECT a:0 HTTP/1.1\r\n\r\n", 400, "malformed authority"},
        {"CONNECT a:65536 HTTP/1.1\r\n\r\n", 400, "malformed authority"},
        {"CONNECT a:0443 HTTP/1.1\r\n\r\n", 400, "malformed authority"},  // strict authority: no leading zero
        {"CONNECT a:00443 HTTP/1.1\r\n\r\n", 400, "malformed authority"},
        {"CONNECT [::1]:080 HTTP/1.1\r\n\r\n", 400, "malformed authority"},
        {"GET http://a:080/ HTTP/1.1\r\nHost: a:080\r\n\r\n", 400, "malformed authority"},
        {"GET / HTTP/1.1\r\nHost: a:0443\r\n\r\n", 400, "malformed Host"},
        {"CONNECT a:443:443 HTTP/1.1\r\n\r\n", 400, "malformed authority"},
        {"CONNECT /path HTTP/1.1\r\n\r\n", 400, "malformed authority"},
        {"GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF"},
        {"GET / HTTP/1.1\r\nHost: a\n\n", 400, "bare LF"},
        {"GET / HTTP/1.1\rHost: a\r\n\r\n", 400, "bare CR"},
        {"GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", 400, "bare CR"},
        {std::string("GET / HTTP/1.1\r\nHost: a\0\r\n\r\n", 28), 400, "NUL byte"},
        {"GET / HTTP/1.1\r\nX: a\x01\r\n\r\n", 400, "control character"},
        {"GET / HTTP/1.1\r\nX: a\x7f\r\n\r\n", 400, "control character"},
        {"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n", 400, "obsolete line folding"},
        {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "whitespace before colon"},
        {"GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, "whitespace before colon"},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "duplicate Host"},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400,
         "both Content-Length and Transfer-Encoding"},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400,
         "duplicate Content-Length"},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n", 400,
         "duplicate Content-Length"},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, "malformed Content-Length"},
        {"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\n", 400, "malformed Content-Length"},
        {"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400, "unsupported Transfer-Encoding"},
        {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "Transfer-Encoding in HTTP/1.0"},
        {"CONNECT a:443 HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 400, "CONNECT with a body"},
        {"CONNECT a:443 HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "CONNECT with a body"},
        {"CONNECT a:443 HTTP/1.1\r\nProxy-Authorization: Basic x\r\nProxy-Authorization: Basic y\r\n\r\n", 400,
         "duplicate Proxy-Authorization"},
        {"GET / HTTP/1.1\r\n\r\n", 400, "HTTP/1.1 request without Host"},
        {"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request line"},
        {"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "malformed HTTP version"},
        {"GET / http/1.1\r\nHost: a\r\n\r\n", 400, "malformed HTTP version"},
        {"GET / HTTP/1.1\r\n: x\r\nHost: a\r\n\r\n", 400, "empty header field name"},
        {"GET / HTTP/1.1\r\nNoColon\r\nHost: a\r\n\r\n", 400, "header field without colon"},
        {"G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "invalid method"},
        {"GET /a#frag HTTP/1.1\r\nHost: a\r\n\r\n", 400, "fragment in request target"},
        {"GET ftp://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "unsupported scheme"},
        {"GET relative HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request target"},
        {"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "malformed Host"},
        {"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "malformed Host"},
        {"GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "HTTP version other than 1.0 or 1.1"},
        {"GET / HTTP/0.9\r\n\r\n", 505, "HTTP version other than 1.0 or 1.1"},
        {"GET / HTTP/1.2\r\n\r\n", 505, "HTTP version other than 1.0 or 1.1"},
        {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400, "control character"},  // a TLS ClientHello, early
    };
    for (const auto& c : cases) {
        HeadError e = rejected(c.text);
        EXPECT_EQ(e.status, c.status) << c.text;
        EXPECT_EQ(e.reason, c.reason) << c.text;
        EXPECT_EQ(e.code, c.status == 505 ? "version_not_supported" : "bad_request") << c.text;
    }
}

TEST(RequestHead, SizeLimitsGive431) {
    std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(2000, 'x') + "\r\n\r\n";
    HeadError e = rejected(big, 1024);
    EXPECT_EQ(e.status, 431);
    EXPECT_EQ(e.code, "header_too_large");
    // Reached before the head completes too.
    EXPECT_EQ(rejected("GET / HTTP/1.1\r\nX: " + std::string(2000, 'x'), 1024).status, 431);
    std::string exactly = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    RequestHead h;
    EXPECT_EQ(parseRequestHead(exactly, exactly.size(), h).status, HeadStatus::Complete);
    EXPECT_EQ(parseRequestHead(exactly, exactly.size() - 1, h).status, HeadStatus::Invalid);
    std::string many = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 100; ++i) many += "X" + std::to_string(i) + ": v\r\n";
    EXPECT_EQ(rejected(many + "\r\n").status, 431);
    std::string hundred = "GET / HTTP/1.1\r\nHost: a\r\n";
    for (int i = 0; i < 99; ++i) hundred += "X" + std::to_string(i) + ": v\r\n";
    EXPECT_EQ(parseRequestHead(hundred + "\r\n", kMax, h).status, HeadStatus::Complete);
}

// The llhttp request cases that apply to a proxy's request head. llhttp's strict mode is the
// reference: a head it rejects, RelayPro rejects too; a head it accepts, RelayPro accepts unless
// one of the proxy's stricter rules (listed, each with its reason) refuses it.
TEST(RequestHead, AgreesWithLlhttpRequestCases) {
    json_error_t err;
    std::string path = std::string(RELAYPRO_SOURCE_DIR) + "/test/data/http/llhttp-request-cases.json";
    json_t* root = json_load_file(path.c_str(), 0, &err);
    ASSERT_NE(root, nullptr) << err.text;
    const std::set<std::string_view> stricterRules{
        "HTTP/1.1 request without Host",  // RFC 9112 §3.2: a server MUST answer 400
        "unsupported Transfer-Encoding",  // only "chunked": a proxy of small requests needs no other coding
        "duplicate Content-Length",       // even equal values: no list forms
        "duplicate Transfer-Encoding",
        "both Content-Length and Transfer-Encoding",  // request smuggling
        "Transfer-Encoding in HTTP/1.0",
        "malformed request target",  // only origin-, authority-, absolute- and asterisk-form
        "fragment in request target",
        "unsupported scheme",
        "malformed Host",
        "invalid byte in request target",  // no raw bytes >= 0x80 in targets
        "malformed authority",
        "control character",       // llhttp tolerates some in values in its lenient flags only
        "malformed HTTP version",  // HTTP/1.x only: llhttp also speaks RTSP/1.0 and ICE/1.0
        "malformed request line",  // no HTTP/0.9 ("GET /" without a version)
        "userinfo in authority",   // protocol.md: a 400
    };
    int compared = 0, agreedAccept = 0, agreedReject = 0;
    std::map<std::string, int> stricter;
    size_t i = 0;
    json_t* c = nullptr;
    json_array_foreach(root, i, c) {
        std::string type = json_string_value(json_object_get(json_object_get(c, "meta"), "type"));
        if (type != "request") continue;  // lenient-mode cases describe tolerances we do not have
        std::string b64 = json_string_value(json_object_get(c, "raw_b64"));
        std::string raw(b64.size(), '\0');
        size_t rawLen = 0;
        ASSERT_EQ(sodium_base642bin(reinterpret_cast<unsigned char*>(raw.data()), raw.size(), b64.data(), b64.size(),
                                    nullptr, &rawLen, nullptr, sodium_base64_VARIANT_ORIGINAL),
                  0);
        raw.resize(rawLen);
        json_t* code = json_object_get(c, "error_code");
        std::string log = json_string_value(json_object_get(c, "expected_log"));
        bool llhttpHeadError = json_is_integer(code) && log.find("headers complete") == std::string::npos;
        long long errorCode = json_is_integer(code) ? json_integer_value(code) : 0;
        // Errors that are not about the head's syntax: unknown methods or methods of other
        // protocols (any token is a method here; the router answers 404/405), pauses on
        // upgrade/CONNECT, a connection closed by the peer.
        json_t* reasonJson = json_object_get(c, "error_reason");
        std::string reason = json_is_string(reasonJson) ? json_string_value(reasonJson) : "";
        if (llhttpHeadError && (errorCode == 6 || errorCode == 22 || errorCode == 23 || errorCode == 5 ||
                                reason.find("method for") != std::string::npos)) {
            continue;
        }
        if (json_is_integer(code) && !llhttpHeadError) continue;  // the error is in the body

        RequestHead h;
        auto r = parseRequestHead(raw, kMax, h);
        if (r.status == HeadStatus::Incomplete) {
            std::string closed = raw + "\r\n\r\n";
            r = parseRequestHead(closed, kMax, h);
            if (r.status == HeadStatus::Incomplete) continue;
        }
        // Most llhttp samples are HTTP/1.1 without Host, which RelayPro refuses (RFC 9112
        // §3.2). Give them one so the rest of the head is still compared.
        if (r.status == HeadStatus::Invalid && r.error.reason == "HTTP/1.1 request without Host") {
            ++stricter[std::string(r.error.reason)];
            size_t start = 0;
            while (raw.compare(start, 2, "\r\n") == 0) start += 2;  // empty lines before the request line
            size_t eol = raw.find("\r\n", start);
            raw.insert(eol + 2, "Host: h\r\n");
            r = parseRequestHead(raw, kMax, h);
            if (r.status == HeadStatus::Incomplete) r = parseRequestHead(raw + "\r\n\r\n", kMax, h);
        }
        ++compared;
        std::string name = json_string_value(json_object_get(c, "name"));
        if (llhttpHeadError) {
            EXPECT_EQ(r.status, HeadStatus::Invalid) << "llhttp rejects, RelayPro accepts: " << name << ": " << raw;
            agreedReject += r.status == HeadStatus::Invalid ? 1 : 0;
        } else if (r.status == HeadStatus::Complete) {
            ++agreedAccept;
        } else {
            EXPECT_TRUE(stricterRules.contains(r.error.reason))
                << "RelayPro rejects what llhttp accepts, for an unlisted reason \"" << r.error.reason << "\": " << name
                << ": " << raw;
            ++stricter[std::string(r.error.reason)];
        }
    }
    json_decref(root);
    EXPECT_GE(compared, 60);
    std::string summary;
    for (const auto& [reason, n] : stricter) summary += "\n  stricter (" + reason + "): " + std::to_string(n);
    std::printf("llhttp cases compared: %d, both accept: %d, both reject: %d%s\n", compared, agreedAccept, agreedReject,
                summary.c_str());
}

}  // namespace
}  // namespace relaypro
