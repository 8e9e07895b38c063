#include "common/file_io.h"

#include <dirent.h>
#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "common/unique_fd.h"

namespace relaypro {
namespace {

constexpr std::string_view kTempMarker = ".relaypro-tmp-";

Status writeAll(int fd, std::string_view data) {
    while (!data.empty()) {
        ssize_t n = ::write(fd, data.data(), data.size());
        if (n < 0) {
            if (errno == EINTR) continue;
            return sysError("write");
        }
        data.remove_prefix(static_cast<size_t>(n));
    }
    return {};
}

std::string tempName(const std::string& base) {
    uint32_t r[2] = {0, 0};
    randombytes_buf(r, sizeof r);  // getrandom, or /dev/urandom before Linux 3.17
    char suffix[17];
    std::snprintf(suffix, sizeof suffix, "%08x%08x", r[0], r[1]);
    return "." + base + std::string(kTempMarker) + suffix;
}

}  // namespace

Result<std::string> readFile(const std::string& path, size_t maxBytes) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (!fd) return sysError("cannot open " + path);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return sysError("cannot stat " + path);
    if (!S_ISREG(st.st_mode)) return Error{path + " is not a regular file"};
    if (static_cast<size_t>(st.st_size) > maxBytes) {
        return Error{path + " is larger than " + std::to_string(maxBytes) + " bytes"};
    }
    std::string out;
    char buf[65536];
    while (true) {
        ssize_t n = ::read(fd.get(), buf, sizeof buf);
        if (n < 0) {
            if (errno == EINTR) continue;
            return sysError("cannot read " + path);
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > maxBytes) return Error{path + " is larger than " + std::to_string(maxBytes) + " bytes"};
    }
    return out;
}

std::string dirName(const std::string& path) {
    size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return ".";
    if (slash == 0) return "/";
    return path.substr(0, slash);
}

std::string baseName(const std::string& path) {
    size_t slash = path.find_last_of('/');
    return slash == std::string::npos ? path : path.substr(slash + 1);
}

std::string resolvePath(const std::string& base, const std::string& path) {
    if (path.empty() || path.front() == '/') return path;
    if (base.empty() || base == ".") return path;
    return base.back() == '/' ? base + path : base + "/" + path;
}

Status writeFileAtomic(const std::string& path, std::string_view content, const AtomicWriteOptions& options) {
    auto step = [&](std::string_view name) {
        if (options.onStep) options.onStep(name);
    };
    const std::string dir = dirName(path);
    const std::string base = baseName(path);
    UniqueFd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dirFd) return sysError("cannot open folder " + dir);

    struct stat old {};
    bool exists = ::fstatat(dirFd.get(), base.c_str(), &old, AT_SYMLINK_NOFOLLOW) == 0;
    if (!exists && errno != ENOENT) return sysError("cannot stat " + path);
    if (exists && S_ISLNK(old.st_mode)) return Error{path + " is a symbolic link; refusing to replace it"};
    if (exists && !S_ISREG(old.st_mode)) return Error{path + " is not a regular file"};
    mode_t mode = options.mode.value_or(exists ? (old.st_mode & 07777) : 0600);

    const std::string tmp = tempName(base);
    UniqueFd fd(::openat(dirFd.get(), tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!fd) return sysError("cannot create a temporary file in " + dir);
    auto fail = [&](Error e) {
        ::unlinkat(dirFd.get(), tmp.c_str(), 0);
        return e;
    };
    step("opened");
    if (auto s = writeAll(fd.get(), content); !s) return fail(Error{"cannot write " + path, s.error().sysErrno});
    step("written");
    if (options.keepOwner && exists && (old.st_uid != ::geteuid() || old.st_gid != ::getegid())) {
        if (::fchown(fd.get(), old.st_uid, old.st_gid) != 0) return fail(sysError("cannot keep the owner of " + path));
    }
    if (::fchmod(fd.get(), mode) != 0) return fail(sysError("cannot set the mode of " + path));
    if (::fsync(fd.get()) != 0) return fail(sysError("cannot fsync " + path));
    step("synced");
    if (::close(fd.release()) != 0) return fail(sysError("cannot close " + path));
    if (::renameat(dirFd.get(), tmp.c_str(), dirFd.get(), base.c_str()) != 0) {
        return fail(sysError("cannot rename the new " + path + " into place"));
    }
    step("renamed");
    if (::fsync(dirFd.get()) != 0) return sysError("cannot fsync folder " + dir);
    return {};
}

void removeStaleTemporaries(const std::string& path) {
    const std::string dir = dirName(path);
    const std::string prefix = "." + baseName(path) + std::string(kTempMarker);
    UniqueFd dirFd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    if (!dirFd) return;
    DIR* d = ::fdopendir(::dup(dirFd.get()));
    if (d == nullptr) return;
    while (dirent* e = ::readdir(d)) {
        std::string_view name = e->d_name;
        if (name.size() == prefix.size() + 16 && name.substr(0, prefix.size()) == prefix) {
            struct stat st {};
            // Only our own regular files: never follow or remove what someone else planted.
            if (::fstatat(dirFd.get(), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
                st.st_uid == ::geteuid()) {
                ::unlinkat(dirFd.get(), e->d_name, 0);
            }
        }
    }
    ::closedir(d);
}

}  // namespace relaypro
