// Where this system keeps the certificate authorities it trusts, for peers RelayPro checks "as
// the system would": the console when consoleCACert is empty, an https:// proxy on the way to it.
// The packaged binary carries its own OpenSSL, whose compiled-in folder is no distribution's
// (packaging/build-bundle.sh), so the store is looked up here, in the places the distributions
// RelayPro supports keep it (docs/operators-guide.md, "Supported systems").
#pragma once

#include <string>

namespace relaypro {

struct TrustStorePaths {
    std::string file;  // a PEM bundle of every trusted CA; empty when none was found
    std::string dir;   // a folder of hashed certificate names (c_rehash); empty when none
    [[nodiscard]] bool empty() const { return file.empty() && dir.empty(); }
    [[nodiscard]] std::string describe() const;  // for messages: "file F, folder D" or "nothing"
};

// $SSL_CERT_FILE and $SSL_CERT_DIR, each for its own half, when set (OpenSSL's own variables, for
// operators who keep the store elsewhere); otherwise the first bundle file that exists of, in order:
//   /etc/ssl/certs/ca-certificates.crt                  Debian, Ubuntu, Alpine, Arch
//   /etc/pki/tls/certs/ca-bundle.crt                    RHEL, Fedora, Amazon Linux, clones
//   /etc/ssl/ca-bundle.pem                              SLES, openSUSE
//   /etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem   RHEL 7 and later (what the above links to)
//   /etc/ssl/cert.pem                                   Alpine, and others
// and the folder /etc/ssl/certs when it exists. `root` prefixes every path (for tests).
TrustStorePaths systemTrustStore(const std::string& root = "");

// The paths looked at, for the message when nothing was found.
std::string trustStoreCandidates();

}  // namespace relaypro
