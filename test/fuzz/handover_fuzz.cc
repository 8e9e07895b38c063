// The supervisor's hand-over state (supervisor/handover.h) from arbitrary bytes, as a re-executed
// image reads it: every field checked, and whatever is accepted is written back to the same
// bytes (the format has one spelling). Descriptors 0-2 are open, so states naming them get past
// the descriptor check into the rest.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "supervisor/handover.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    int fd = ::memfd_create("fuzz-handover", MFD_CLOEXEC);
    if (fd < 0) return 0;
    if (size > 0 && ::write(fd, data, size) != static_cast<ssize_t>(size)) {
        ::close(fd);
        return 0;
    }
    auto state = relaypro::readHandover(fd);  // closes fd
    if (!state) return 0;
    auto again = relaypro::writeHandover(*state, "/tmp", state->format);
    if (!again) std::abort();
    std::string bytes(size + 1, '\0');
    ssize_t n = ::pread(*again, bytes.data(), bytes.size(), 0);
    ::close(*again);
    if (n != static_cast<ssize_t>(size) || bytes.compare(0, size, reinterpret_cast<const char*>(data), size) != 0) {
        std::abort();
    }
    return 0;
}
