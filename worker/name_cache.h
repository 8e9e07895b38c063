// DNS answers for the few names a worker dials: the console's, the migration console's and the
// upstream proxy's (the target policy allows no other). Answers are kept for their TTL (at
// least 1 s, at most an hour; 5 s for a failed lookup, or for one of whose two questions went
// unanswered), and a lookup already under way is joined
// rather than asked again, so that clients cannot make the relay ask its resolver at will.
// The A and AAAA questions go out together through evdns, with its search list and 0x20 case
// randomisation.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

struct evdns_base;

namespace relaypro {

class NameCache {
public:
    struct Answer {
        std::vector<sockaddr_storage> addresses;  // IPv4 first, then IPv6; port 0
        std::string error;                        // why there is none (empty when there are some)
    };
    using Done = std::function<void(const Answer&)>;
    using Clock = std::chrono::steady_clock;
    static constexpr std::chrono::seconds kMinTtl{1};
    static constexpr std::chrono::seconds kMaxTtl{3600};
    static constexpr std::chrono::seconds kFailureTtl{5};

    explicit NameCache(evdns_base* dns) : dns_(dns) {}
    // Frees what is pending without calling back: only right before the evdns base is freed
    // without failing its requests (no callback can come after).
    ~NameCache();
    NameCache(const NameCache&) = delete;
    NameCache& operator=(const NameCache&) = delete;

    // Calls `done` with the answer: at once (inside this call) when it is cached, else when the
    // lookup ends. The id cancels the call (cancel()); 0 when it was answered at once.
    uint64_t lookup(const std::string& name, Done done);
    void cancel(uint64_t id);
    // The resolver changed: forget every answer (lookups under way still answer their callers).
    void clear() { answers_.clear(); }
    [[nodiscard]] size_t cached() const { return answers_.size(); }

private:
    struct Cached {
        Answer answer;
        Clock::time_point expires;
    };
    struct Pending;
    struct Question {  // one of a Pending's two (evdns' callback argument)
        Pending* pending;
        bool ipv6;
    };
    struct Pending {
        NameCache* cache;
        std::string name;
        std::string key;  // the name in lower case: answers_ and pending_ are keyed by it
        Question questions[2];
        int outstanding = 2;
        std::vector<sockaddr_storage> v4, v6;
        int ttl = -1;  // the smallest of the answers that had addresses
        int v4Error = 0;
        bool unsure = false;  // a question went unanswered: keep the answer as briefly as a failure
        std::vector<std::pair<uint64_t, Done>> waiters;
    };
    static void onAnswer(int result, char type, int count, int ttl, void* addresses, void* arg);
    void finished(Pending* p);

    evdns_base* dns_;
    std::map<std::string, Cached> answers_;
    std::map<std::string, std::unique_ptr<Pending>> pending_;
    uint64_t nextId_ = 1;
};

}  // namespace relaypro
