#include "test/support/secrets.h"

#include <mutex>

#include "test/support/net.h"

namespace relaypro::testing {
namespace {

std::mutex mutex;

std::vector<std::string>& noted() {
    // The fixed secrets of the suites: the password (and its Basic encoding), the console
    // simulator's deployment and security tokens, and the Responder credentials it knows.
    static std::vector<std::string> all{kPassword,  base64Of(kUserPass), "dt-Wq83nLp",
                                        "st-9f3k2", "cred-A7hQ",         "cred-B3vN"};
    return all;
}

}  // namespace

std::string basicCredential() {
    return basicAuthorization(kUserPass);
}

void noteSecret(const std::string& secret) {
    if (secret.size() < 6) return;  // too short to tell a leak from a coincidence
    std::lock_guard lock(mutex);
    noted().push_back(secret);
}

std::vector<std::string> secretsIn(std::string_view text) {
    std::lock_guard lock(mutex);
    std::vector<std::string> found;
    for (const auto& s : noted()) {
        if (text.find(s) != std::string_view::npos) found.push_back(s);
    }
    return found;
}

}  // namespace relaypro::testing
