#include "supervisor/ca_bundle.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <vector>

#include "common/config_values.h"
#include "common/file_io.h"
#include "common/jose.h"
#include "common/unique_fd.h"

namespace relaypro {
namespace {

template <typename T, void (*F)(T*)>
struct Deleter {
    void operator()(T* p) const { F(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, Deleter<EVP_PKEY, EVP_PKEY_free>>;
using X509Ptr = std::unique_ptr<X509, Deleter<X509, X509_free>>;
using BioPtr = std::unique_ptr<BIO, Deleter<BIO, BIO_free_all>>;

constexpr size_t kMaxBundleBytes = 64 * 1024;

std::string bioText(BIO* bio) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<size_t>(len));
}

std::string opensslError() {
    unsigned long e = ERR_get_error();
    ERR_clear_error();
    if (e == 0) return "unknown error";
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    return buf;
}

bool addExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
    if (ext == nullptr) return false;
    bool ok = X509_add_ext(cert, ext, -1) == 1;
    X509_EXTENSION_free(ext);
    return ok;
}

bool setRandomSerial(X509* cert) {
    unsigned char serial[16];
    randombytes_buf(serial, sizeof serial);
    serial[0] = static_cast<unsigned char>((serial[0] & 0x7F) | 0x01);  // positive, full length
    BIGNUM* bn = BN_bin2bn(serial, sizeof serial, nullptr);
    bool ok = bn != nullptr && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) != nullptr;
    BN_free(bn);
    return ok;
}

void setValidity(X509* cert, time_t from, time_t to) {
    X509_time_adj_ex(X509_getm_notBefore(cert), 0, 0, &from);
    X509_time_adj_ex(X509_getm_notAfter(cert), 0, 0, &to);
}

std::optional<std::chrono::system_clock::time_point> asn1Time(const ASN1_TIME* t) {
    struct tm tm {};
    if (ASN1_TIME_to_tm(t, &tm) != 1) return std::nullopt;
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

std::string hex(const unsigned char* data, size_t len, bool upperWithColons) {
    static const char* lower = "0123456789abcdef";
    static const char* upper = "0123456789ABCDEF";
    const char* digits = upperWithColons ? upper : lower;
    std::string out;
    for (size_t i = 0; i < len; ++i) {
        if (upperWithColons && i > 0) out.push_back(':');
        out.push_back(digits[data[i] >> 4]);
        out.push_back(digits[data[i] & 15]);
    }
    return out;
}

// The labels of the PEM blocks in `text`, in order ("RSA PRIVATE KEY", "CERTIFICATE", ...),
// and whether any block carries RFC 1421 encryption headers.
struct PemScan {
    std::vector<std::string> labels;
    bool encryptedHeaders = false;
};

PemScan scanPem(std::string_view text) {
    PemScan scan;
    constexpr std::string_view kBegin = "-----BEGIN ";
    size_t pos = 0;
    while ((pos = text.find(kBegin, pos)) != std::string_view::npos) {
        size_t end = text.find("-----", pos + kBegin.size());
        if (end == std::string_view::npos) break;
        scan.labels.emplace_back(text.substr(pos + kBegin.size(), end - pos - kBegin.size()));
        size_t blockEnd = text.find("-----END ", end);
        std::string_view body =
            text.substr(end, blockEnd == std::string_view::npos ? std::string_view::npos : blockEnd - end);
        if (body.find("Proc-Type:") != std::string_view::npos) scan.encryptedHeaders = true;
        pos = end;
    }
    return scan;
}

// The one PEM block with `label`, or empty.
std::string pemBlock(std::string_view text, std::string_view label) {
    std::string begin = "-----BEGIN " + std::string(label) + "-----";
    std::string end = "-----END " + std::string(label) + "-----";
    size_t b = text.find(begin);
    if (b == std::string_view::npos) return "";
    size_t e = text.find(end, b);
    if (e == std::string_view::npos) return "";
    return std::string(text.substr(b, e + end.size() - b)) + "\n";
}

}  // namespace

struct CaBundle::Impl {
    PkeyPtr key;
    X509Ptr cert;
    unsigned char* der = nullptr;  // PKCS#1 DER of the key, in sodium_malloc'd (locked, guarded) memory
    size_t derLen = 0;
    ~Impl() {
        if (der != nullptr) sodium_free(der);
    }
    std::string_view derView() const { return {reinterpret_cast<const char*>(der), derLen}; }
};

CaBundle::CaBundle(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), impl_->cert.get());
    certificatePem_ = bioText(bio.get());
}
CaBundle::~CaBundle() = default;
CaBundle::CaBundle(CaBundle&&) noexcept = default;
CaBundle& CaBundle::operator=(CaBundle&&) noexcept = default;

