#include "common/proxy_env.h"

#include <gtest/gtest.h>

namespace relaypro {
namespace {

TEST(ProxyUrl, ParsesSchemesCredentialsAndDefaultPorts) {
    auto a = parseProxyUrl("http://proxy.example:3128");
    ASSERT_TRUE(a.ok()) << a.error().message;
    EXPECT_FALSE(a->tls);
    EXPECT_EQ(a->host, "proxy.example");
    EXPECT_EQ(a->port, 3128);
    EXPECT_FALSE(a->hasCredentials());

    auto b = parseProxyUrl("HTTPS://us%40er:p%3Ass@[::1]/");
    ASSERT_TRUE(b.ok()) << b.error().message;
    EXPECT_TRUE(b->tls);
    EXPECT_EQ(b->host, "::1");
    EXPECT_EQ(b->port, 443);
    EXPECT_EQ(b->user, "us@er");
    EXPECT_EQ(b->password, "p:ss");
    EXPECT_EQ(b->redacted(), "https://us@er:<redacted>@[::1]:443");

    EXPECT_EQ(parseProxyUrl("http://10.0.0.1")->port, 80);
    EXPECT_EQ(parseProxyUrl("http://u@h:8080")->user, "u");
}

TEST(ProxyUrl, RejectsWhatItCannotUse) {
    for (const char* bad : {"proxy:3128", "socks5://proxy:1080", "http://", "http://proxy:0", "http://proxy:99999",
                            "http://proxy:", "http://proxy/path", "http://proxy?x", "http://pro xy", "http://u:%zz@h",
                            "http://[::1", "http://[::1]x", "http://::1:80", "http://[1.2.3.4]:80"}) {
        EXPECT_FALSE(parseProxyUrl(bad).ok()) << bad;
    }
}

TEST(NoProxy, MatchesNamesSuffixesAddressesAndNetworks) {
    auto np = NoProxy::parse(" localhost, .internal.example ,*.corp, 10.0.0.0/8, 192.0.2.7 ::1 [2001:db8::]/32");
    ASSERT_TRUE(np.ok()) << np.error().message;
    EXPECT_TRUE(np->bypasses("localhost"));
    EXPECT_TRUE(np->bypasses("LOCALHOST."));
    EXPECT_TRUE(np->bypasses("a.internal.example"));
    EXPECT_TRUE(np->bypasses("internal.example"));
    EXPECT_TRUE(np->bypasses("x.y.corp"));
    EXPECT_FALSE(np->bypasses("notinternal.example"));
    EXPECT_FALSE(np->bypasses("corp.evil"));
    EXPECT_TRUE(np->bypasses("10.1.2.3"));
    EXPECT_FALSE(np->bypasses("11.1.2.3"));
    EXPECT_TRUE(np->bypasses("192.0.2.7"));
    EXPECT_FALSE(np->bypasses("192.0.2.8"));
    EXPECT_TRUE(np->bypasses("::1"));
    EXPECT_TRUE(np->bypasses("2001:db8::5"));
    EXPECT_FALSE(np->bypasses("console.example.com"));
    EXPECT_TRUE(NoProxy::parse("*")->bypasses("anything"));
    EXPECT_FALSE(NoProxy::parse("")->bypasses("anything"));
    EXPECT_FALSE(NoProxy::parse("10.0.0.1/8").ok());
    EXPECT_FALSE(NoProxy::parse("bad_host!").ok());
}

TEST(ProxySettings, LowerCaseWinsAndErrorsNameTheVariable) {
    Environment env(EnvVars{{"https_proxy", "http://lower:1"},
                            {"HTTPS_PROXY", "http://upper:2"},
                            {"HTTP_PROXY", "http://plain:3"},
                            {"NO_PROXY", "internal"}});
    auto p = proxySettingsFrom(env);
    ASSERT_TRUE(p.ok()) << p.error().message;
    EXPECT_EQ(p->https->host, "lower");
    EXPECT_EQ(p->http->host, "plain");
    EXPECT_TRUE(p->noProxy.bypasses("internal"));

    Environment bad(EnvVars{{"HTTPS_PROXY", "socks5://x:1"}});
    auto e = proxySettingsFrom(bad);
    ASSERT_FALSE(e.ok());
    EXPECT_EQ(e.error().message.rfind("HTTPS_PROXY: proxy URL has scheme", 0), 0u) << e.error().message;

    Environment none;
    auto n = proxySettingsFrom(none);
    ASSERT_TRUE(n.ok());
    EXPECT_FALSE(n->https.has_value());
    EXPECT_FALSE(n->http.has_value());
}

}  // namespace
}  // namespace relaypro
