// The CA bundle: what it accepts, what it refuses (with the fix named), and the derivations of
// protocol.md checked against the openssl tool (DER of the key from `openssl rsa -traditional`,
// HKDF from `openssl kdf`).
#include "supervisor/ca_bundle.h"

#include <gtest/gtest.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "common/config_values.h"
#include "test/support/test_files.h"

namespace relaypro {
namespace {

using testing::commandOutput;
using testing::readText;
using testing::TempDir;
using testing::writeText;
namespace fs = std::filesystem;
using Clock = std::chrono::system_clock;

std::string hexOf(const unsigned char* data, size_t len) {
    static const char* digits = "0123456789abcdef";
    std::string out;
    for (size_t i = 0; i < len; ++i) {
        out.push_back(digits[data[i] >> 4]);
        out.push_back(digits[data[i] & 15]);
    }
    return out;
}

// One generated bundle for the whole file: RSA 3072 generation is the slow part.
const CaBundle& sharedBundle() {
    static CaBundle* bundle = [] {
        auto b = CaBundle::generate(Clock::now());
        EXPECT_TRUE(b);
        return new CaBundle(std::move(*b));
    }();
    return *bundle;
}

fs::path writeBundle(const TempDir& dir, const std::string& name, const std::string& pem, mode_t mode = 0600) {
    fs::path p = dir / name;
    writeText(p, pem);
    ::chmod(p.c_str(), mode);
    return p;
}

std::string loadError(const fs::path& p) {
    auto b = CaBundle::load(p.string(), Clock::now());
    return b ? std::string("accepted") : b.error().message;
}

TEST(CaBundle, GeneratedBundleRoundTripsThroughItsFile) {
    TempDir dir;
    const CaBundle& ca = sharedBundle();
    fs::path p = writeBundle(dir, "bundle.pem", ca.toPem());
    auto loaded = CaBundle::load(p.string(), Clock::now());
    ASSERT_TRUE(loaded) << loaded.error().message;
    EXPECT_EQ(loaded->fingerprintHex(), ca.fingerprintHex());
    EXPECT_EQ(loaded->certificatePem(), ca.certificatePem());
    EXPECT_EQ(loaded->tokenMaster(20416), ca.tokenMaster(20416));
    EXPECT_EQ(loaded->ticketKey(490000).bytes, ca.ticketKey(490000).bytes);
    EXPECT_NE(ca.tokenMaster(20416), ca.tokenMaster(20417));
    EXPECT_NE(ca.ticketKey(490000).bytes, ca.ticketKey(490001).bytes);
    // Fingerprints in both spellings, as openssl prints the second.
    std::string colons = ca.fingerprintColons();
    EXPECT_EQ(colons.size(), 32u * 3 - 1);
    EXPECT_EQ(commandOutput("openssl x509 -noout -fingerprint -sha256 -in " + p.string()),
              "sha256 Fingerprint=" + colons);
    std::string lower;
    for (char c : colons) {
        if (c != ':') lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    EXPECT_EQ(ca.fingerprintHex(), lower);
    // Ten years from an hour ago, a CA, RSA 3072 in PKCS#1.
    auto seconds = [](const std::string& t) {
        auto parsed = parseRfc3339(t);
        EXPECT_TRUE(parsed) << t;
        return std::chrono::duration_cast<std::chrono::seconds>(
                   (parsed ? *parsed : Clock::time_point{}).time_since_epoch())
            .count();
    };
    auto notBefore = seconds(ca.notBefore());
    auto notAfter = seconds(ca.notAfter());
    EXPECT_EQ(notAfter - notBefore, 3650LL * 86400 + 3600);
    std::string text = commandOutput("openssl x509 -noout -text -in " + p.string());
    EXPECT_NE(text.find("Public-Key: (3072 bit)"), std::string::npos);
    EXPECT_NE(text.find("CA:TRUE"), std::string::npos);
    EXPECT_NE(text.find("Certificate Sign"), std::string::npos);
    EXPECT_EQ(ca.toPem().rfind("-----BEGIN RSA PRIVATE KEY-----\n", 0), 0u);
}

// An upgrade hands the CA in use to the next image as its text: the same checks, the same CA.
TEST(CaBundle, TheTextOfABundleIsReadWithTheSameChecks) {
    const CaBundle& ca = sharedBundle();
    auto back = CaBundle::fromPem(ca.toPem(), Clock::now());
    ASSERT_TRUE(back) << back.error().message;
    EXPECT_EQ(back->fingerprintHex(), ca.fingerprintHex());
    EXPECT_EQ(back->tokenMaster(20416), ca.tokenMaster(20416));
    auto none = CaBundle::fromPem(ca.certificatePem(), Clock::now());
    ASSERT_FALSE(none);
    EXPECT_EQ(none.error().message,
              "the CA bundle in use: expected one RSA PRIVATE KEY and one CERTIFICATE block, found 0 keys and 1 "
              "certificates");
}

// protocol.md's derivations, computed by the openssl tool from the key's PKCS#1 DER.
TEST(CaBundle, DerivationsMatchTheOpensslTool) {
    TempDir dir;
    fs::path p = writeBundle(dir, "bundle.pem", sharedBundle().toPem());
    std::string derHex = commandOutput("openssl rsa -in " + p.string() +
                                       " -traditional -outform DER 2>/dev/null | od -An -v -tx1 | tr -d ' \\n'");
    ASSERT_GT(derHex.size(), 3000u);
    auto kdf = [&](const std::string& salt, const std::string& info, int len) {
        std::string out = commandOutput("openssl kdf -keylen " + std::to_string(len) +
                                        " -kdfopt digest:SHA256 -kdfopt hexkey:" + derHex + " -kdfopt 'salt:" + salt +
                                        "' -kdfopt 'info:" + info + "' HKDF");
        std::string hex;
        for (char c : out) {
            if (c != ':') hex.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
        }
        return hex;
    };
    TokenKey master = sharedBundle().tokenMaster(20416);
    EXPECT_EQ(hexOf(master.data(), master.size()), kdf("RelayPro token master v1", "day:20416", 32));
    TicketKey ticket = sharedBundle().ticketKey(490001);
    EXPECT_EQ(hexOf(ticket.bytes.data(), ticket.bytes.size()), kdf("RelayPro ticket key v1", "hour:490001", 80));
}

TEST(CaBundle, LoadOrCreateCreatesOnceWith0600) {
    TempDir dir;
    const std::string path = (dir / "ca-bundle.pem").string();
    bool created = false;
    auto first = CaBundle::loadOrCreate(path, created);
    ASSERT_TRUE(first) << first.error().message;
    EXPECT_TRUE(created);
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 07777, 0600u);
    auto second = CaBundle::loadOrCreate(path, created);
    ASSERT_TRUE(second);
    EXPECT_FALSE(created);
    EXPECT_EQ(second->fingerprintHex(), first->fingerprintHex());
    // No temporary file is left beside it.
    int files = 0;
    for (const auto& e : fs::directory_iterator(dir.path())) files += e.is_regular_file() ? 1 : 0;
    EXPECT_EQ(files, 1);
}

TEST(CaBundle, RefusesWhatItCannotUseAndNamesTheFix) {
    TempDir dir;
    const CaBundle& ca = sharedBundle();
    fs::path good = writeBundle(dir, "good.pem", ca.toPem());

    // PKCS#8 key.
    std::string pkcs8 =
        commandOutput("openssl pkcs8 -topk8 -nocrypt -in " + good.string()) + "\n" + ca.certificatePem();
    EXPECT_NE(loadError(writeBundle(dir, "pkcs8.pem", pkcs8)).find("PKCS#8"), std::string::npos);
    // An encrypted key.
    std::string encrypted =
        commandOutput("openssl rsa -in " + good.string() + " -traditional -aes128 -passout pass:x 2>/dev/null") + "\n" +
        ca.certificatePem();
    EXPECT_NE(loadError(writeBundle(dir, "enc.pem", encrypted)).find("encrypted"), std::string::npos);
    // An EC key with its own CA certificate.
    commandOutput(
        "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj /CN=ec "
        "-addext basicConstraints=critical,CA:TRUE -keyout " +
        (dir / "ec.key").string() + " -out " + (dir / "ec.crt").string() + " 2>/dev/null");
    std::string ec =
        commandOutput("openssl ec -in " + (dir / "ec.key").string() + " 2>/dev/null") + "\n" + readText(dir / "ec.crt");
    EXPECT_NE(loadError(writeBundle(dir, "ec.pem", ec)).find("EC key"), std::string::npos);
    // A key that does not match the certificate.
    auto other = CaBundle::generate(Clock::now());
    ASSERT_TRUE(other);
    std::string otherPem = other->toPem();
    std::string mismatched = otherPem.substr(0, otherPem.find("-----BEGIN CERTIFICATE-----")) + ca.certificatePem();
    EXPECT_NE(loadError(writeBundle(dir, "mismatch.pem", mismatched)).find("does not match"), std::string::npos);
    // A certificate that is not a CA.
    commandOutput(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=leaf "
        "-addext basicConstraints=critical,CA:FALSE -keyout " +
        (dir / "leaf.key").string() + " -out " + (dir / "leaf.crt").string() + " 2>/dev/null");
    std::string leaf = commandOutput("openssl rsa -in " + (dir / "leaf.key").string() + " -traditional 2>/dev/null") +
                       "\n" + readText(dir / "leaf.crt");
    EXPECT_NE(loadError(writeBundle(dir, "leaf.pem", leaf)).find("not a CA"), std::string::npos);
    // An RSA key under 2048 bits.
    commandOutput(
        "openssl req -x509 -newkey rsa:1024 -nodes -days 30 -subj /CN=small "
        "-addext basicConstraints=critical,CA:TRUE -keyout " +
        (dir / "small.key").string() + " -out " + (dir / "small.crt").string() + " 2>/dev/null");
    std::string small = commandOutput("openssl rsa -in " + (dir / "small.key").string() + " -traditional 2>/dev/null") +
                        "\n" + readText(dir / "small.crt");
    EXPECT_NE(loadError(writeBundle(dir, "small.pem", small)).find("at least 2048"), std::string::npos);
    // Expired, and not yet valid.
    auto old = CaBundle::generate(Clock::now() - std::chrono::hours(24 * 3651));
    ASSERT_TRUE(old);
    EXPECT_NE(loadError(writeBundle(dir, "old.pem", old->toPem())).find("expired"), std::string::npos);
    auto future = CaBundle::generate(Clock::now() + std::chrono::hours(48));
    ASSERT_TRUE(future);
    EXPECT_NE(loadError(writeBundle(dir, "future.pem", future->toPem())).find("not valid before"), std::string::npos);
    // Open to other users.
    EXPECT_NE(loadError(writeBundle(dir, "open.pem", ca.toPem(), 0644)).find("chmod 600"), std::string::npos);
    // Two keys, no certificate, garbage, a missing file.
    std::string key = ca.toPem().substr(0, ca.toPem().find("-----BEGIN CERTIFICATE-----"));
    EXPECT_NE(loadError(writeBundle(dir, "twokeys.pem", key + key + ca.certificatePem())).find("found 2 keys"),
              std::string::npos);
    EXPECT_NE(loadError(writeBundle(dir, "nocert.pem", key)).find("0 certificates"), std::string::npos);
    EXPECT_NE(loadError(writeBundle(dir, "garbage.pem", "hello\n")).find("found 0 keys"), std::string::npos);
    EXPECT_NE(loadError(dir / "missing.pem").find("cannot open"), std::string::npos);
    // None of the messages carries key material.
    for (const char* f : {"pkcs8.pem", "mismatch.pem", "leaf.pem"}) {
        std::string message = loadError(dir / f);
        EXPECT_EQ(message.find("MII"), std::string::npos) << message;
    }
}

TEST(CaBundle, IssuesServerCertificatesItSigned) {
    const CaBundle& ca = sharedBundle();
    for (std::string name : {std::string("relay.example.com"), std::string("192.0.2.7"), std::string("2001:db8::1")}) {
        auto m = ca.issueServerCertificate(name, std::chrono::hours(24 * 90));
        ASSERT_TRUE(m) << m.error().message;
        BIO* bio = BIO_new_mem_buf(m->certificateChainPem.data(), static_cast<int>(m->certificateChainPem.size()));
        X509* leaf = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
        BIO_free(bio);
        bio = BIO_new_mem_buf(ca.certificatePem().data(), static_cast<int>(ca.certificatePem().size()));
        X509* root = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
        BIO_free(bio);
        ASSERT_TRUE(leaf && root);
        EXPECT_EQ(X509_verify(leaf, X509_get0_pubkey(root)), 1);
        EXPECT_EQ(EVP_PKEY_get_base_id(X509_get0_pubkey(leaf)), EVP_PKEY_EC);
        EXPECT_EQ(X509_check_ca(leaf), 0);
        bool ip = name.find_first_not_of("0123456789.") == std::string::npos || name.find(':') != std::string::npos;
        if (ip) {
            EXPECT_EQ(X509_check_ip_asc(leaf, name.c_str(), 0), 1) << name;
        } else {
            EXPECT_EQ(X509_check_host(leaf, name.c_str(), name.size(), 0, nullptr), 1) << name;
        }
        // The chain verifies with the CA as the only anchor.
        X509_STORE* store = X509_STORE_new();
        X509_STORE_add_cert(store, root);
        X509_STORE_CTX* ctx = X509_STORE_CTX_new();
        X509_STORE_CTX_init(ctx, store, leaf, nullptr);
        EXPECT_EQ(X509_verify_cert(ctx), 1) << X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
        X509_STORE_CTX_free(ctx);
        X509_STORE_free(store);
        X509_free(leaf);
        X509_free(root);
        EXPECT_EQ(m->privateKeyPem.rfind("-----BEGIN PRIVATE KEY-----", 0), 0u);
    }
}

}  // namespace
}  // namespace relaypro
