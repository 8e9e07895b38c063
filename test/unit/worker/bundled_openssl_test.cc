// RelayPro's patches on the bundled OpenSSL (packaging/patches/openssl-*.patch) do what their
// headers say, seen through the public API on a real in-memory handshake. Built only in the
// portable (bundled) build: a system OpenSSL has neither patch.
#include <gtest/gtest.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <memory>
#include <string>

namespace relaypro {
namespace {

struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
    void operator()(X509* x) const { X509_free(x); }
};
template <typename T>
using Owned = std::unique_ptr<T, SslFree>;

// A server context with a throw-away self-signed P-256 certificate, and a client that offers
// OpenSSL's default groups (X25519MLKEM768 first), as a Responder on OpenSSL 3.5 does.
class BundledOpenssl : public ::testing::Test {
protected:
    void SetUp() override {
        Owned<EVP_PKEY> key(EVP_EC_gen("P-256"));
        ASSERT_NE(key, nullptr);
        Owned<X509> cert(X509_new());
        X509_set_version(cert.get(), 2);
        ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), 1);
        X509_gmtime_adj(X509_getm_notBefore(cert.get()), 0);
        X509_gmtime_adj(X509_getm_notAfter(cert.get()), 3600);
        X509_set_pubkey(cert.get(), key.get());
        X509_NAME_add_entry_by_txt(X509_get_subject_name(cert.get()), "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("relay.test"), -1, -1, 0);
        X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get()));
        ASSERT_GT(X509_sign(cert.get(), key.get(), EVP_sha256()), 0);
        server_.reset(SSL_CTX_new(TLS_server_method()));
        client_.reset(SSL_CTX_new(TLS_client_method()));
        ASSERT_TRUE(server_ && client_);
        ASSERT_EQ(SSL_CTX_use_certificate(server_.get(), cert.get()), 1);
        ASSERT_EQ(SSL_CTX_use_PrivateKey(server_.get(), key.get()), 1);
    }

    // Runs a full handshake between a fresh server and client over a BIO pair.
    void handshake(Owned<SSL>& s, Owned<SSL>& c) {
        s.reset(SSL_new(server_.get()));
        c.reset(SSL_new(client_.get()));
        BIO* a = nullptr;
        BIO* b = nullptr;
        ASSERT_EQ(BIO_new_bio_pair(&a, 1 << 16, &b, 1 << 16), 1);
        SSL_set_bio(s.get(), a, a);
        SSL_set_bio(c.get(), b, b);
        SSL_set_accept_state(s.get());
        SSL_set_connect_state(c.get());
        for (int round = 0; round < 20 && !(SSL_is_init_finished(s.get()) && SSL_is_init_finished(c.get())); ++round) {
            SSL_do_handshake(c.get());
            SSL_do_handshake(s.get());
        }
        ASSERT_TRUE(SSL_is_init_finished(s.get()) && SSL_is_init_finished(c.get()));
    }

    // One record each way, so that the connection is as a relayed tunnel leaves it.
    static void exchange(SSL* s, SSL* c, const std::string& what) {
        char buf[64];
        ASSERT_EQ(SSL_write(c, what.data(), static_cast<int>(what.size())), static_cast<int>(what.size()));
        int n = 0;
        for (int round = 0; round < 4 && n <= 0; ++round) n = SSL_read(s, buf, sizeof buf);  // may meet a ticket first
        ASSERT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), what);
        ASSERT_EQ(SSL_write(s, what.data(), static_cast<int>(what.size())), static_cast<int>(what.size()));
        n = 0;
        for (int round = 0; round < 4 && n <= 0; ++round) n = SSL_read(c, buf, sizeof buf);
        ASSERT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), what);
    }

    static std::string groupOf(SSL* s) {
        const char* name = SSL_group_to_name(s, static_cast<int>(SSL_get_negotiated_group(s)));
        return name != nullptr ? name : "";
    }

    Owned<SSL_CTX> server_;
    Owned<SSL_CTX> client_;
};

// openssl-release-handshake-keys: once the handshake is over the server holds neither ephemeral
// key (the client's ML-KEM share is 6 KiB per idle tunnel), and the connection still works,
// through a key update too. The client side (curl's console connection) keeps reporting its peer's.
TEST_F(BundledOpenssl, AServerLetsGoOfTheHandshakeKeysOnceItIsDone) {
    Owned<SSL> s;
    Owned<SSL> c;
    ASSERT_NO_FATAL_FAILURE(handshake(s, c));
    EXPECT_EQ(groupOf(s.get()), "X25519MLKEM768");
    ASSERT_NO_FATAL_FAILURE(exchange(s.get(), c.get(), "first"));
    EVP_PKEY* peer = nullptr;
    EXPECT_EQ(SSL_get_peer_tmp_key(s.get(), &peer), 0) << "the client's key share outlived the handshake";
    EVP_PKEY* own = nullptr;
    EXPECT_EQ(SSL_get_tmp_key(s.get(), &own), 0);
    EXPECT_EQ(SSL_key_update(s.get(), SSL_KEY_UPDATE_REQUESTED), 1);
    ASSERT_NO_FATAL_FAILURE(exchange(s.get(), c.get(), "after a key update"));
    ASSERT_NO_FATAL_FAILURE(exchange(s.get(), c.get(), "and once more"));

    // The same with a classic group: the server's own X25519 key goes too.
    ASSERT_EQ(SSL_CTX_set1_groups_list(client_.get(), "X25519"), 1);
    ASSERT_NO_FATAL_FAILURE(handshake(s, c));
    EXPECT_EQ(groupOf(s.get()), "x25519");
    EXPECT_EQ(SSL_get_peer_tmp_key(s.get(), &peer), 0);
    EXPECT_EQ(SSL_get_tmp_key(s.get(), &own), 0);
    Owned<EVP_PKEY> clientView;
    EVP_PKEY* got = nullptr;
    EXPECT_EQ(SSL_get_peer_tmp_key(c.get(), &got), 1) << "only the server side is patched";
    clientView.reset(got);
    ASSERT_NO_FATAL_FAILURE(exchange(s.get(), c.get(), "classic"));
}

// The same over TLS 1.2 (a Responder may still offer it): nothing is left to free, nothing breaks.
TEST_F(BundledOpenssl, ATls12HandshakeStillCompletes) {
    ASSERT_EQ(SSL_CTX_set_max_proto_version(client_.get(), TLS1_2_VERSION), 1);
    Owned<SSL> s;
    Owned<SSL> c;
    ASSERT_NO_FATAL_FAILURE(handshake(s, c));
    EXPECT_EQ(SSL_version(s.get()), TLS1_2_VERSION);
    ASSERT_NO_FATAL_FAILURE(exchange(s.get(), c.get(), "tls 1.2"));
    EVP_PKEY* peer = nullptr;
    EXPECT_EQ(SSL_get_peer_tmp_key(s.get(), &peer), 0);
}

// openssl-no-pipelines: no connection keeps room for 32 pipelines, and none can ask for more than one.
TEST_F(BundledOpenssl, PipeliningIsLimitedToOneRecord) {
    EXPECT_EQ(SSL_MAX_PIPELINES, 1);
    EXPECT_EQ(SSL_CTX_set_max_pipelines(server_.get(), 2), 0);
    EXPECT_EQ(SSL_CTX_set_max_pipelines(server_.get(), 1), 1);
}

}  // namespace
}  // namespace relaypro
