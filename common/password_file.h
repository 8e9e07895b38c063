// The testing-only Basic credentials file (spec/protocol.md, "Authentication on CONNECT"):
// `user:password` or `user:$argon2id$…` lines. The supervisor reads it (workers open no files);
// workers check credentials against the parsed entries.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace relaypro {

// argon2id cost cap: a file with a costlier hash is refused at load (m in KiB).
inline constexpr uint32_t kMaxArgon2MemoryKiB = 64 * 1024;
inline constexpr uint32_t kMaxArgon2Iterations = 3;
inline constexpr size_t kMaxPasswordFileBytes = 1 << 20;

struct PasswordEntry {
    std::string user;
    std::string secret;  // the plain password, or the whole "$argon2id$…" string
    bool hashed = false;
};

class PasswordFile {
public:
    // Parses the file's text. `label` prefixes errors ("label:LINE: message"); no message ever
    // contains a password or hash.
    static Result<PasswordFile> parse(std::string_view text, std::string_view label);
    // Reads and parses `path`.
    static Result<PasswordFile> load(const std::string& path);
    // From entries already checked (a worker rebuilding what the supervisor parsed).
    static PasswordFile fromEntries(std::vector<PasswordEntry> entries) {
        PasswordFile f;
        f.entries_ = std::move(entries);
        f.makeDecoy();
        return f;
    }

    [[nodiscard]] const std::vector<PasswordEntry>& entries() const { return entries_; }
    [[nodiscard]] const PasswordEntry* find(std::string_view user) const;
    // What an unknown user's password is checked against, so that the answer takes as long as
    // for a user the file has: an argon2id string with the parameters of the file's costliest
    // hash, a random salt and a random hash that no password matches. Empty when the file has
    // no hashed entry (a plain comparison costs the same for everyone).
    [[nodiscard]] const std::string& decoyHash() const { return decoy_; }

private:
    void makeDecoy();
    std::vector<PasswordEntry> entries_;
    std::string decoy_;
};

// Constant-time comparison of a presented password with a plain entry (length leaks only
// through timing of the length comparison of equal-length buffers: both are hashed first).
bool plainPasswordMatches(std::string_view stored, std::string_view presented);

// argon2id verification (slow by design: never call it on an event loop).
bool hashedPasswordMatches(const std::string& hash, std::string_view presented);

// Splits a Basic credential (the base64 part after "Basic ") into user and password.
// Fails on bad base64, no colon, an empty user, or text that is not UTF-8.
bool decodeBasicCredential(std::string_view base64, std::string& user, std::string& password);

}  // namespace relaypro
