// The portable build only (cmake/Portable.cmake): definitions that keep the binary's glibc
// requirement at the floor (docs/operators-guide.md, "Supported systems") although GCC 12's
// libstdc++.a, linked statically, was built against Debian 12's glibc 2.36.
#include <fcntl.h>
#include <sys/random.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>

// glibc 2.32: libstdc++ skips atomic reference counts while this says the process has one
// thread. 0 ("there may be threads") is always correct; on a glibc that has the variable, the
// program's own copy stays 0 and only costs an uncontended atomic operation where one was saved.
extern "C" {
char __libc_single_threaded = 0;  // NOLINT(bugprone-reserved-identifier): glibc's name
}

namespace {

// `size` random bytes from the kernel: getrandom (Linux 3.17), else /dev/urandom, as glibc does.
// Traps when neither works (glibc aborts too): no caller could go on without them.
void kernelRandom(unsigned char* out, size_t size) {
    size_t got = 0;
    int urandom = -1;
    while (got < size) {
        ssize_t n = urandom < 0 ? ::getrandom(out + got, size - got, 0) : ::read(urandom, out + got, size - got);
        if (n > 0) {
            got += static_cast<size_t>(n);
        } else if (n < 0 && errno == ENOSYS && urandom < 0) {
            urandom = ::open("/dev/urandom", O_RDONLY | O_CLOEXEC | O_NOCTTY);
            if (urandom < 0) __builtin_trap();
        } else if (n == 0 || errno != EINTR) {
            __builtin_trap();
        }
    }
    if (urandom >= 0) ::close(urandom);
}

}  // namespace

// glibc 2.36: std::random_device's default token. Same contract as glibc's: never fails, never
// returns before it has random bits.
extern "C" uint32_t arc4random(void) {
    uint32_t value = 0;
    kernelRandom(reinterpret_cast<unsigned char*>(&value), sizeof value);
    return value;
}
