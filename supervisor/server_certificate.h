// The HTTPS listener's certificate until the CA bundle exists (the trust issue): the operator's
// httpsProxy.certFile/keyFile, or a self-signed ECDSA P-256 certificate for serverName (a DNS
// or IP subjectAltName), made at start.
#pragma once

#include <chrono>
#include <string>

#include "common/result.h"
#include "common/worker_settings.h"

namespace relaypro {

// A fresh P-256 key and a self-signed certificate for `serverName`, valid `lifetime` from now.
Result<TlsMaterial> makeSelfSignedCertificate(const std::string& serverName, std::chrono::hours lifetime);

// The certificate (chain) and key from the operator's files.
Result<TlsMaterial> loadCertificateFiles(const std::string& certFile, const std::string& keyFile);

}  // namespace relaypro
