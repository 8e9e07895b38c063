#include "common/jose.h"

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <sodium.h>

#include <array>
#include <cstring>
#include <memory>

#include "common/text.h"

namespace relaypro {
namespace {

struct CipherCtxFree {
    void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

// Fetched once: OpenSSL 3's EVP_aes_*_gcm() would look the implementation up again (a locked
// property query) on every initialisation.
const EVP_CIPHER* gcmFor(std::string_view key) {
    static EVP_CIPHER* const aes128 = EVP_CIPHER_fetch(nullptr, "AES-128-GCM", nullptr);
    static EVP_CIPHER* const aes256 = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
    if (key.size() == 16) return aes128;
    if (key.size() == 32) return aes256;
    return nullptr;
}

// One context per thread, cipher and direction, set up once; each use only loads a key and an
// IV. (The last key's schedule stays in the context, as the key itself stays in the key cache.)
EVP_CIPHER_CTX* gcmContext(const EVP_CIPHER* cipher, bool encrypt) {
    using Ctx = std::unique_ptr<EVP_CIPHER_CTX, CipherCtxFree>;
    thread_local Ctx contexts[2][2];
    Ctx& slot = contexts[EVP_CIPHER_get_key_length(cipher) == 32 ? 1 : 0][encrypt ? 1 : 0];
    if (!slot) {
        Ctx ctx(EVP_CIPHER_CTX_new());
        if (!ctx || EVP_CipherInit_ex(ctx.get(), cipher, nullptr, nullptr, nullptr, encrypt ? 1 : 0) != 1) {
            ERR_clear_error();
            return nullptr;
        }
        slot = std::move(ctx);
    }
    return slot.get();
}

// base64url digit values; 0xFF for every byte outside the alphabet.
constexpr std::array<unsigned char, 256> kBase64UrlValues = [] {
    std::array<unsigned char, 256> t{};
    t.fill(0xFF);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    for (unsigned char i = 0; i < 64; ++i) t[static_cast<unsigned char>(alphabet[i])] = i;
    return t;
}();

const unsigned char* bytes(std::string_view s) {
    return reinterpret_cast<const unsigned char*>(s.data());
}

}  // namespace

std::string base64UrlEncode(std::string_view in) {
    std::string out(sodium_base64_ENCODED_LEN(in.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING), '\0');
    sodium_bin2base64(out.data(), out.size(), bytes(in), in.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    out.resize(out.size() - 1);  // the terminating NUL
    return out;
}

// Table-driven: four digits to three bytes. A lone trailing digit, a byte outside the alphabet or
// non-zero bits left over in the last digit (a second spelling of the same bytes) fail.
std::optional<std::string> base64UrlDecode(std::string_view text) {
    const size_t tail = text.size() % 4;
    if (tail == 1) return std::nullopt;
    std::string out(text.size() / 4 * 3 + (tail == 0 ? 0 : tail - 1), '\0');
    const auto* in = reinterpret_cast<const unsigned char*>(text.data());
    auto* o = reinterpret_cast<unsigned char*>(out.data());
    unsigned invalid = 0;
    size_t i = 0;
    for (; i + 4 <= text.size(); i += 4, o += 3) {
        const unsigned a = kBase64UrlValues[in[i]], b = kBase64UrlValues[in[i + 1]], c = kBase64UrlValues[in[i + 2]],
                       d = kBase64UrlValues[in[i + 3]];
        invalid |= a | b | c | d;
        const unsigned v = a << 18 | b << 12 | c << 6 | d;
        o[0] = static_cast<unsigned char>(v >> 16);
        o[1] = static_cast<unsigned char>(v >> 8);
        o[2] = static_cast<unsigned char>(v);
    }
    unsigned leftover = 0;
    if (tail != 0) {
        const unsigned a = kBase64UrlValues[in[i]], b = kBase64UrlValues[in[i + 1]],
                       c = tail == 3 ? kBase64UrlValues[in[i + 2]] : 0;
        invalid |= a | b | c;
        const unsigned v = a << 18 | b << 12 | c << 6;
        o[0] = static_cast<unsigned char>(v >> 16);
        if (tail == 3) o[1] = static_cast<unsigned char>(v >> 8);
        leftover = tail == 2 ? (v & 0xFFFF) : (v & 0xFF);  // the bits no output byte holds
    }
    if ((invalid & 0xC0) != 0 || leftover != 0) return std::nullopt;  // > 63: the 0xFF marker
    return out;
}

Status hkdfSha256(std::string_view ikm, std::string_view salt, std::string_view info, std::span<unsigned char> out) {
    static EVP_KDF* const kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);  // once: fetching takes a lock
    if (kdf == nullptr) return Error{"HKDF is not available"};
    EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
    if (ctx == nullptr) return Error{"HKDF context"};
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<char*>(ikm.data()), ikm.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<char*>(salt.data()), salt.size()),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, const_cast<char*>(info.data()), info.size()),
        OSSL_PARAM_construct_end(),
    };
    int ok = EVP_KDF_derive(ctx, out.data(), out.size(), params);
    EVP_KDF_CTX_free(ctx);
    if (ok != 1) {
        ERR_clear_error();
        return Error{"HKDF derivation failed"};
    }
    return {};
}

