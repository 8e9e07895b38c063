// Checks on PEM material named by the configuration: console CA certificates and the
// operator's server certificate and key. Messages never contain key material.
#pragma once

#include <string>
#include <string_view>

#include "common/result.h"

namespace relaypro {

// One or more "CERTIFICATE" PEM blocks, each a parseable X.509 certificate, and nothing else.
Status validateCertificatesPem(std::string_view pem);

// A certificates input as AIR_CONSOLE_CA_CERT has it (config.md): PEM text, or the path of a
// PEM file (relative to `folder`). The PEM, validated; or why not (the file's error, or the
// validation's).
Result<std::string> certificatesFromInput(std::string_view value, const std::string& folder);

// A PEM certificate (chain) in certPath and the matching private key in keyPath.
Status validateCertificateAndKeyFiles(const std::string& certPath, const std::string& keyPath);

}  // namespace relaypro
