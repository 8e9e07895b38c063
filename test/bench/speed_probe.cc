// How fast this machine's core runs, now: for the overload bench (run-lifecycle.sh), whose 20 s
// steps on this VM took from 358 to 474 µs of the relay's CPU per tunnel in three runs at the same
// offered load (2×), with nothing else changed (BENCHMARKS.md). Every 50 ms the probe does one
// fixed unit of work (a xorshift walk over a 256 KiB table, a few hundred µs) and prints the CPU
// time it took; a step's median against the run's says how much faster or slower the core was
// then, and the report scales the goodput of the steps where the relay used its whole share by it.
// The report also says how well that tracks the relay (the two's correlation among runs of the
// same load) and whether the load beside it moves it (its median by factor).
//
//   speed_probe --seconds S     prints "UNIX-TIME MICROSECONDS-OF-CPU" per unit, for S seconds
#include <signal.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

double clockSeconds(clockid_t which) {
    timespec t{};
    clock_gettime(which, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

}  // namespace

int main(int argc, char** argv) {
    char* end = nullptr;
    errno = 0;
    const long seconds = argc == 3 && std::strcmp(argv[1], "--seconds") == 0 ? std::strtol(argv[2], &end, 10) : -1;
    if (seconds <= 0 || seconds > 86400 || errno != 0 || end == nullptr || *end != '\0') {
        std::fprintf(stderr, "usage: speed_probe --seconds S (1 to 86400)\n");
        return 2;
    }
    // Ends with the script that started it, however that ends (it runs for as long as it is told).
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    const pid_t parent = getppid();
    static uint64_t table[32768];
    for (uint64_t i = 0; i < 32768; ++i) table[i] = i * 0x9E3779B97F4A7C15ull;
    uint64_t x = 88172645463325252ull, sum = 0;
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    const double until = clockSeconds(CLOCK_MONOTONIC) + static_cast<double>(seconds);
    while (clockSeconds(CLOCK_MONOTONIC) < until && getppid() == parent) {
        const double before = clockSeconds(CLOCK_THREAD_CPUTIME_ID);
        for (int i = 0; i < 200000; ++i) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            sum += table[x & 32767] * x;
            table[(x >> 20) & 32767] ^= sum;
        }
        const double spent = clockSeconds(CLOCK_THREAD_CPUTIME_ID) - before;
        std::printf("%.3f %.1f\n", clockSeconds(CLOCK_REALTIME), spent * 1e6);
        usleep(50000);
    }
    static volatile uint64_t sink;
    sink = sum;  // (so that the work is not optimised away)
    return 0;
}