namespace {

// Keeps the key's PKCS#1 DER in locked memory for the derivations.
Status captureDer(EVP_PKEY* key, unsigned char*& der, size_t& derLen) {
    if (sodium_init() < 0) return Error{"libsodium cannot initialise"};
    int len = i2d_PrivateKey(key, nullptr);
    if (len <= 0) return Error{"cannot encode the CA key: " + opensslError()};
    der = static_cast<unsigned char*>(sodium_malloc(static_cast<size_t>(len)));
    if (der == nullptr) return Error{"cannot allocate locked memory for the CA key"};
    unsigned char* p = der;
    if (i2d_PrivateKey(key, &p) != len) return Error{"cannot encode the CA key: " + opensslError()};
    derLen = static_cast<size_t>(len);
    return {};
}

}  // namespace

Result<CaBundle> CaBundle::load(const std::string& path, std::chrono::system_clock::time_point now) {
    const std::string where = "CA bundle " + path;
    struct stat st {};
    if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
        char mode[8];
        std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
        return Error{where + ": the file is open to other users (mode " + mode + "); chmod 600 it"};
    }
    auto text = readFile(path, kMaxBundleBytes);
    if (!text) return Error{where + ": " + text.error().describe()};
    struct Wipe {
        std::string& s;
        ~Wipe() { sodium_memzero(s.data(), s.size()); }
    } wipe{*text};
    return parse(*text, now, where);
}

Result<CaBundle> CaBundle::fromPem(const std::string& pem, std::chrono::system_clock::time_point now) {
    return parse(pem, now, "the CA bundle in use");
}

