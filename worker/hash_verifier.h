// argon2id password checks off the event loop: one background thread (an argon2id check may
// take 64 MiB and tens of milliseconds), a bounded queue, results handed back to the loop
// through an eventfd. Successful checks are cached under a keyed hash, so a Responder that
// reconnects does not pay again, and the cache never holds a password.
#pragma once

#include <event2/event.h>
#include <sodium.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "common/result.h"

namespace relaypro {

class HashVerifier {
public:
    using Done = std::function<void(uint64_t ticket, bool ok)>;
    static constexpr size_t kMaxQueued = 128;
    static constexpr std::chrono::minutes kCacheLifetime{5};
    static constexpr size_t kMaxCached = 4096;

    static Result<std::unique_ptr<HashVerifier>> create(event_base* base, Done done);
    // Starts the checking thread. Called once the worker is sandboxed: seccomp, Landlock and
    // no_new_privs bind only the thread that sets them and the threads it starts afterwards, so a
    // thread started before would run unconfined in the same address space. Checks submitted
    // before it starts wait for it.
    [[nodiscard]] Status start();
    ~HashVerifier();
    HashVerifier(const HashVerifier&) = delete;
    HashVerifier& operator=(const HashVerifier&) = delete;

    // A cached positive answer for this (hash, password) pair, checked on the loop.
    [[nodiscard]] bool cached(const std::string& hash, std::string_view password);
    // Queues a check; false when the queue is full (the caller answers "busy").
    bool submit(uint64_t ticket, std::string hash, std::string password);

private:
    explicit HashVerifier(Done done);
    struct Job {
        uint64_t ticket;
        std::string hash;
        std::string password;
        bool ok = false;
    };
    void run();
    static void onDone(int fd, short, void* arg);
    std::string cacheKey(const std::string& hash, std::string_view password) const;

    Done done_;
    int eventFd_ = -1;
    event* ev_ = nullptr;
    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<Job> queue_;
    std::vector<Job> finished_;
    bool stopping_ = false;
    std::thread thread_;
    unsigned char key_[crypto_generichash_KEYBYTES];
    std::unordered_map<std::string, std::chrono::steady_clock::time_point> cache_;
};

}  // namespace relaypro
