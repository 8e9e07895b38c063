#include "worker/name_cache.h"

#include <event2/dns.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstring>

#include "common/text.h"

namespace relaypro {

NameCache::~NameCache() {
    // The evdns base is freed next without failing its requests: none of them calls back.
    pending_.clear();
}

uint64_t NameCache::lookup(const std::string& name, Done done) {
    const std::string key = toLower(name);
    if (auto it = answers_.find(key); it != answers_.end()) {
        if (Clock::now() < it->second.expires) {
            done(it->second.answer);
            return 0;
        }
        answers_.erase(it);
    }
    const uint64_t id = nextId_++;
    if (auto it = pending_.find(key); it != pending_.end()) {
        it->second->waiters.emplace_back(id, std::move(done));  // asked already: wait for that answer
        return id;
    }
    auto owned = std::make_unique<Pending>();
    Pending* p = owned.get();
    p->cache = this;
    p->name = name;
    p->key = key;
    p->questions[0] = Question{p, false};
    p->questions[1] = Question{p, true};
    p->waiters.emplace_back(id, std::move(done));
    pending_.emplace(key, std::move(owned));
    // evdns always calls back from the loop, never inside these calls; a question it cannot even
    // ask (a name too long) gets no callback and counts as failed here.
    for (int i = 0; i < 2; ++i) {
        const evdns_request* asked =
            i == 0 ? evdns_base_resolve_ipv4(dns_, name.c_str(), 0, &NameCache::onAnswer, &p->questions[0])
                   : evdns_base_resolve_ipv6(dns_, name.c_str(), 0, &NameCache::onAnswer, &p->questions[1]);
        if (asked == nullptr) {
            if (i == 0) p->v4Error = DNS_ERR_FORMAT;
            p->unsure = true;
            --p->outstanding;
        }
    }
    if (p->outstanding == 0) finished(p);  // calls back from inside lookup(), as a cached answer does
    return id;
}

void NameCache::cancel(uint64_t id) {
    if (id == 0) return;
    for (auto& [key, p] : pending_) {
        auto& w = p->waiters;
        w.erase(std::remove_if(w.begin(), w.end(), [id](const auto& e) { return e.first == id; }), w.end());
    }
}

void NameCache::onAnswer(int result, char type, int count, int ttl, void* addresses, void* arg) {
    auto* q = static_cast<Question*>(arg);
    Pending* p = q->pending;
    if (result == DNS_ERR_NONE && count > 0 && addresses != nullptr) {
        for (int i = 0; i < count; ++i) {
            sockaddr_storage a{};
            if (type == DNS_IPv4_A && !q->ipv6) {
                auto* v4 = reinterpret_cast<sockaddr_in*>(&a);
                v4->sin_family = AF_INET;
                std::memcpy(&v4->sin_addr, static_cast<const char*>(addresses) + 4 * i, 4);
                p->v4.push_back(a);
            } else if (type == DNS_IPv6_AAAA && q->ipv6) {
                auto* v6 = reinterpret_cast<sockaddr_in6*>(&a);
                v6->sin6_family = AF_INET6;
                std::memcpy(&v6->sin6_addr, static_cast<const char*>(addresses) + 16 * i, 16);
                p->v6.push_back(a);
            }
        }
        p->ttl = p->ttl < 0 ? ttl : std::min(p->ttl, ttl);
    } else {
        if (!q->ipv6) p->v4Error = result == DNS_ERR_NONE ? DNS_ERR_NODATA : result;
        // A question that went unanswered (timeout, server failure, refused) says nothing about
        // the name: whatever the other one found is kept only as long as a failure is.
        if (result != DNS_ERR_NONE && result != DNS_ERR_NOTEXIST && result != DNS_ERR_NODATA) p->unsure = true;
    }
    if (--p->outstanding == 0) p->cache->finished(p);
}

void NameCache::finished(Pending* p) {
    const std::string key = p->key;
    auto owned = std::move(pending_[key]);
    pending_.erase(key);
    Cached c;
    c.answer.addresses = std::move(p->v4);
    c.answer.addresses.insert(c.answer.addresses.end(), p->v6.begin(), p->v6.end());
    std::chrono::seconds ttl = kFailureTtl;
    if (c.answer.addresses.empty()) {
        c.answer.error = std::string("DNS lookup of ") + p->name +
                         " failed: " + (p->v4Error != 0 ? evdns_err_to_string(p->v4Error) : "no address");
    } else if (!p->unsure) {
        ttl = std::clamp<std::chrono::seconds>(std::chrono::seconds(std::max(p->ttl, 0)), kMinTtl, kMaxTtl);
    }
    c.expires = Clock::now() + ttl;
    answers_[key] = c;
    for (auto& [id, done] : owned->waiters) done(c.answer);
}

}  // namespace relaypro