Result<CaBundle> CaBundle::parse(const std::string& text, std::chrono::system_clock::time_point now,
                                 const std::string& where) {
    PemScan scan = scanPem(text);
    int keys = 0, certs = 0;
    for (const auto& label : scan.labels) {
        if (label == "RSA PRIVATE KEY") {
            ++keys;
        } else if (label == "CERTIFICATE") {
            ++certs;
        } else if (label == "PRIVATE KEY") {
            return Error{where +
                         ": the key is PKCS#8 (\"BEGIN PRIVATE KEY\"); RelayPro needs PKCS#1 "
                         "(\"BEGIN RSA PRIVATE KEY\"): convert it with `openssl rsa -traditional`"};
        } else if (label == "ENCRYPTED PRIVATE KEY") {
            return Error{where + ": the key is encrypted; RelayPro needs an unencrypted PKCS#1 RSA key"};
        } else if (label == "EC PRIVATE KEY") {
            return Error{where + ": the key is an EC key; the CA key must be RSA (PKCS#1)"};
        } else {
            return Error{where + ": unexpected PEM block \"" + label +
                         "\"; the bundle holds one RSA PRIVATE KEY and one CERTIFICATE"};
        }
    }
    if (scan.encryptedHeaders)
        return Error{where + ": the key is encrypted; RelayPro needs an unencrypted PKCS#1 RSA key"};
    if (keys != 1 || certs != 1) {
        return Error{where + ": expected one RSA PRIVATE KEY and one CERTIFICATE block, found " + std::to_string(keys) +
                     " keys and " + std::to_string(certs) + " certificates"};
    }

    auto impl = std::make_unique<Impl>();
    std::string keyPem = pemBlock(text, "RSA PRIVATE KEY");
    BioPtr keyBio(BIO_new_mem_buf(keyPem.data(), static_cast<int>(keyPem.size())));
    impl->key.reset(PEM_read_bio_PrivateKey(keyBio.get(), nullptr, nullptr, nullptr));
    sodium_memzero(keyPem.data(), keyPem.size());
    if (!impl->key) return Error{where + ": the RSA PRIVATE KEY block does not parse (" + opensslError() + ")"};
    if (EVP_PKEY_get_base_id(impl->key.get()) != EVP_PKEY_RSA) return Error{where + ": the key is not RSA"};
    if (EVP_PKEY_get_bits(impl->key.get()) < 2048) {
        return Error{where + ": the RSA key has " + std::to_string(EVP_PKEY_get_bits(impl->key.get())) +
                     " bits; at least 2048 are needed"};
    }
    std::string certPem = pemBlock(text, "CERTIFICATE");
    BioPtr certBio(BIO_new_mem_buf(certPem.data(), static_cast<int>(certPem.size())));
    impl->cert.reset(PEM_read_bio_X509(certBio.get(), nullptr, nullptr, nullptr));
    if (!impl->cert) return Error{where + ": the CERTIFICATE block does not parse (" + opensslError() + ")"};
    if (X509_check_private_key(impl->cert.get(), impl->key.get()) != 1) {
        ERR_clear_error();
        return Error{where + ": the key does not match the certificate"};
    }
    const uint32_t flags = X509_get_extension_flags(impl->cert.get());
    if ((flags & EXFLAG_CA) == 0)
        return Error{where + ": the certificate is not a CA (basicConstraints CA:TRUE is missing)"};
    if ((flags & EXFLAG_KUSAGE) != 0 && (X509_get_key_usage(impl->cert.get()) & KU_KEY_CERT_SIGN) == 0) {
        return Error{where + ": the CA certificate's keyUsage does not allow keyCertSign"};
    }
    const time_t t = std::chrono::system_clock::to_time_t(now);
    if (X509_cmp_time(X509_get0_notAfter(impl->cert.get()), const_cast<time_t*>(&t)) <= 0) {
        auto when = asn1Time(X509_get0_notAfter(impl->cert.get()));
        return Error{where + ": the CA certificate expired " + (when ? formatRfc3339(*when) : std::string("")) +
                     "; remove the file to have a new CA created (Responders then fetch new tokens and the console "
                     "learns the new fingerprint)"};
    }
    if (X509_cmp_time(X509_get0_notBefore(impl->cert.get()), const_cast<time_t*>(&t)) > 0) {
        auto when = asn1Time(X509_get0_notBefore(impl->cert.get()));
        return Error{where + ": the CA certificate is not valid before " +
                     (when ? formatRfc3339(*when) : std::string("")) + " (check the clock)"};
    }
    if (auto s = captureDer(impl->key.get(), impl->der, impl->derLen); !s)
        return Error{where + ": " + s.error().message};
    return CaBundle(std::move(impl));
}