Result<CompactJwe> parseCompactJwe(std::string_view compact, size_t maxBytes) {
    if (compact.size() > maxBytes) return Error{"token too long"};
    std::string_view parts[5];
    size_t start = 0;
    for (int i = 0; i < 5; ++i) {
        size_t dot = compact.find('.', start);
        if (i < 4 && dot == std::string_view::npos) return Error{"not five parts"};
        if (i == 4 && dot != std::string_view::npos) return Error{"more than five parts"};
        parts[i] = compact.substr(start, i < 4 ? dot - start : std::string_view::npos);
        start = dot + 1;
    }
    CompactJwe j;
    j.protectedB64 = std::string(parts[0]);
    auto header = base64UrlDecode(parts[0]);
    auto key = base64UrlDecode(parts[1]);
    auto iv = base64UrlDecode(parts[2]);
    auto ciphertext = base64UrlDecode(parts[3]);
    auto tag = base64UrlDecode(parts[4]);
    if (!header || !key || !iv || !ciphertext || !tag || header->empty()) return Error{"malformed base64url"};
    j.header = std::move(*header);
    j.encryptedKey = std::move(*key);
    j.iv = std::move(*iv);
    j.ciphertext = std::move(*ciphertext);
    j.tag = std::move(*tag);
    return j;
}

Result<std::string> aesGcmEncrypt(std::string_view key, std::string_view iv, std::string_view aad,
                                  std::string_view plaintext, std::string& tag) {
    const EVP_CIPHER* cipher = gcmFor(key);
    if (cipher == nullptr || iv.size() != 12) return Error{"AES-GCM needs a 16- or 32-byte key and a 12-byte IV"};
    EVP_CIPHER_CTX* ctx = gcmContext(cipher, true);
    if (ctx == nullptr) return Error{"AES-GCM is not available"};
    std::string out(plaintext.size(), '\0');
    int len = 0, total = 0;
    tag.assign(16, '\0');
    if (EVP_EncryptInit_ex(ctx, nullptr, nullptr, bytes(key), bytes(iv)) != 1 ||
        EVP_EncryptUpdate(ctx, nullptr, &len, bytes(aad), static_cast<int>(aad.size())) != 1 ||
        EVP_EncryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &len, bytes(plaintext),
                          static_cast<int>(plaintext.size())) != 1) {
        ERR_clear_error();
        return Error{"AES-GCM encryption failed"};
    }
    total = len;
    if (EVP_EncryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data()) + total, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, tag.data()) != 1) {
        ERR_clear_error();
        return Error{"AES-GCM encryption failed"};
    }
    out.resize(static_cast<size_t>(total + len));
    return out;
}

