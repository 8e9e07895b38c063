// Token micro-benchmark: what one core does per second when verifying Responder tokens with the
// per-Responder key cached (the common case: a Responder reconnects with the same token) and
// uncached (each token from another Responder: HKDF first), and when issuing tokens.
// Usage: bench_token [seconds-per-case, default 2]. Prints one JSON line per case.
#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "common/token.h"
#include "worker/key_store.h"

using namespace relaypro;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int64_t kOrg = 1;

template <typename F>
void measure(const char* name, double seconds, F once) {
    uint64_t n = 0;
    auto start = Clock::now();
    auto until = start + std::chrono::duration<double>(seconds);
    while (Clock::now() < until) {
        for (int i = 0; i < 64; ++i) {
            if (!once(n)) {
                std::fprintf(stderr, "%s: operation %llu failed\n", name, static_cast<unsigned long long>(n));
                std::exit(1);
            }
            ++n;
        }
    }
    double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
    std::printf("{\"case\":\"%s\",\"operations\":%llu,\"seconds\":%.3f,\"perSecond\":%.0f,\"microseconds\":%.2f}\n",
                name, static_cast<unsigned long long>(n), elapsed, static_cast<double>(n) / elapsed,
                elapsed * 1e6 / static_cast<double>(n));
}

}  // namespace

int main(int argc, char** argv) {
    if (sodium_init() < 0) return 1;
    double seconds = argc > 1 ? std::atof(argv[1]) : 2.0;
    const int64_t now =
        std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    const int64_t day = utcDay(now);
    TokenKey master{};
    randombytes_buf(master.data(), master.size());

    // 4096 Responders' tokens.
    std::vector<std::string> tokens;
    for (int i = 0; i < 4096; ++i) {
        auto t = issueToken(master, "responder-" + std::to_string(i), kOrg, now, 3600);
        if (!t) return 1;
        tokens.push_back(*t);
    }

    KeyStore cached(8192);
    cached.update({}, {DayMaster{day, master}});
    auto viaCache = [&](int64_t d, std::string_view id) { return cached.responderKeyFor(d, id); };
    measure("verify, key cached", seconds, [&](uint64_t i) {
        return static_cast<bool>(verifyToken(tokens[i % tokens.size()], viaCache, kOrg, now, 60));
    });

    KeyStore tiny(1);  // every lookup misses: HKDF for each token
    tiny.update({}, {DayMaster{day, master}});
    auto viaTiny = [&](int64_t d, std::string_view id) { return tiny.responderKeyFor(d, id); };
    measure("verify, key derived", seconds, [&](uint64_t i) {
        return static_cast<bool>(verifyToken(tokens[i % tokens.size()], viaTiny, kOrg, now, 60));
    });

    measure("issue", seconds, [&](uint64_t i) {
        return static_cast<bool>(issueToken(master, "responder-" + std::to_string(i % 4096), kOrg, now, 3600));
    });
    std::printf("{\"cacheHits\":%llu,\"cacheMisses\":%llu}\n", static_cast<unsigned long long>(cached.stats().hits),
                static_cast<unsigned long long>(tiny.stats().misses));
    return 0;
}