Result<CaBundle> CaBundle::generate(std::chrono::system_clock::time_point now) {
    auto impl = std::make_unique<Impl>();
    impl->key.reset(EVP_RSA_gen(kRsaBits));
    if (!impl->key) return Error{"cannot generate the CA key: " + opensslError()};
    impl->cert.reset(X509_new());
    X509* cert = impl->cert.get();
    X509_set_version(cert, 2);
    if (!setRandomSerial(cert)) return Error{"cannot set the CA serial number"};
    const time_t t = std::chrono::system_clock::to_time_t(now);
    setValidity(cert, t - 3600, t + static_cast<time_t>(kValidityDays) * 86400);
    X509_set_pubkey(cert, impl->key.get());
    // A random suffix keeps the subjects of different RelayPro CAs apart in a trust store.
    unsigned char tag[4];
    randombytes_buf(tag, sizeof tag);
    std::string cn = "RelayPro CA " + hex(tag, sizeof tag, false);
    X509_NAME* name = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("RelayPro"), -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert, name);
    if (!addExtension(cert, cert, NID_basic_constraints, "critical,CA:TRUE,pathlen:0") ||
        !addExtension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign") ||
        !addExtension(cert, cert, NID_subject_key_identifier, "hash")) {
        return Error{"cannot build the CA certificate: " + opensslError()};
    }
    if (X509_sign(cert, impl->key.get(), EVP_sha256()) == 0)
        return Error{"cannot sign the CA certificate: " + opensslError()};
    if (auto s = captureDer(impl->key.get(), impl->der, impl->derLen); !s) return s.error();
    return CaBundle(std::move(impl));
}

