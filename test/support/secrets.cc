#include "test/support/secrets.h"

#include <mutex>
#include <unordered_map>

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
    // One pass over the text however many secrets there are (a soak notes thousands of tokens
    // and writes tens of megabytes of log): each secret is found by its last kTail bytes, which
    // for a token are its random tag, then compared whole.
    constexpr size_t kTail = 12;
    std::unordered_map<std::string_view, std::vector<const std::string*>> byTail;
    std::vector<std::string> found;
    for (const auto& s : noted()) {
        if (s.size() < kTail) {
            if (text.find(s) != std::string_view::npos) found.push_back(s);
        } else {
            byTail[std::string_view(s).substr(s.size() - kTail)].push_back(&s);
        }
    }
    for (size_t end = kTail; !byTail.empty() && end <= text.size(); ++end) {
        auto it = byTail.find(text.substr(end - kTail, kTail));
        if (it == byTail.end()) continue;
        for (const std::string* s : it->second) {
            if (end >= s->size() && text.substr(end - s->size(), s->size()) == *s) found.push_back(*s);
        }
    }
    return found;
}

}  // namespace relaypro::testing
