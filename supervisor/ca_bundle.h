// The CA bundle: RelayPro's own certificate authority, one PEM file holding an RSA private key
// (PKCS#1, "BEGIN RSA PRIVATE KEY") and its CA certificate. It signs the HTTPS listener's
// certificate, and every other secret is derived from its key (protocol.md): token masters per
// UTC day and TLS ticket keys per hour. Instances that share the file accept each other's tokens
// and resume each other's TLS sessions. Only the supervisor ever holds it.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "common/result.h"
#include "common/token.h"
#include "common/worker_settings.h"

namespace relaypro {

class CaBundle {
public:
    static constexpr int kRsaBits = 3072;
    static constexpr int kValidityDays = 3650;

    ~CaBundle();
    CaBundle(const CaBundle&) = delete;
    CaBundle& operator=(const CaBundle&) = delete;
    CaBundle(CaBundle&&) noexcept;
    CaBundle& operator=(CaBundle&&) noexcept;

    // Reads and checks the bundle at `path`: exactly one PKCS#1 RSA key (at least 2048 bits) and
    // one certificate that is a CA, matches the key, and is valid at `now`. The error names what
    // is wrong and how to fix it.
    static Result<CaBundle> load(const std::string& path, std::chrono::system_clock::time_point now);
    // The same checks on a bundle's text (toPem()), e.g. the one an upgrade hands over.
    static Result<CaBundle> fromPem(const std::string& pem, std::chrono::system_clock::time_point now);
    // A new bundle (RSA 3072, CA certificate valid 10 years), in memory.
    static Result<CaBundle> generate(std::chrono::system_clock::time_point now);
    // Loads `path`, or creates it when it does not exist: written to a temporary file (0600),
    // fsynced, then linked into place so that two processes racing never both win; the loser
    // loads the winner's file. `created` tells which happened.
    static Result<CaBundle> loadOrCreate(const std::string& path, bool& created);

    // The bundle as written: key then certificate, PEM. A secret.
    [[nodiscard]] std::string toPem() const;
    [[nodiscard]] const std::string& certificatePem() const { return certificatePem_; }
    // SHA-256 of the certificate's DER: lower-case hex (the console API), and upper-case
    // colon-separated as `openssl x509 -fingerprint -sha256` prints it.
    [[nodiscard]] std::string fingerprintHex() const;
    [[nodiscard]] std::string fingerprintColons() const;
    [[nodiscard]] std::string subject() const;
    [[nodiscard]] std::string notBefore() const;  // RFC 3339
    [[nodiscard]] std::string notAfter() const;
    [[nodiscard]] std::chrono::system_clock::time_point expiresAt() const;

    // A fresh ECDSA P-256 key and a certificate for `serverName` (DNS or IP subjectAltName)
    // signed by this CA, valid from an hour ago for `lifetime`. The chain is the leaf alone:
    // Responders hold the CA certificate as their trust anchor.
    [[nodiscard]] Result<TlsMaterial> issueServerCertificate(const std::string& serverName,
                                                             std::chrono::hours lifetime) const;

    // HKDF-SHA256 over the DER of the RSA key (PKCS#1), as protocol.md fixes them.
    [[nodiscard]] TokenKey tokenMaster(int64_t day) const;
    [[nodiscard]] TicketKey ticketKey(int64_t hour) const;

private:
    struct Impl;
    explicit CaBundle(std::unique_ptr<Impl> impl);
    static Result<CaBundle> parse(const std::string& text, std::chrono::system_clock::time_point now,
                                  const std::string& where);
    std::unique_ptr<Impl> impl_;
    std::string certificatePem_;
};

}  // namespace relaypro