Result<CaBundle> CaBundle::loadOrCreate(const std::string& path, bool& created) {
    created = false;
    auto now = std::chrono::system_clock::now();
    if (::access(path.c_str(), F_OK) == 0 || errno != ENOENT) return load(path, now);
    auto bundle = generate(now);
    if (!bundle) return bundle.error();
    std::string pem = bundle->toPem();
    std::string temp = path + ".tmp-XXXXXX";
    UniqueFd fd(::mkostemp(temp.data(), O_CLOEXEC));  // mode 0600
    if (!fd) {
        sodium_memzero(pem.data(), pem.size());
        return sysError("CA bundle " + path + ": cannot create a file in " + dirName(path));
    }
    size_t done = 0;
    bool ok = ::fchmod(fd.get(), 0600) == 0;
    while (ok && done < pem.size()) {
        ssize_t n = ::write(fd.get(), pem.data() + done, pem.size() - done);
        if (n < 0 && errno == EINTR) continue;
        ok = n > 0;
        if (ok) done += static_cast<size_t>(n);
    }
    sodium_memzero(pem.data(), pem.size());
    ok = ok && ::fsync(fd.get()) == 0;
    if (!ok) {
        auto e = sysError("CA bundle " + path + ": cannot write");
        ::unlink(temp.c_str());
        return e;
    }
    fd.reset();
    // link() fails if the name exists: of two processes creating the bundle at once, one wins
    // and the other loads the winner's file.
    int linked = ::link(temp.c_str(), path.c_str());
    int linkErrno = errno;
    ::unlink(temp.c_str());
    if (linked != 0) {
        if (linkErrno == EEXIST) return load(path, now);
        errno = linkErrno;
        return sysError("CA bundle " + path + ": cannot create");
    }
    UniqueFd dir(::open(dirName(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (dir) ::fsync(dir.get());
    created = true;
    return bundle;
}

std::string CaBundle::toPem() const {
    BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_PrivateKey_traditional(bio.get(), impl_->key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    PEM_write_bio_X509(bio.get(), impl_->cert.get());
    std::string out = bioText(bio.get());
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    if (data != nullptr && len > 0) sodium_memzero(data, static_cast<size_t>(len));
    return out;
}

std::string CaBundle::fingerprintHex() const {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    X509_digest(impl_->cert.get(), EVP_sha256(), md, &len);
    return hex(md, len, false);
}

std::string CaBundle::fingerprintColons() const {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    X509_digest(impl_->cert.get(), EVP_sha256(), md, &len);
    return hex(md, len, true);
}

std::string CaBundle::subject() const {
    BioPtr bio(BIO_new(BIO_s_mem()));
    X509_NAME_print_ex(bio.get(), X509_get_subject_name(impl_->cert.get()), 0, XN_FLAG_ONELINE & ~ASN1_STRFLGS_ESC_MSB);
    return bioText(bio.get());
}

std::string CaBundle::notBefore() const {
    auto t = asn1Time(X509_get0_notBefore(impl_->cert.get()));
    return t ? formatRfc3339(*t) : "";
}

std::string CaBundle::notAfter() const {
    auto t = asn1Time(X509_get0_notAfter(impl_->cert.get()));
    return t ? formatRfc3339(*t) : "";
}

std::chrono::system_clock::time_point CaBundle::expiresAt() const {
    return asn1Time(X509_get0_notAfter(impl_->cert.get())).value_or(std::chrono::system_clock::time_point{});
}

Result<TlsMaterial> CaBundle::issueServerCertificate(const std::string& serverName, std::chrono::hours lifetime) const {
    PkeyPtr key(EVP_EC_gen("P-256"));
    if (!key) return Error{"cannot generate a P-256 key: " + opensslError()};
    X509Ptr cert(X509_new());
    X509_set_version(cert.get(), 2);
    if (!setRandomSerial(cert.get())) return Error{"cannot set the serial number"};
    const time_t t = std::time(nullptr);
    time_t until = t + static_cast<time_t>(lifetime.count()) * 3600;
    // Never beyond the CA: a chain with a leaf that outlives its issuer fails validation.
    const time_t caEnd = std::chrono::system_clock::to_time_t(expiresAt());
    if (until > caEnd) until = caEnd;
    setValidity(cert.get(), t - 3600, until);
    X509_set_pubkey(cert.get(), key.get());
    X509_NAME* name = X509_get_subject_name(cert.get());
    std::string cn = serverName.substr(0, 64);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                               0);
    X509_set_issuer_name(cert.get(), X509_get_subject_name(impl_->cert.get()));
    std::string san = (isIpLiteral(serverName) ? "IP:" : "DNS:") + serverName;
    if (!addExtension(cert.get(), impl_->cert.get(), NID_subject_alt_name, san) ||
        !addExtension(cert.get(), impl_->cert.get(), NID_basic_constraints, "critical,CA:FALSE") ||
        !addExtension(cert.get(), impl_->cert.get(), NID_key_usage, "critical,digitalSignature") ||
        !addExtension(cert.get(), impl_->cert.get(), NID_ext_key_usage, "serverAuth") ||
        !addExtension(cert.get(), impl_->cert.get(), NID_subject_key_identifier, "hash") ||
        !addExtension(cert.get(), impl_->cert.get(), NID_authority_key_identifier, "keyid:always")) {
        return Error{"cannot build the server certificate for " + serverName + ": " + opensslError()};
    }
    if (X509_sign(cert.get(), impl_->key.get(), EVP_sha256()) == 0) {
        return Error{"cannot sign the server certificate: " + opensslError()};
    }
    BioPtr certBio(BIO_new(BIO_s_mem()));
    BioPtr keyBio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(certBio.get(), cert.get());
    PEM_write_bio_PrivateKey(keyBio.get(), key.get(), nullptr, nullptr, 0, nullptr, nullptr);
    TlsMaterial m;
    m.certificateChainPem = bioText(certBio.get());
    m.privateKeyPem = bioText(keyBio.get());
    char* data = nullptr;
    long len = BIO_get_mem_data(keyBio.get(), &data);
    if (data != nullptr && len > 0) sodium_memzero(data, static_cast<size_t>(len));
    return m;
}

TokenKey CaBundle::tokenMaster(int64_t day) const {
    TokenKey out{};
    auto s = hkdfSha256(impl_->derView(), "RelayPro token master v1", "day:" + std::to_string(day), out);
    (void)s;  // HKDF-SHA256 of 32 bytes does not fail once OpenSSL runs
    return out;
}

TicketKey CaBundle::ticketKey(int64_t hour) const {
    TicketKey k;
    k.hour = hour;
    auto s = hkdfSha256(impl_->derView(), "RelayPro ticket key v1", "hour:" + std::to_string(hour), k.bytes);
    (void)s;
    return k;
}

}  // namespace relaypro
