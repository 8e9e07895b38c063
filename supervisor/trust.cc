#include "supervisor/trust.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sodium.h>

#include <ctime>

#include "common/config_values.h"
#include "common/file_io.h"

namespace relaypro {
namespace {

int64_t unixSeconds(std::chrono::system_clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

int64_t hourOf(std::chrono::system_clock::time_point t) {
    int64_t s = unixSeconds(t);
    return s >= 0 ? s / 3600 : (s - 3599) / 3600;
}

// Whether the first certificate of a PEM chain names `serverName` (a DNS name or an IP) in its SAN.
bool certificateNames(const std::string& pem, const std::string& serverName) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (cert == nullptr) return false;
    bool named =
        X509_check_ip_asc(cert, serverName.c_str(), 0) == 1 ||
        X509_check_host(cert, serverName.data(), serverName.size(), X509_CHECK_FLAG_NO_WILDCARDS, nullptr) == 1;
    X509_free(cert);
    return named;
}

}  // namespace

std::optional<std::chrono::system_clock::time_point> certificateNotAfter(const std::string& pem) {
    BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
    X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr);
    BIO_free(bio);
    if (cert == nullptr) return std::nullopt;
    struct tm tm {};
    bool ok = ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) == 1;
    X509_free(cert);
    if (!ok) return std::nullopt;
    return std::chrono::system_clock::from_time_t(timegm(&tm));
}

Trust Trust::adopt(CaBundle ca, const Config& config, TlsMaterial tls) {
    Trust t(std::move(ca), config.serverName);
    t.operatorCertificate_ = !config.certFile.empty();
    t.tlsExpires_ = certificateNotAfter(tls.certificateChainPem).value_or(std::chrono::system_clock::time_point{});
    t.tls_ = std::move(tls);
    t.lastHour_ = hourOf(std::chrono::system_clock::now());
    return t;
}

Result<Trust> Trust::open(const Config& config, const Logger& log, std::optional<TlsMaterial> previous, bool create) {
    bool created = false;
    auto ca = create ? CaBundle::loadOrCreate(config.caBundleFile, created)
                     : CaBundle::load(config.caBundleFile, std::chrono::system_clock::now());
    if (!ca) return ca.error();
    if (created) {
        log.info("CA bundle created",
                 {{"file", config.caBundleFile}, {"fingerprint", ca->fingerprintHex()}, {"notAfter", ca->notAfter()}});
    }
    const auto now = std::chrono::system_clock::now();
    if (ca->expiresAt() - now < kRenewWithin) {
        log.warn("the CA certificate expires soon; replace the CA bundle (Responders then fetch new tokens)",
                 {{"file", config.caBundleFile}, {"notAfter", ca->notAfter()}});
    }
    Trust t(std::move(*ca), config.serverName);
    if (!config.certFile.empty()) {
        auto cert = readFile(config.certFile, 1 << 20);
        if (!cert) return Error{"httpsProxy.certFile: " + cert.error().describe()};
        auto key = readFile(config.keyFile, 1 << 20);
        if (!key) return Error{"httpsProxy.keyFile: " + key.error().describe()};
        t.tls_ = TlsMaterial{std::move(*cert), std::move(*key)};
        t.operatorCertificate_ = true;
    } else if (previous && certificateNotAfter(previous->certificateChainPem) &&
               certificateNames(previous->certificateChainPem, config.serverName)) {
        // The certificate in use stays, unless serverName changed (an upgrade applies it: issue 18).
        t.tls_ = std::move(*previous);
        t.tlsExpires_ = *certificateNotAfter(t.tls_.certificateChainPem);
    } else if (auto s = t.issue(log); !s) {
        return s.error();
    }
    t.lastHour_ = hourOf(now);
    return t;
}

Status Trust::issue(const Logger& log) {
    auto m = ca_.issueServerCertificate(serverName_, kCertificateLifetime);
    if (!m) return Error{"server certificate: " + m.error().message};
    sodium_memzero(tls_.privateKeyPem.data(), tls_.privateKeyPem.size());
    tls_ = std::move(*m);
    tlsExpires_ = certificateNotAfter(tls_.certificateChainPem).value_or(std::chrono::system_clock::time_point{});
    log.info("server certificate issued", {{"serverName", serverName_}, {"notAfter", formatRfc3339(tlsExpires_)}});
    return {};
}

WorkerSecrets Trust::secrets(std::chrono::system_clock::time_point now) const {
    WorkerSecrets s;
    s.tls = tls_;
    const int64_t hour = hourOf(now);
    s.ticketKeys = {ca_.ticketKey(hour), ca_.ticketKey(hour - 1)};
    const int64_t day = utcDay(unixSeconds(now));
    s.masters = {DayMaster{day, ca_.tokenMaster(day)}, DayMaster{day - 1, ca_.tokenMaster(day - 1)}};
    return s;
}

bool Trust::refresh(std::chrono::system_clock::time_point now, const Logger& log) {
    bool changed = false;
    if (!operatorCertificate_ && tlsExpires_ - now < kRenewWithin) {
        if (auto s = issue(log); s) {
            changed = true;
        } else {
            log.error("cannot renew the server certificate; serving on with the current one",
                      {{"error", s.error().message}, {"notAfter", formatRfc3339(tlsExpires_)}});
        }
    }
    const int64_t hour = hourOf(now);
    if (hour != lastHour_) {
        lastHour_ = hour;
        changed = true;
    }
    return changed;
}

std::chrono::milliseconds Trust::untilNextCheck(std::chrono::system_clock::time_point now) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
    int64_t toBoundary = 3'600'000 - (ms % 3'600'000 + 3'600'000) % 3'600'000;
    return std::chrono::milliseconds(std::min<int64_t>(toBoundary, 60'000));
}

}  // namespace relaypro