Result<std::string> aesGcmDecrypt(std::string_view key, std::string_view iv, std::string_view aad,
                                  std::string_view ciphertext, std::string_view tag) {
    const EVP_CIPHER* cipher = gcmFor(key);
    if (cipher == nullptr || iv.size() != 12 || tag.size() != 16) return Error{"bad AES-GCM parameters"};
    EVP_CIPHER_CTX* ctx = gcmContext(cipher, false);
    if (ctx == nullptr) return Error{"AES-GCM is not available"};
    std::string out(ciphertext.size(), '\0');
    int len = 0, total = 0;
    if (EVP_DecryptInit_ex(ctx, nullptr, nullptr, bytes(key), bytes(iv)) != 1 ||
        EVP_DecryptUpdate(ctx, nullptr, &len, bytes(aad), static_cast<int>(aad.size())) != 1 ||
        EVP_DecryptUpdate(ctx, reinterpret_cast<unsigned char*>(out.data()), &len, bytes(ciphertext),
                          static_cast<int>(ciphertext.size())) != 1) {
        ERR_clear_error();
        return Error{"AES-GCM decryption failed"};
    }
    total = len;
    std::array<unsigned char, 16> tagCopy{};
    std::memcpy(tagCopy.data(), tag.data(), tagCopy.size());
    if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tagCopy.data()) != 1 ||
        EVP_DecryptFinal_ex(ctx, reinterpret_cast<unsigned char*>(out.data()) + total, &len) != 1) {
        ERR_clear_error();
        sodium_memzero(out.data(), out.size());
        return Error{"authentication tag mismatch"};
    }
    out.resize(static_cast<size_t>(total + len));
    return out;
}

Result<std::string> decryptCompactDir(std::string_view compact, std::string_view key, size_t maxBytes) {
    auto jwe = parseCompactJwe(compact, maxBytes);
    if (!jwe) return jwe.error();
    json_error_t err;
    json_t* header = json_loadb(jwe->header.data(), jwe->header.size(), JSON_REJECT_DUPLICATES, &err);
    if (header == nullptr || !json_is_object(header)) {
        json_decref(header);
        return Error{"the protected header is not a JSON object"};
    }
    const char* alg = json_string_value(json_object_get(header, "alg"));
    const char* enc = json_string_value(json_object_get(header, "enc"));
    const bool extension = json_object_get(header, "zip") != nullptr || json_object_get(header, "crit") != nullptr;
    std::string algText = alg != nullptr ? alg : "";
    std::string encText = enc != nullptr ? enc : "";
    json_decref(header);
    if (algText != "dir") return Error{"alg is not dir"};
    if (extension) return Error{"zip and crit are not supported"};
    if (!((encText == "A128GCM" && key.size() == 16) || (encText == "A256GCM" && key.size() == 32)))
        return Error{"enc does not match the key"};
    if (!jwe->encryptedKey.empty()) return Error{"dir carries no encrypted key"};
    if (jwe->iv.size() != 12 || jwe->tag.size() != 16) return Error{"bad IV or tag length"};
    return aesGcmDecrypt(key, jwe->iv, jwe->protectedB64, jwe->ciphertext, jwe->tag);
}

Result<std::string> encryptCompactDir(std::string_view protectedHeaderJson, std::string_view key, std::string_view iv,
                                      std::string_view plaintext) {
    std::string protectedB64 = base64UrlEncode(protectedHeaderJson);
    std::string tag;
    auto ciphertext = aesGcmEncrypt(key, iv, protectedB64, plaintext, tag);
    if (!ciphertext) return ciphertext.error();
    return protectedB64 + ".." + base64UrlEncode(iv) + "." + base64UrlEncode(*ciphertext) + "." + base64UrlEncode(tag);
}

}  // namespace relaypro
