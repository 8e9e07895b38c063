// What the supervisor hands workers to serve securely, and keeps fresh: the CA bundle (loaded or
// created), the HTTPS listener's certificate (issued by the CA for serverName and renewed before
// it expires, or the operator's files), and the hour's ticket keys and the day's token masters
// derived from the CA key (protocol.md). The CA key itself never leaves this object.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/config.h"
#include "common/log_record.h"
#include "common/result.h"
#include "common/worker_settings.h"
#include "supervisor/ca_bundle.h"

namespace relaypro {

class Trust {
public:
    // An issued certificate lives 90 days and is replaced when less than 30 are left.
    static constexpr std::chrono::hours kCertificateLifetime{24 * 90};
    static constexpr std::chrono::hours kRenewWithin{24 * 30};

    // Loads or creates the CA bundle (config.caBundleFile), then loads the operator's
    // certificate (httpsProxy.certFile/keyFile) or adopts `previous` (an upgrade hands over the
    // certificate in use) when it names serverName, or issues one.
    // `create` false (an upgrade, a reload): a missing bundle is an error, never a new CA.
    static Result<Trust> open(const Config& config, const Logger& log, std::optional<TlsMaterial> previous = {},
                              bool create = true);
    // What a previous supervisor image ran with, as it was (an upgrade's take-over): its CA and
    // the certificate in use, whatever the files say now.
    static Trust adopt(CaBundle ca, const Config& config, TlsMaterial tls);

    [[nodiscard]] const CaBundle& ca() const { return ca_; }
    [[nodiscard]] const TlsMaterial& tls() const { return tls_; }
    [[nodiscard]] bool operatorCertificate() const { return operatorCertificate_; }

    // What workers get at `now`: the certificate, the current and previous hour's ticket keys,
    // today's and yesterday's token masters.
    [[nodiscard]] WorkerSecrets secrets(std::chrono::system_clock::time_point now) const;

    // Renews the issued certificate when it is due. True when secrets(now) differs from what
    // the last call saw (a new hour, day or certificate): the caller pushes it to the workers.
    bool refresh(std::chrono::system_clock::time_point now, const Logger& log);

    // How long until the next hour boundary (ticket keys and, at midnight, masters change),
    // at most a minute so that a clock step is noticed.
    static std::chrono::milliseconds untilNextCheck(std::chrono::system_clock::time_point now);

private:
    Trust(CaBundle ca, std::string serverName) : ca_(std::move(ca)), serverName_(std::move(serverName)) {}
    Status issue(const Logger& log);

    CaBundle ca_;
    std::string serverName_;
    TlsMaterial tls_;
    std::chrono::system_clock::time_point tlsExpires_{};
    bool operatorCertificate_ = false;
    int64_t lastHour_ = -1;
};

// Validity end of the first certificate in a PEM chain.
std::optional<std::chrono::system_clock::time_point> certificateNotAfter(const std::string& pem);

}  // namespace relaypro
