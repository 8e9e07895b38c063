// The floor under refusing a connection, for the overload bench (run-lifecycle.sh; BENCHMARKS.md,
// "The floor under refusing"): the least a server can do to turn a TCP connection away once the
// kernel has completed it — accept4, SO_LINGER {1, 0}, close (a reset) — on one epoll loop, with
// nothing else: no event library, no admission, no counters, no log. What it spends per connection
// is what RelayPro's refusal at accept costs at least. On loopback that includes the client's side
// of the reset, which the kernel delivers in the sender's context — as CPU time of the sender's
// task where softirq time is not accounted apart (CONFIG_IRQ_TIME_ACCOUNTING off, as here), in
// which case the relay's CPU share is charged the same way.
//
//   refusal_floor --listen 127.0.0.1:0 [--pause-us N] [--seconds S]
//   prints "listening HOST:PORT", refuses every connection until killed (SIGTERM, SIGINT) or for
//   S seconds, then prints one JSON object: {"refused", "wakeups", "notReset", "cpuSeconds",
//   "usPerRefusal"} (its own CPU, user and system, from getrusage; "wakeups": the batches it
//   found; "notReset": connections whose SO_LINGER failed, closed with a FIN instead).
//   --pause-us N: sleeps N µs after each batch it found, so that connections gather in the
//   accept queue as they do in front of a relay that a CPU quota stops for most of each period
//   (a worker throttled to 15 % of a core in 10 ms periods: 8500).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

volatile sig_atomic_t gStop = 0;

void onSignal(int) {
    gStop = 1;
}

int usage(const char* why) {
    std::fprintf(stderr, "refusal_floor: %s\nusage: refusal_floor --listen HOST:PORT [--pause-us N] [--seconds S]\n",
                 why);
    return 2;
}

bool number(const char* text, long max, long& out) {
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < 0 || v > max) return false;
    out = v;
    return true;
}

double seconds(const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
}

}  // namespace

int main(int argc, char** argv) {
    std::string where;
    long pauseUs = 0, runSeconds = 0;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (i + 1 >= argc) return usage(("missing value for " + a).c_str());
        const char* v = argv[++i];
        if (a == "--listen") {
            where = v;
        } else if (a == "--pause-us") {
            if (!number(v, 1000000, pauseUs)) return usage("--pause-us: 0 to 1000000");
        } else if (a == "--seconds") {
            if (!number(v, 86400, runSeconds)) return usage("--seconds: 0 to 86400");
        } else {
            return usage(("unknown option " + a).c_str());
        }
    }
    const auto colon = where.rfind(':');
    long port = 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    if (colon == std::string::npos || !number(where.c_str() + colon + 1, 65535, port) ||
        inet_pton(AF_INET, where.substr(0, colon).c_str(), &addr.sin_addr) != 1) {
        return usage("--listen IPV4:PORT");
    }
    addr.sin_port = htons(static_cast<uint16_t>(port));
    const int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l < 0) {
        std::fprintf(stderr, "refusal_floor: socket: %s\n", std::strerror(errno));
        return 1;
    }
    const int one = 1;
    setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    socklen_t len = sizeof addr;
    if (bind(l, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(l, 4096) != 0 ||
        getsockname(l, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
        std::fprintf(stderr, "refusal_floor: cannot listen on %s: %s\n", where.c_str(), std::strerror(errno));
        return 1;
    }
    const int ep = epoll_create1(EPOLL_CLOEXEC);
    epoll_event want{};
    want.events = EPOLLIN;
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, l, &want) != 0) {
        std::fprintf(stderr, "refusal_floor: epoll: %s\n", std::strerror(errno));
        return 1;
    }
    // Before "listening": whoever reads that line may stop it at once, and still gets the report.
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGALRM, &sa, nullptr);
    if (runSeconds > 0) alarm(static_cast<unsigned>(runSeconds));
    char host[INET_ADDRSTRLEN] = {};
    inet_ntop(AF_INET, &addr.sin_addr, host, sizeof host);
    std::printf("listening %s:%u\n", host, ntohs(addr.sin_port));
    std::fflush(stdout);

    rusage before{};
    getrusage(RUSAGE_SELF, &before);
    unsigned long long refused = 0, wakeups = 0, notReset = 0;
    while (gStop == 0) {
        epoll_event got{};
        const int ready = epoll_wait(ep, &got, 1, 100);
        if (ready < 0 && errno != EINTR) {
            std::fprintf(stderr, "refusal_floor: epoll_wait: %s\n", std::strerror(errno));
            return 1;
        }
        if (ready <= 0) continue;  // (a signal, or nothing within 100 ms)
        ++wakeups;
        for (;;) {
            const int fd = accept4(l, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0 && (errno == EINTR || errno == ECONNABORTED)) continue;
            if (fd < 0) {
                // Out of descriptors or memory: said once, and a pause, so that it does not spin.
                if (errno != EAGAIN && errno != EWOULDBLOCK) {
                    static bool said = false;
                    if (!said) std::fprintf(stderr, "refusal_floor: accept4: %s\n", std::strerror(errno));
                    said = true;
                    usleep(10000);
                }
                break;
            }
            const linger reset{1, 0};
            // (Without it the close would send a FIN, cheaper than the relay's reset: counted.)
            if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset) != 0) ++notReset;
            close(fd);
            ++refused;
        }
        if (pauseUs > 0) {
            const timespec pause{pauseUs / 1000000, (pauseUs % 1000000) * 1000};
            nanosleep(&pause, nullptr);  // (cut short by a signal: the loop ends)
        }
    }
    rusage after{};
    getrusage(RUSAGE_SELF, &after);
    const double cpu =
        seconds(after.ru_utime) - seconds(before.ru_utime) + seconds(after.ru_stime) - seconds(before.ru_stime);
    std::printf("{\"refused\":%llu,\"wakeups\":%llu,\"notReset\":%llu,\"cpuSeconds\":%.6f,\"usPerRefusal\":%.3f}\n",
                refused, wakeups, notReset, cpu, refused > 0 ? cpu * 1e6 / static_cast<double>(refused) : 0.0);
    return 0;
}
