#include "worker/hash_verifier.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <system_error>

#include "common/password_file.h"

namespace relaypro {

HashVerifier::HashVerifier(Done done) : done_(std::move(done)) {
    randombytes_buf(key_, sizeof key_);
}

Result<std::unique_ptr<HashVerifier>> HashVerifier::create(event_base* base, Done done) {
    std::unique_ptr<HashVerifier> v(new HashVerifier(std::move(done)));
    v->eventFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (v->eventFd_ < 0) return sysError("eventfd");
    v->ev_ = event_new(base, v->eventFd_, EV_READ | EV_PERSIST, &HashVerifier::onDone, v.get());
    if (v->ev_ == nullptr || event_add(v->ev_, nullptr) != 0) return Error{"cannot watch the password-check eventfd"};
    return v;
}

Status HashVerifier::start() {
    if (thread_.joinable()) return {};
    try {
        thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
        return Error{std::string("cannot start the password-check thread: ") + e.what()};
    }
    return {};
}

HashVerifier::~HashVerifier() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
        for (auto& j : queue_) sodium_memzero(j.password.data(), j.password.size());
        queue_.clear();
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
    if (ev_ != nullptr) event_free(ev_);
    if (eventFd_ >= 0) ::close(eventFd_);
    sodium_memzero(key_, sizeof key_);
}

std::string HashVerifier::cacheKey(const std::string& hash, std::string_view password) const {
    unsigned char out[32];
    crypto_generichash_state st;
    crypto_generichash_init(&st, key_, sizeof key_, sizeof out);
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(hash.data()), hash.size() + 1);
    crypto_generichash_update(&st, reinterpret_cast<const unsigned char*>(password.data()), password.size());
    crypto_generichash_final(&st, out, sizeof out);
    return std::string(reinterpret_cast<const char*>(out), sizeof out);
}

bool HashVerifier::cached(const std::string& hash, std::string_view password) {
    auto it = cache_.find(cacheKey(hash, password));
    if (it == cache_.end()) return false;
    if (std::chrono::steady_clock::now() - it->second > kCacheLifetime) {
        cache_.erase(it);
        return false;
    }
    return true;
}

bool HashVerifier::submit(uint64_t ticket, std::string hash, std::string password) {
    {
        std::lock_guard lock(mutex_);
        if (queue_.size() >= kMaxQueued) {
            sodium_memzero(password.data(), password.size());
            return false;
        }
        queue_.push_back(Job{ticket, std::move(hash), std::move(password)});
    }
    wake_.notify_one();
    return true;
}

void HashVerifier::run() {
    std::unique_lock lock(mutex_);
    while (true) {
        wake_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
        if (stopping_) return;
        Job job = std::move(queue_.front());
        queue_.pop_front();
        lock.unlock();
        job.ok = hashedPasswordMatches(job.hash, job.password);
        lock.lock();
        finished_.push_back(std::move(job));
        uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(eventFd_, &one, sizeof one);
    }
}

void HashVerifier::onDone(int fd, short, void* arg) {
    auto* self = static_cast<HashVerifier*>(arg);
    uint64_t count = 0;
    [[maybe_unused]] ssize_t n = ::read(fd, &count, sizeof count);
    std::vector<Job> done;
    {
        std::lock_guard lock(self->mutex_);
        done.swap(self->finished_);
    }
    auto now = std::chrono::steady_clock::now();
    for (auto& j : done) {
        if (j.ok) {
            if (self->cache_.size() >= kMaxCached) self->cache_.clear();
            self->cache_[self->cacheKey(j.hash, j.password)] = now;
        }
        sodium_memzero(j.password.data(), j.password.size());
        self->done_(j.ticket, j.ok);
    }
}

}  // namespace relaypro
