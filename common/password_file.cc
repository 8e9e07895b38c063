#include "common/password_file.h"

#include <sodium.h>

#include <cstdlib>
#include <cstring>

#include "common/file_io.h"
#include "common/text.h"

namespace relaypro {
namespace {

// Reads "$argon2id$v=19$m=65536,t=3,p=1$salt$hash" parameters; false when malformed.
bool argon2Parameters(std::string_view hash, uint32_t& memoryKiB, uint32_t& iterations, uint32_t& lanes) {
    constexpr std::string_view kPrefix = "$argon2id$v=19$";
    if (!hash.starts_with(kPrefix)) return false;
    std::string_view rest = hash.substr(kPrefix.size());
    size_t end = rest.find('$');
    if (end == std::string_view::npos) return false;
    std::string params(rest.substr(0, end));
    unsigned long m = 0, t = 0, p = 0;
    int consumed = 0;
    if (std::sscanf(params.c_str(), "m=%lu,t=%lu,p=%lu%n", &m, &t, &p, &consumed) != 3 ||
        static_cast<size_t>(consumed) != params.size()) {
        return false;
    }
    if (m == 0 || t == 0 || p == 0 || m > UINT32_MAX || t > UINT32_MAX || p > UINT32_MAX) return false;
    memoryKiB = static_cast<uint32_t>(m);
    iterations = static_cast<uint32_t>(t);
    lanes = static_cast<uint32_t>(p);
    // Salt and hash: two non-empty base64 parts.
    std::string_view tail = rest.substr(end + 1);
    size_t dollar = tail.find('$');
    return dollar != std::string_view::npos && dollar > 0 && dollar + 1 < tail.size() &&
           tail.find('$', dollar + 1) == std::string_view::npos;
}

}  // namespace

Result<PasswordFile> PasswordFile::parse(std::string_view text, std::string_view label) {
    PasswordFile out;
    size_t pos = 0, line = 0;
    auto err = [&](const std::string& msg) {
        return Error{std::string(label) + ":" + std::to_string(line) + ": " + msg};
    };
    if (!isValidUtf8(text)) {
        line = 1;
        return err("the file is not UTF-8");
    }
    while (pos < text.size()) {
        ++line;
        size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos) eol = text.size();
        std::string_view l = text.substr(pos, eol - pos);
        pos = eol + 1;
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        if (trimSpace(l).empty() || trimSpace(l).front() == '#') continue;
        for (char c : l) {
            auto u = static_cast<unsigned char>(c);
            if (u < 0x20 || u == 0x7F) return err("control character in line");
        }
        size_t colon = l.find(':');
        if (colon == std::string_view::npos) return err("expected user:password");
        std::string_view user = l.substr(0, colon);
        std::string_view secret = l.substr(colon + 1);
        if (user.empty()) return err("empty user name");
        if (secret.empty()) return err("empty password for user " + quoted(user));
        if (out.find(user) != nullptr) return err("user " + quoted(user) + " appears twice");
        PasswordEntry e{std::string(user), std::string(secret), false};
        if (secret.starts_with("$argon2")) {
            uint32_t m = 0, t = 0, p = 0;
            if (!argon2Parameters(secret, m, t, p)) {
                return err("the hash of user " + quoted(user) +
                           " is not a valid $argon2id$v=19$m=…,t=…,p=…$…$… string");
            }
            if (m > kMaxArgon2MemoryKiB || t > kMaxArgon2Iterations) {
                return err("the hash of user " + quoted(user) + " costs m=" + std::to_string(m) +
                           " KiB, t=" + std::to_string(t) + "; at most m=65536 (64 MiB) and t=3 are allowed");
            }
            e.hashed = true;
        }
        out.entries_.push_back(std::move(e));
    }
    out.makeDecoy();
    return out;
}

void PasswordFile::makeDecoy() {
    decoy_.clear();
    std::string_view costliest;
    uint64_t cost = 0;
    for (const auto& e : entries_) {
        uint32_t m = 0, t = 0, p = 0;
        if (!e.hashed || !argon2Parameters(e.secret, m, t, p)) continue;
        if (uint64_t c = uint64_t{m} * t; c > cost) {
            cost = c;
            costliest = e.secret;
        }
    }
    if (costliest.empty()) return;
    // "$argon2id$v=19$m=…,t=…,p=…$" as it is, then a fresh salt (16 bytes) and hash (32 bytes).
    size_t params = costliest.find('$', std::string_view("$argon2id$v=19$").size());
    unsigned char salt[16], hash[32];
    randombytes_buf(salt, sizeof salt);
    randombytes_buf(hash, sizeof hash);
    auto b64 = [](const unsigned char* bytes, size_t n) {
        std::string out(sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL_NO_PADDING), '\0');
        sodium_bin2base64(out.data(), out.size(), bytes, n, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
        out.resize(std::strlen(out.c_str()));
        return out;
    };
    decoy_ = std::string(costliest.substr(0, params + 1)) + b64(salt, sizeof salt) + "$" + b64(hash, sizeof hash);
}

Result<PasswordFile> PasswordFile::load(const std::string& path) {
    auto text = readFile(path, kMaxPasswordFileBytes);
    if (!text) return Error{"password file: " + text.error().describe()};
    return parse(*text, path);
}

const PasswordEntry* PasswordFile::find(std::string_view user) const {
    for (const auto& e : entries_) {
        if (e.user == user) return &e;
    }
    return nullptr;
}

bool plainPasswordMatches(std::string_view stored, std::string_view presented) {
    // Hash both sides to fixed-size digests, then compare those in constant time: neither the
    // content nor the length of the stored password shows in the timing.
    unsigned char a[crypto_generichash_BYTES], b[crypto_generichash_BYTES];
    crypto_generichash(a, sizeof a, reinterpret_cast<const unsigned char*>(stored.data()), stored.size(), nullptr, 0);
    crypto_generichash(b, sizeof b, reinterpret_cast<const unsigned char*>(presented.data()), presented.size(), nullptr,
                       0);
    return sodium_memcmp(a, b, sizeof a) == 0;
}

bool hashedPasswordMatches(const std::string& hash, std::string_view presented) {
    return crypto_pwhash_str_verify(hash.c_str(), presented.data(), presented.size()) == 0;
}

bool decodeBasicCredential(std::string_view base64, std::string& user, std::string& password) {
    if (base64.empty() || base64.size() > 4096 || !isBase64Alphabet(base64, false, true)) return false;
    std::string decoded(base64.size(), '\0');
    size_t len = 0;
    if (sodium_base642bin(reinterpret_cast<unsigned char*>(decoded.data()), decoded.size(), base64.data(),
                          base64.size(), nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0) {
        return false;
    }
    decoded.resize(len);
    size_t colon = decoded.find(':');
    if (colon == std::string::npos || colon == 0 || !isValidUtf8(decoded)) return false;
    user = decoded.substr(0, colon);
    password = decoded.substr(colon + 1);
    sodium_memzero(decoded.data(), decoded.size());
    return true;
}

}  // namespace relaypro
