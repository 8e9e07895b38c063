// The JOSE pieces RelayPro's tokens need, and nothing more (spec/protocol.md, "Token format"):
// unpadded base64url, HKDF-SHA256 (RFC 5869), and compact JWE (RFC 7516) with "alg":"dir" and
// AES-GCM content encryption. Decoding is strict: one canonical encoding of every part.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/result.h"

namespace relaypro {

std::string base64UrlEncode(std::string_view bytes);
// Unpadded URL-safe base64 only; padding, other characters or non-zero trailing bits fail.
std::optional<std::string> base64UrlDecode(std::string_view text);

// HKDF-SHA256 (RFC 5869): extract with `salt`, expand with `info` into `out`.
Status hkdfSha256(std::string_view ikm, std::string_view salt, std::string_view info, std::span<unsigned char> out);

// The five parts of a compact JWE, decoded.
struct CompactJwe {
    std::string protectedB64;  // as sent: it is the AAD
    std::string header;        // decoded protected header (JSON text)
    std::string encryptedKey;  // empty for "dir"
    std::string iv;
    std::string ciphertext;
    std::string tag;
};

// Splits and decodes; fails on anything but five parts of canonical base64url within `maxBytes`.
Result<CompactJwe> parseCompactJwe(std::string_view compact, size_t maxBytes);

// AES-GCM with a 16- or 32-byte key (A128GCM / A256GCM), 12-byte IV, 16-byte tag.
Result<std::string> aesGcmEncrypt(std::string_view key, std::string_view iv, std::string_view aad,
                                  std::string_view plaintext, std::string& tag);
Result<std::string> aesGcmDecrypt(std::string_view key, std::string_view iv, std::string_view aad,
                                  std::string_view ciphertext, std::string_view tag);

// Decrypts a compact JWE with "alg":"dir" and "enc" A128GCM or A256GCM matching the key's
// length. Anything else (another alg, a "zip" or "crit" member, an encrypted key, a wrong IV or
// tag length, a tag that does not verify) fails. Returns the plaintext.
Result<std::string> decryptCompactDir(std::string_view compact, std::string_view key, size_t maxBytes);

// A compact JWE with "alg":"dir": `protectedHeaderJson` is used byte for byte.
Result<std::string> encryptCompactDir(std::string_view protectedHeaderJson, std::string_view key, std::string_view iv,
                                      std::string_view plaintext);

}  // namespace relaypro
