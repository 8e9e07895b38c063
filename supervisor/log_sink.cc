#include "supervisor/log_sink.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <ctime>

#include "common/file_io.h"

namespace relaypro {
namespace {

constexpr size_t kTimestampLength = 23;  // 2026-11-25T13-53-40.123

struct NameParts {
    std::string stem;  // "relaypro.log"
    std::string ext;   // "txt", or empty
};

NameParts splitName(const std::string& fileName) {
    size_t dot = fileName.find_last_of('.');
    if (dot == std::string::npos || dot == 0) return {fileName, ""};
    return {fileName.substr(0, dot), fileName.substr(dot + 1)};
}

std::string timestampText(std::chrono::system_clock::time_point t) {
    auto ms = std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
    time_t secs = static_cast<time_t>(ms / 1000);
    struct tm tm {};
    gmtime_r(&secs, &tm);
    char buf[40];
    size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H-%M-%S", &tm);
    std::snprintf(buf + n, sizeof buf - n, ".%03d", static_cast<int>(ms % 1000));
    return buf;
}

// Parses "2026-11-25T13-53-40.123" back to a time.
std::optional<std::chrono::system_clock::time_point> parseTimestamp(std::string_view s) {
    if (s.size() != kTimestampLength) return std::nullopt;
    struct tm tm {};
    std::string z(s.substr(0, 19));
    const char* end = strptime(z.c_str(), "%Y-%m-%dT%H-%M-%S", &tm);
    if (end == nullptr || *end != '\0' || s[19] != '.') return std::nullopt;
    int ms = 0;
    for (size_t i = 20; i < 23; ++i) {
        if (s[i] < '0' || s[i] > '9') return std::nullopt;
        ms = ms * 10 + (s[i] - '0');
    }
    return std::chrono::system_clock::from_time_t(timegm(&tm)) + std::chrono::milliseconds(ms);
}

struct Backup {
    std::string name;
    std::chrono::system_clock::time_point time;
    bool compressed;
};

// Rotated files of `fileName` in `dir`, newest first.
std::vector<Backup> listBackups(const std::string& dir, const std::string& fileName) {
    std::vector<Backup> out;
    NameParts parts = splitName(fileName);
    std::string prefix = parts.stem + "-";
    std::string suffix = parts.ext.empty() ? "" : "." + parts.ext;
    DIR* d = ::opendir(dir.c_str());
    if (d == nullptr) return out;
    while (dirent* e = ::readdir(d)) {
        std::string_view name = e->d_name;
        if (!name.starts_with(prefix) || name.size() < prefix.size() + kTimestampLength) continue;
        auto t = parseTimestamp(name.substr(prefix.size(), kTimestampLength));
        if (!t) continue;
        std::string_view rest = name.substr(prefix.size() + kTimestampLength);
        bool compressed = false;
        if (rest == suffix) {
            compressed = false;
        } else if (rest == suffix + ".gz") {
            compressed = true;
        } else {
            continue;
        }
        out.push_back(Backup{std::string(name), *t, compressed});
    }
    ::closedir(d);
    std::sort(out.begin(), out.end(), [](const Backup& a, const Backup& b) { return a.time > b.time; });
    return out;
}

// The log file's folder and its missing parents, 0750, created by this process (the service
// user: the sink opens after the switch), like `mkdir -p`. Folders that exist may be symbolic
// links (logs/ pointed elsewhere, as before); one that is not a folder is refused. The file
// itself must not be a link (openFile: O_NOFOLLOW).
Status makeLogFolders(const std::string& dir) {
    for (size_t at = 0; at != std::string::npos;) {
        at = dir.find('/', at + 1);
        const std::string prefix = dir.substr(0, at);
        struct stat st {};
        if (::stat(prefix.c_str(), &st) == 0) {
            if (S_ISDIR(st.st_mode)) continue;
            return Error{"cannot create log folder " + dir + ": " + prefix + " is not a folder"};
        }
        if (::mkdir(prefix.c_str(), 0750) != 0 && errno != EEXIST) {
            return sysError("cannot create log folder " + prefix);
        }
    }
    return {};
}

}  // namespace

std::string LogSink::rotatedName(const std::string& fileName, std::chrono::system_clock::time_point t) {
    NameParts parts = splitName(fileName);
    return parts.stem + "-" + timestampText(t) + (parts.ext.empty() ? "" : "." + parts.ext);
}

Status gzipFile(const std::string& path) {
    UniqueFd in(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!in) return sysError("cannot open " + path);
    const std::string target = path + ".gz";
    const std::string tmp = target + ".tmp";
    ::unlink(tmp.c_str());
    int outFd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0640);
    if (outFd < 0) return sysError("cannot create " + tmp);
    gzFile gz = gzdopen(outFd, "wb6");
    if (gz == nullptr) {
        ::close(outFd);
        ::unlink(tmp.c_str());
        return Error{"cannot start gzip for " + path};
    }
    char buf[65536];
    bool ok = true;
    while (true) {
        ssize_t n = ::read(in.get(), buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            ok = false;
            break;
        }
        if (n == 0) break;
        if (gzwrite(gz, buf, static_cast<unsigned>(n)) != static_cast<int>(n)) {
            ok = false;
            break;
        }
    }
    int closed = gzclose(gz);  // closes outFd too
    if (!ok || closed != Z_OK) {
        ::unlink(tmp.c_str());
        return Error{"cannot compress " + path + " (disk full?)"};
    }
    if (::rename(tmp.c_str(), target.c_str()) != 0) {
        int err = errno;
        ::unlink(tmp.c_str());
        return sysError("cannot rename " + tmp, err);
    }
    ::unlink(path.c_str());
    return {};
}

