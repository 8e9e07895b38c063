#include "supervisor/server_certificate.h"

#include <openssl/bio.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include <memory>

#include "common/config_values.h"
#include "common/file_io.h"

namespace relaypro {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
    void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

std::string bioText(BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<size_t>(len));
}

bool addExtension(X509* cert, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) return false;
    bool ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

}  // namespace

Result<TlsMaterial> makeSelfSignedCertificate(const std::string& serverName, std::chrono::hours lifetime) {
    PkeyPtr key(EVP_EC_gen("P-256"));
    if (!key) return Error{"cannot generate a P-256 key"};
    X509Ptr cert(X509_new());
    X509_set_version(cert.get(), 2);
    unsigned char serial[16];
    randombytes_buf(serial, sizeof serial);
    serial[0] &= 0x7F;
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()));
    BN_free(bn);
    X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert.get()), static_cast<long>(lifetime.count()) * 3600);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    std::string cn = serverName.substr(0, 64);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("RelayPro"), -1, -1, 0);
    X509_set_issuer_name(cert.get(), name);
    std::string san = (isIpLiteral(serverName) ? "IP:" : "DNS:") + serverName;
    if (!addExtension(cert.get(), NID_subject_alt_name, san) ||
        !addExtension(cert.get(), NID_basic_constraints, "critical,CA:FALSE") ||
        !addExtension(cert.get(), NID_key_usage, "critical,digitalSignature") ||
        !addExtension(cert.get(), NID_ext_key_usage, "serverAuth")) {
        ERR_clear_error();
        return Error{"cannot build the server certificate for " + serverName};
    }
    if (X509_sign(cert.get(), key.get(), EVP_sha256()) == 0) {
        ERR_clear_error();
        return Error{"cannot sign the server certificate"};
    }
    BioPtr certBio(BIO_new(BIO_s_mem()));
    BioPtr keyBio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(certBio.get(), cert.get());
    PEM_write_bio_PrivateKey(keyBio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    TlsMaterial m;
    m.certificateChainPem = bioText(certBio.get());
    m.privateKeyPem = bioText(keyBio.get());
    return m;
}

Result<TlsMaterial> loadCertificateFiles(const std::string& certFile, const std::string& keyFile) {
    auto cert = readFile(certFile, 1 << 20);
    if (!cert) return Error{cert.error().describe()};
    auto key = readFile(keyFile, 1 << 20);
    if (!key) return Error{key.error().describe()};
    return TlsMaterial{std::move(*cert), std::move(*key)};
}

}  // namespace relaypro
