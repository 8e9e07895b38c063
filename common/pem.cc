#include "common/pem.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <memory>

#include "common/file_io.h"
#include "common/text.h"

namespace relaypro {
namespace {

struct BioFree {
    void operator()(BIO* b) const { BIO_free(b); }
};
struct X509Free {
    void operator()(X509* x) const { X509_free(x); }
};
struct PkeyFree {
    void operator()(EVP_PKEY* k) const { EVP_PKEY_free(k); }
};
struct OpensslFree {
    void operator()(void* p) const { OPENSSL_free(p); }
};

constexpr size_t kMaxPemBytes = 1 << 20;

}  // namespace

Status validateCertificatesPem(std::string_view pem) {
    if (pem.size() > kMaxPemBytes) return Error{"is larger than 1 MiB"};
    size_t first = pem.find_first_not_of(" \t\r\n");
    if (first == std::string_view::npos) return Error{"is empty"};
    if (pem.substr(first, 11) != "-----BEGIN ") return Error{"is not PEM (expected -----BEGIN CERTIFICATE-----)"};
    std::unique_ptr<BIO, BioFree> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
    if (!bio) return Error{"cannot be read (out of memory)"};
    int count = 0;
    while (true) {
        char* rawName = nullptr;
        char* rawHeader = nullptr;
        unsigned char* rawData = nullptr;
        long len = 0;
        if (PEM_read_bio(bio.get(), &rawName, &rawHeader, &rawData, &len) != 1) {
            unsigned long err = ERR_peek_last_error();
            ERR_clear_error();
            if (ERR_GET_REASON(err) == PEM_R_NO_START_LINE && count > 0) break;
            return Error{"is malformed PEM" +
                         std::string(count > 0 ? " after certificate " + std::to_string(count) : "")};
        }
        std::unique_ptr<char, OpensslFree> name(rawName), header(rawHeader);
        std::unique_ptr<unsigned char, OpensslFree> data(rawData);
        ++count;
        if (std::string_view(rawName) != "CERTIFICATE") {
            return Error{"holds a \"" + std::string(rawName) + "\" block; only CERTIFICATE blocks belong here"};
        }
        const unsigned char* p = rawData;
        std::unique_ptr<X509, X509Free> cert(d2i_X509(nullptr, &p, len));
        if (!cert || p != rawData + len) {
            ERR_clear_error();
            return Error{"certificate " + std::to_string(count) + " is not a valid X.509 certificate"};
        }
    }
    return {};
}

Status validateCertificateAndKeyFiles(const std::string& certPath, const std::string& keyPath) {
    auto certText = readFile(certPath, kMaxPemBytes);
    if (!certText) return Error{certText.error().describe()};
    if (auto s = validateCertificatesPem(*certText); !s) return Error{certPath + " " + s.error().message};
    auto keyText = readFile(keyPath, kMaxPemBytes);
    if (!keyText) return Error{keyText.error().describe()};
    std::unique_ptr<BIO, BioFree> certBio(BIO_new_mem_buf(certText->data(), static_cast<int>(certText->size())));
    std::unique_ptr<BIO, BioFree> keyBio(BIO_new_mem_buf(keyText->data(), static_cast<int>(keyText->size())));
    std::unique_ptr<X509, X509Free> cert(PEM_read_bio_X509(certBio.get(), nullptr, nullptr, nullptr));
    std::unique_ptr<EVP_PKEY, PkeyFree> key(PEM_read_bio_PrivateKey(keyBio.get(), nullptr, nullptr, nullptr));
    ERR_clear_error();
    if (!key) return Error{keyPath + " holds no readable, unencrypted PEM private key"};
    if (X509_check_private_key(cert.get(), key.get()) != 1) {
        ERR_clear_error();
        return Error{keyPath + " does not match the certificate in " + certPath};
    }
    return {};
}

Result<std::string> certificatesFromInput(std::string_view value, const std::string& folder) {
    std::string pem(value);
    std::string_view path = trimSpace(value);
    if (!path.starts_with("-----BEGIN")) {  // the path of a PEM file
        auto text = readFile(resolvePath(folder, std::string(path)), 1 << 20);
        if (!text) return text.error();
        pem = std::move(*text);
    }
    if (auto s = validateCertificatesPem(pem); !s) return s.error();
    return pem;
}

}  // namespace relaypro
