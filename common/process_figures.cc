#include "common/process_figures.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

namespace relaypro {

ProcessFigures ProcessFigures::open() {
    ProcessFigures f;
    f.statm_.reset(::open("/proc/self/statm", O_RDONLY | O_CLOEXEC));
    f.fdDir_.reset(::open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (DIR* d = ::opendir("/proc/self/fd"); d != nullptr) {
        while (const dirent* e = ::readdir(d)) {
            if (e->d_name[0] != '.') ++f.atOpen_;
        }
        ::closedir(d);
        if (f.atOpen_ > 0) --f.atOpen_;  // the directory's own descriptor, closed now
    }
    return f;
}

std::optional<uint64_t> ProcessFigures::residentBytes() const {
    if (!statm_) return std::nullopt;
    char buf[128];
    ssize_t n = ::pread(statm_.get(), buf, sizeof buf - 1, 0);
    if (n <= 0) return std::nullopt;
    buf[n] = '\0';
    // "size resident shared text lib data dt", in pages.
    char* end = nullptr;
    std::strtoull(buf, &end, 10);
    if (end == buf) return std::nullopt;
    const char* resident = end;
    unsigned long long pages = std::strtoull(resident, &end, 10);
    if (end == resident) return std::nullopt;
    return static_cast<uint64_t>(pages) * static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
}

std::optional<uint64_t> ProcessFigures::descriptors() const {
    struct stat st {};
    if (!fdDir_ || ::fstat(fdDir_.get(), &st) != 0 || st.st_size <= 0) return std::nullopt;
    return static_cast<uint64_t>(st.st_size);
}

}  // namespace relaypro
