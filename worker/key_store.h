// A worker's keys: the TLS ticket keys (current issues, previous still accepted) and the token
// masters of today and yesterday, both from the supervisor; and the per-Responder token keys
// derived from those masters on demand, kept in a bounded least-recently-used cache. Every key
// is wiped (sodium_memzero) when it goes; workers are non-dumpable, so no core file holds one.
#pragma once

#include <openssl/evp.h>
#include <openssl/ssl.h>

#include <cstdint>
#include <list>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/token.h"
#include "common/worker_settings.h"

namespace relaypro {

class KeyStore {
public:
    static constexpr size_t kDefaultCacheEntries = 16384;

    explicit KeyStore(size_t cacheEntries = kDefaultCacheEntries);
    ~KeyStore();
    KeyStore(const KeyStore&) = delete;
    KeyStore& operator=(const KeyStore&) = delete;

    // Takes new ticket keys and masters; cached Responder keys of days no longer held go.
    void update(const std::vector<TicketKey>& ticketKeys, const std::vector<DayMaster>& masters);

    // The key for a token of `responderId` issued on `day`, if that day's master is held;
    // derived keys are cached.
    std::optional<TokenKey> responderKeyFor(int64_t day, std::string_view responderId);
    // The same in steps, so that only keys of tokens that verified enter the cache (a flood of
    // made-up kids must not push real Responders out): the cached key, else a derived one.
    std::optional<TokenKey> cachedKey(int64_t day, std::string_view responderId);
    std::optional<TokenKey> derivedKey(int64_t day, std::string_view responderId);
    void remember(int64_t day, std::string_view responderId, const TokenKey& key);
    // Today's master (for issuing), if held.
    [[nodiscard]] std::optional<TokenKey> masterFor(int64_t day) const;

    // Installs the TLS 1.3 ticket callback on `ctx` and refuses TLS 1.2 tickets.
    void attach(SSL_CTX* ctx);

    struct Stats {
        uint64_t hits = 0;
        uint64_t misses = 0;
        size_t entries = 0;
    };
    [[nodiscard]] Stats stats() const { return {hits_, misses_, lru_.size()}; }

private:
    static int ticketCallback(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher,
                              EVP_MAC_CTX* mac, int enc);
    static int clientHelloCallback(SSL* ssl, int* alert, void* arg);
    int ticket(SSL* ssl, unsigned char* name, unsigned char* iv, EVP_CIPHER_CTX* cipher, EVP_MAC_CTX* mac, int enc);
    void evictDaysNotHeld();
    void clearCache();

    struct Entry {
        std::string id;  // "<day>\n<responderId>"
        TokenKey key;
    };
    size_t capacity_;
    std::vector<TicketKey> tickets_;
    std::vector<DayMaster> masters_;
    std::list<Entry> lru_;  // most recent first
    std::unordered_map<std::string_view, std::list<Entry>::iterator> index_;
    uint64_t hits_ = 0, misses_ = 0;
};

}  // namespace relaypro
