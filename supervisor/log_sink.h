// The supervisor's log file (spec/logging.md): JSON lines appended to logger.fileName; rotation
// by size to `<name>-<UTC timestamp>.<ext>`, gzip of rotated files and clean-up by maxBackups /
// maxAge on a background thread (never on the serving path); reopen on SIGUSR1; a copy on
// stderr while attached to a terminal. A full disk drops lines and counts them instead of
// blocking; the count is logged once writing works again.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "common/config_values.h"
#include "common/log_record.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace relaypro {

struct LogSinkOptions {
    std::string path;                    // the live file
    uint64_t maxSize = 100ULL << 20;     // rotate when the next line would pass it
    Duration maxAge = Duration::zero();  // 0 = keep rotated files whatever their age
    uint32_t maxBackups = 0;             // 0 = keep all rotated files
    bool compress = true;                // gzip rotated files
    int echoFd = -1;                     // also write lines here (stderr on a terminal); -1 = off
    std::function<std::chrono::system_clock::time_point()> clock;  // seam for tests; default system clock
};

class LogSink : public LogOutput {
public:
    // Opens (creating it 0640, and its folder 0750 when missing) the log file. With
    // `openProblem`, a file that cannot be opened is not an error: it is said there, and lines
    // are dropped and counted until the file can be opened (a re-executed supervisor must not
    // end the service over its log).
    static Result<std::unique_ptr<LogSink>> open(LogSinkOptions options, Status* openProblem = nullptr);
    ~LogSink() override;
    LogSink(const LogSink&) = delete;
    LogSink& operator=(const LogSink&) = delete;

    void write(const LogRecord& record) override;
    // Appends one already formatted line (ending in '\n').
    void writeLine(std::string_view line);

    // Closes and opens the file again (after an external tool moved it).
    Status reopen();

    [[nodiscard]] uint64_t droppedSinceLastReport() const { return dropped_; }
    [[nodiscard]] uint64_t droppedTotal() const { return droppedTotal_; }
    // The counts of the previous supervisor image (an upgrade's re-exec): the lines it could not
    // write are reported with this image's.
    void restoreDropped(uint64_t sinceLastReport, uint64_t total) {
        dropped_ += sinceLastReport;
        droppedTotal_ += total;
    }

    // Waits until background compression and clean-up are done (tests, shutdown).
    void waitForBackground();

    // The rotated name for a rotation at `t`: "relaypro.log.txt" -> "relaypro.log-2026-11-25T13-53-40.123.txt".
    static std::string rotatedName(const std::string& fileName, std::chrono::system_clock::time_point t);

private:
    explicit LogSink(LogSinkOptions options);
    Status openFile();
    void rotate();
    void reportDropped();
    bool append(std::string_view line);
    void enqueue(std::function<void()> job);
    void backgroundLoop();
    void cleanUp(std::chrono::system_clock::time_point now);
    std::chrono::system_clock::time_point now() const;

    LogSinkOptions options_;
    UniqueFd fd_;
    uint64_t size_ = 0;
    uint64_t dropped_ = 0;
    uint64_t droppedTotal_ = 0;

    std::mutex mutex_;
    std::condition_variable wake_;
    std::condition_variable idle_;
    std::deque<std::function<void()>> jobs_;
    bool busy_ = false;
    bool stopping_ = false;
    std::thread thread_;
};

// gzip-compresses `path` to `path.gz` (through a temporary file) and removes `path`.
Status gzipFile(const std::string& path);

}  // namespace relaypro
