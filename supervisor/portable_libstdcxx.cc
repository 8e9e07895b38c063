// Only in packaged builds (RELAYPRO_STATIC_LIBSTDCXX): libstdc++ is linked statically so the
// binary does not need GCC 12's GLIBCXX_3.4.30 (RHEL 9 and Ubuntu 22.04 ship older or equal
// libstdc++), but Debian 12's libstdc++.a calls arc4random (std::random_device), which glibc
// has only since 2.36. Defining it here keeps the binary's glibc requirement at 2.34
// (packaging/requirements.sh prints it in CI). Same contract as glibc's: never fails, never
// returns before it has random bits.
#include <sys/random.h>

#include <cerrno>
#include <cstdint>

extern "C" uint32_t arc4random(void) {
    uint32_t value = 0;
    auto* p = reinterpret_cast<unsigned char*>(&value);
    size_t got = 0;
    while (got < sizeof value) {
        ssize_t n = ::getrandom(p + got, sizeof value - got, 0);
        if (n > 0) {
            got += static_cast<size_t>(n);
        } else if (n < 0 && errno != EINTR) {
            __builtin_trap();  // no kernel randomness at all: glibc aborts too
        }
    }
    return value;
}
