#include "common/trust_store.h"

#include <sys/stat.h>

#include <cstdlib>

namespace relaypro {
namespace {

constexpr const char* kBundleFiles[] = {
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem",
    "/etc/ssl/cert.pem",
};
constexpr const char* kHashedFolder = "/etc/ssl/certs";

bool isFile(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

bool isFolder(const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string variable(const char* name) {
    const char* v = std::getenv(name);
    return v == nullptr ? "" : v;
}

}  // namespace

std::string TrustStorePaths::describe() const {
    if (empty()) return "nothing";
    std::string out;
    if (!file.empty()) out = "file " + file;
    if (!dir.empty()) out += std::string(out.empty() ? "" : ", ") + "folder " + dir;
    return out;
}

TrustStorePaths systemTrustStore(const std::string& root) {
    TrustStorePaths p;
    // Each variable replaces its own half only, as in OpenSSL: a file or folder it names that does
    // not exist leaves that half empty (never silently the default).
    if (std::string file = variable("SSL_CERT_FILE"); !file.empty()) {
        if (isFile(file)) p.file = file;
    } else {
        for (const char* candidate : kBundleFiles) {
            if (isFile(root + candidate)) {
                p.file = root + candidate;
                break;
            }
        }
    }
    if (std::string dir = variable("SSL_CERT_DIR"); !dir.empty()) {
        if (isFolder(dir)) p.dir = dir;
    } else if (isFolder(root + kHashedFolder)) {
        p.dir = root + kHashedFolder;
    }
    return p;
}

std::string trustStoreCandidates() {
    std::string out;
    for (const char* candidate : kBundleFiles) out += std::string(out.empty() ? "" : ", ") + candidate;
    return out + ", " + kHashedFolder + "/ (or $SSL_CERT_FILE, $SSL_CERT_DIR)";
}

}  // namespace relaypro
