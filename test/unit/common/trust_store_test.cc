#include "common/trust_store.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "test/support/test_files.h"

namespace relaypro {
namespace {

// A root file system holding `files` (non-empty) and `folders`.
void layout(const std::filesystem::path& root, std::initializer_list<const char*> files,
            std::initializer_list<const char*> folders = {}) {
    for (const char* f : files) {
        std::filesystem::create_directories((root / (f + 1)).parent_path());
        testing::writeText(root / (f + 1), "-----BEGIN CERTIFICATE-----\n");
    }
    for (const char* d : folders) std::filesystem::create_directories(root / (d + 1));
}

class TrustStore : public ::testing::Test {
protected:
    testing::TempDir dir;
    std::string root = dir.path().string();
    testing::ScopedEnv noFile{"SSL_CERT_FILE", nullptr};
    testing::ScopedEnv noDir{"SSL_CERT_DIR", nullptr};
};

TEST_F(TrustStore, FindsEachDistributionsBundle) {
    struct Case {
        const char* system;
        const char* bundle;
    };
    for (Case c :
         {Case{"Debian, Ubuntu", "/etc/ssl/certs/ca-certificates.crt"},
          Case{"RHEL, Amazon Linux", "/etc/pki/tls/certs/ca-bundle.crt"}, Case{"SLES", "/etc/ssl/ca-bundle.pem"},
          Case{"RHEL 7+ extracted", "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem"},
          Case{"Alpine", "/etc/ssl/cert.pem"}}) {
        testing::TempDir system;
        layout(system.path(), {c.bundle});
        TrustStorePaths p = systemTrustStore(system.path().string());
        EXPECT_EQ(p.file, system.path().string() + c.bundle) << c.system;
    }
}

TEST_F(TrustStore, PrefersTheFirstKnownBundleAndAddsTheHashedFolder) {
    layout(root, {"/etc/ssl/cert.pem", "/etc/ssl/certs/ca-certificates.crt"});
    TrustStorePaths p = systemTrustStore(root);
    EXPECT_EQ(p.file, root + "/etc/ssl/certs/ca-certificates.crt");
    EXPECT_EQ(p.dir, root + "/etc/ssl/certs");
    EXPECT_EQ(p.describe(), "file " + p.file + ", folder " + p.dir);
}

TEST_F(TrustStore, AnEmptyFileIsNoBundleAndNothingIsNothing) {
    std::filesystem::create_directories(dir.path() / "etc/pki/tls/certs");
    testing::writeText(dir.path() / "etc/pki/tls/certs/ca-bundle.crt", "");
    TrustStorePaths p = systemTrustStore(root);
    EXPECT_TRUE(p.empty()) << p.describe();
    EXPECT_EQ(p.describe(), "nothing");
    EXPECT_NE(trustStoreCandidates().find("/etc/pki/tls/certs/ca-bundle.crt"), std::string::npos);
}

TEST_F(TrustStore, OpensslVariablesWinAndMustNameWhatExists) {
    layout(root, {"/etc/ssl/certs/ca-certificates.crt", "/srv/ca/mine.pem"}, {"/srv/ca/hashed"});
    std::filesystem::create_directories(dir.path() / "etc/ssl/certs");
    {
        testing::ScopedEnv file("SSL_CERT_FILE", (root + "/srv/ca/mine.pem").c_str());
        TrustStorePaths p = systemTrustStore(root);
        EXPECT_EQ(p.file, root + "/srv/ca/mine.pem");
        EXPECT_EQ(p.dir, root + "/etc/ssl/certs") << "SSL_CERT_FILE replaces the file only, as in OpenSSL";
    }
    {
        testing::ScopedEnv folder("SSL_CERT_DIR", (root + "/srv/ca/hashed").c_str());
        TrustStorePaths p = systemTrustStore(root);
        EXPECT_EQ(p.file, root + "/etc/ssl/certs/ca-certificates.crt") << "SSL_CERT_DIR replaces the folder only";
        EXPECT_EQ(p.dir, root + "/srv/ca/hashed");
    }
    {
        testing::ScopedEnv file("SSL_CERT_FILE", (root + "/srv/ca/missing.pem").c_str());
        testing::ScopedEnv folder("SSL_CERT_DIR", (root + "/srv/ca/missing").c_str());
        EXPECT_TRUE(systemTrustStore(root).empty()) << "variables naming nothing are not silently replaced";
    }
}

}  // namespace
}  // namespace relaypro
