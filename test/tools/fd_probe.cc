// Stands in for the installed relaypro in tests (RELAYPRO_INSTALLED_BINARY): started as
// `check-config`, it appends the descriptors it was started with to $RELAYPRO_FD_PROBE_OUT (one
// line, e.g. "0 1 2"); in every role it then becomes the real relaypro (RELAYPRO_FD_PROBE_REAL,
// fixed at build time: workers get no environment of the test's) with the same arguments.
#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

int main(int argc, char** argv) {
    const char* out = std::getenv("RELAYPRO_FD_PROBE_OUT");
    if (argc > 1 && std::strcmp(argv[1], "check-config") == 0 && out != nullptr) {
        std::string line;
        if (DIR* d = ::opendir("/proc/self/fd")) {
            const int own = ::dirfd(d);
            while (const dirent* e = ::readdir(d)) {
                if (e->d_name[0] == '.' || std::atoi(e->d_name) == own) continue;
                line += (line.empty() ? "" : " ") + std::string(e->d_name);
            }
            ::closedir(d);
        }
        line += "\n";
        int fd = ::open(out, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        if (fd >= 0) {
            [[maybe_unused]] ssize_t written = ::write(fd, line.data(), line.size());
            ::close(fd);
        }
    }
    ::execv(RELAYPRO_FD_PROBE_REAL, argv);
    return 127;
}