LogSink::LogSink(LogSinkOptions options) : options_(std::move(options)) {}

Result<std::unique_ptr<LogSink>> LogSink::open(LogSinkOptions options, Status* openProblem) {
    std::unique_ptr<LogSink> sink(new LogSink(std::move(options)));
    std::string dir = dirName(sink->options_.path);
    Status opened = makeLogFolders(dir);
    if (opened) opened = sink->openFile();
    if (!opened) {
        if (openProblem == nullptr) return opened.error();
        *openProblem = opened;  // lines are dropped (and counted) until the file opens
    }
    sink->thread_ = std::thread([s = sink.get()] { s->backgroundLoop(); });
    auto now = sink->now();
    sink->enqueue([s = sink.get(), now] { s->cleanUp(now); });
    return sink;
}

LogSink::~LogSink() {
    {
        std::lock_guard lock(mutex_);
        stopping_ = true;
    }
    wake_.notify_all();
    if (thread_.joinable()) thread_.join();
}

std::chrono::system_clock::time_point LogSink::now() const {
    return options_.clock ? options_.clock() : std::chrono::system_clock::now();
}

Status LogSink::openFile() {
    UniqueFd fd(::open(options_.path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0640));
    if (!fd) return sysError("cannot open log file " + options_.path);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) return sysError("cannot stat log file " + options_.path);
    if (!S_ISREG(st.st_mode)) return Error{"log file " + options_.path + " is not a regular file"};
    fd_ = std::move(fd);
    size_ = static_cast<uint64_t>(st.st_size);
    return {};
}

Status LogSink::reopen() {
    fd_.reset();
    return openFile();
}

void LogSink::write(const LogRecord& record) {
    writeLine(formatLogLine(record));
}

void LogSink::writeLine(std::string_view line) {
    if (options_.echoFd >= 0) {
        // Best effort: a closed or slow terminal must not hold the service up.
        [[maybe_unused]] ssize_t n = ::write(options_.echoFd, line.data(), line.size());
    }
    if (dropped_ > 0) reportDropped();
    if (dropped_ > 0 || !append(line)) {
        ++dropped_;
        ++droppedTotal_;
    }
}

void LogSink::reportDropped() {
    LogRecord r;
    r.time = now();
    r.level = LogLevel::Warn;
    r.msg = "log lines dropped";
    r.component = "supervisor";
    r.pid = ::getpid();
    r.fields.emplace_back("dropped", dropped_);
    r.fields.emplace_back("reason", "the log file could not be written (disk full?)");
    if (append(formatLogLine(r))) dropped_ = 0;
}

bool LogSink::append(std::string_view line) {
    if (!fd_) {
        if (!openFile()) return false;
    }
    if (size_ > 0 && size_ + line.size() > options_.maxSize) rotate();
    size_t done = 0;
    while (done < line.size()) {
        ssize_t n = ::write(fd_.get(), line.data() + done, line.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        done += static_cast<size_t>(n);
    }
    if (done == line.size()) {
        size_ += done;
        return true;
    }
    // Never leave half a line: cut the file back to where this line began.
    if (done > 0 && ::ftruncate(fd_.get(), static_cast<off_t>(size_)) != 0) {
        size_ += done;  // could not cut: account for what is there
    }
    return false;
}

void LogSink::rotate() {
    const std::string dir = dirName(options_.path);
    const std::string base = baseName(options_.path);
    auto t = now();
    std::string target;
    for (int i = 0; i < 1000; ++i) {
        target = resolvePath(dir, rotatedName(base, t + std::chrono::milliseconds(i)));
        struct stat st {};
        if (::lstat(target.c_str(), &st) != 0 && errno == ENOENT) break;
        target.clear();
    }
    if (target.empty() || ::rename(options_.path.c_str(), target.c_str()) != 0) return;  // keep writing where we are
    if (!openFile()) {
        fd_.reset();
        return;
    }
    bool compress = options_.compress;
    enqueue([this, target, compress, t] {
        if (compress) (void)gzipFile(target);
        cleanUp(t);
    });
}

void LogSink::cleanUp(std::chrono::system_clock::time_point now) {
    const std::string dir = dirName(options_.path);
    const std::string base = baseName(options_.path);
    auto backups = listBackups(dir, base);
    for (size_t i = 0; i < backups.size(); ++i) {
        const Backup& b = backups[i];
        bool tooMany = options_.maxBackups > 0 && i >= options_.maxBackups;
        bool tooOld = options_.maxAge > Duration::zero() && now - b.time > options_.maxAge;
        std::string path = resolvePath(dir, b.name);
        if (tooMany || tooOld) {
            ::unlink(path.c_str());
        } else if (options_.compress && !b.compressed) {
            // Left uncompressed by a run that stopped before compressing it.
            (void)gzipFile(path);
        }
    }
}

void LogSink::enqueue(std::function<void()> job) {
    {
        std::lock_guard lock(mutex_);
        jobs_.push_back(std::move(job));
    }
    wake_.notify_one();
}

void LogSink::backgroundLoop() {
    std::unique_lock lock(mutex_);
    while (true) {
        wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
        if (jobs_.empty()) {
            if (stopping_) return;
            continue;
        }
        auto job = std::move(jobs_.front());
        jobs_.pop_front();
        busy_ = true;
        lock.unlock();
        job();
        lock.lock();
        busy_ = false;
        if (jobs_.empty()) idle_.notify_all();
    }
}

void LogSink::waitForBackground() {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return jobs_.empty() && !busy_; });
}

}  // namespace relaypro
