#include "worker/key_store.h"

#include <openssl/core_names.h>
#include <openssl/rand.h>
#include <openssl/tls1.h>
#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace relaypro {
namespace {

constexpr size_t kNameBytes = 16;
constexpr size_t kHmacOffset = 16;
constexpr size_t kAesOffset = 48;
constexpr unsigned int kTls13 = 0x0304;

int storeIndex() {
    static const int index = SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

std::string cacheId(int64_t day, std::string_view responderId) {
    std::string id = std::to_string(day);
    id.push_back('\n');
    id.append(responderId);
    return id;
}

}  // namespace

KeyStore::KeyStore(size_t cacheEntries) : capacity_(std::max<size_t>(1, cacheEntries)) {}

KeyStore::~KeyStore() {
    clearCache();
    for (auto& t : tickets_) sodium_memzero(t.bytes.data(), t.bytes.size());
    for (auto& m : masters_) sodium_memzero(m.key.data(), m.key.size());
}

void KeyStore::update(const std::vector<TicketKey>& ticketKeys, const std::vector<DayMaster>& masters) {
    for (auto& t : tickets_) sodium_memzero(t.bytes.data(), t.bytes.size());
    for (auto& m : masters_) sodium_memzero(m.key.data(), m.key.size());
    tickets_ = ticketKeys;
    masters_ = masters;
    evictDaysNotHeld();
}

void KeyStore::clearCache() {
    for (auto& e : lru_) sodium_memzero(e.key.data(), e.key.size());
    index_.clear();
    lru_.clear();
}

void KeyStore::evictDaysNotHeld() {
    for (auto it = lru_.begin(); it != lru_.end();) {
        int64_t day = std::stoll(it->id.substr(0, it->id.find('\n')));
        bool held = std::any_of(masters_.begin(), masters_.end(), [day](const DayMaster& m) { return m.day == day; });
        if (held) {
            ++it;
            continue;
        }
        index_.erase(it->id);
        sodium_memzero(it->key.data(), it->key.size());
        it = lru_.erase(it);
    }
}

std::optional<TokenKey> KeyStore::masterFor(int64_t day) const {
    for (const auto& m : masters_) {
        if (m.day == day) return m.key;
    }
    return std::nullopt;
}

std::optional<TokenKey> KeyStore::cachedKey(int64_t day, std::string_view responderId) {
    auto it = index_.find(cacheId(day, responderId));
    if (it == index_.end()) return std::nullopt;
    ++hits_;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->key;
}

std::optional<TokenKey> KeyStore::derivedKey(int64_t day, std::string_view responderId) {
    auto master = masterFor(day);
    if (!master) return std::nullopt;
    ++misses_;
    TokenKey key = responderKey(*master, responderId);
    sodium_memzero(master->data(), master->size());
    return key;
}

void KeyStore::remember(int64_t day, std::string_view responderId, const TokenKey& key) {
    std::string id = cacheId(day, responderId);
    if (index_.count(id) != 0 || !masterFor(day)) return;
    if (lru_.size() >= capacity_) {
        auto& last = lru_.back();
        index_.erase(last.id);
        sodium_memzero(last.key.data(), last.key.size());
        lru_.pop_back();
    }
    lru_.push_front(Entry{std::move(id), key});
    index_.emplace(lru_.front().id, lru_.begin());
}

std::optional<TokenKey> KeyStore::responderKeyFor(int64_t day, std::string_view responderId) {
    if (auto k = cachedKey(day, responderId)) return k;
    auto k = derivedKey(day, responderId);
    if (k) remember(day, responderId, *k);
    return k;
}

void KeyStore::attach(SSL_CTX* ctx) {
    SSL_CTX_set_ex_data(ctx, storeIndex(), this);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, &KeyStore::ticketCallback);
    SSL_CTX_set_client_hello_cb(ctx, &KeyStore::clientHelloCallback, nullptr);
    // One ticket per handshake is all a client uses; each costs an encryption and a record.
    SSL_CTX_set_num_tickets(ctx, 1);
    // A ticket outlives its key by at most the hour in which the previous key is still accepted.
    SSL_CTX_set_timeout(ctx, 7200);
}

// Our listener speaks TLS 1.2 and 1.3: a client that offers 1.3 gets it. One that does not gets
// TLS 1.2 without the session ticket extension (protocol.md: no TLS 1.2 tickets).
int KeyStore::clientHelloCallback(SSL* ssl, int*, void*) {
    const unsigned char* ext = nullptr;
    size_t len = 0;
    bool offers13 = false;
    if (SSL_client_hello_get0_ext(ssl, TLSEXT_TYPE_supported_versions, &ext, &len) == 1 && len >= 1) {
        size_t listLen = ext[0];
        for (size_t i = 1; i + 1 < len && i + 1 <= listLen; i += 2) {
            if ((static_cast<unsigned int>(ext[i]) << 8 | ext[i + 1]) == kTls13) offers13 = true;
        }
    }
    if (!offers13) SSL_set_options(ssl, SSL_OP_NO_TICKET);
    return SSL_CLIENT_HELLO_SUCCESS;
}

int KeyStore::ticketCallback(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                             int enc) {
    auto* self = static_cast<KeyStore*>(SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), storeIndex()));
    if (self == nullptr) return 0;
    return self->ticket(ssl, name, iv, cipher, mac, enc);
}

int KeyStore::ticket(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac,
                     int enc) {
    if (SSL_version(ssl) != TLS1_3_VERSION || tickets_.empty()) return 0;  // no ticket; a full handshake
    char digest[] = "SHA256";
    const TicketKey* key = nullptr;
    int result = 1;
    if (enc == 1) {
        key = &tickets_.front();
        if (RAND_bytes(iv, 16) != 1) return -1;
        std::memcpy(name, key->bytes.data(), kNameBytes);
    } else {
        for (size_t i = 0; i < tickets_.size(); ++i) {
            if (CRYPTO_memcmp(name, tickets_[i].bytes.data(), kNameBytes) == 0) {
                key = &tickets_[i];
                // Accept, and always issue a fresh ticket (2): TLS 1.3 tickets are single-use
                // (RFC 8446 C.4), and with 1 OpenSSL sends none after a resumption, so clients that
                // use each ticket once (OpenSSL's do) would alternate full and resumed handshakes.
                result = 2;
                break;
            }
        }
        if (key == nullptr) return 0;
    }
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY,
                                          const_cast<unsigned char*>(key->bytes.data() + kHmacOffset), 32),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_CTX_set_params(mac, params) != 1) return -1;
    const unsigned char* aes = key->bytes.data() + kAesOffset;
    int ok = enc == 1 ? EVP_EncryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, aes, iv)
                      : EVP_DecryptInit_ex(cipher, EVP_aes_256_cbc(), nullptr, aes, iv);
    return ok == 1 ? result : -1;
}

}  // namespace relaypro
