// One log event, independent of who produced it (supervisor, worker over IPC, registration),
// and its JSON Lines form (spec/logging.md): fixed keys time, level, msg, component, pid, then
// the event's own keys. Formatting redacts secrets, so no caller can log a token by mistake.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <concepts>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace relaypro {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3 };

std::string_view levelName(LogLevel level);
std::optional<LogLevel> parseLogLevel(std::string_view name);

using LogValue = std::variant<std::string, int64_t, uint64_t, double, bool>;

struct LogField {
    std::string key;
    LogValue value;

    LogField(std::string k, std::string v) : key(std::move(k)), value(std::move(v)) {}
    LogField(std::string k, std::string_view v) : key(std::move(k)), value(std::string(v)) {}
    LogField(std::string k, const char* v) : key(std::move(k)), value(std::string(v)) {}
    LogField(std::string k, bool v) : key(std::move(k)), value(v) {}
    LogField(std::string k, double v) : key(std::move(k)), value(v) {}
    template <std::signed_integral I>
    LogField(std::string k, I v) : key(std::move(k)), value(static_cast<int64_t>(v)) {}
    template <std::unsigned_integral U>
    requires(!std::same_as<U, bool>) LogField(std::string k, U v)
        : key(std::move(k)), value(static_cast<uint64_t>(v)) {}
};

struct LogRecord {
    std::chrono::system_clock::time_point time;
    LogLevel level = LogLevel::Info;
    std::string msg;
    std::string component;
    int64_t pid = 0;
    std::vector<LogField> fields;
};

// The record as one JSON line, ending in '\n', with secrets redacted: values of keys that name
// a secret (token, password, credential, secret, private key) become "<redacted>"; an
// authorization value keeps only its scheme; bearer/basic credentials, JWT/JWE compact tokens
// and PEM private keys inside any text are replaced. Invalid UTF-8 becomes U+FFFD.
std::string formatLogLine(const LogRecord& record);

// "2026-11-25T13:53:40.123456Z"
std::string formatLogTime(std::chrono::system_clock::time_point t);

// Text with embedded credentials replaced (exposed for tests and for error messages).
std::string redactSecrets(std::string_view text);

// Where records go: the supervisor's file sink, or a worker's IPC channel to it.
class LogOutput {
public:
    virtual ~LogOutput() = default;
    virtual void write(const LogRecord& record) = 0;
};

// A component's handle for logging: fills the fixed keys and filters by level.
class Logger {
public:
    Logger(LogOutput* output, std::string component, LogLevel minLevel = LogLevel::Info);

    void setMinLevel(LogLevel level) { minLevel_ = level; }
    void setOutput(LogOutput* output) { output_ = output; }
    [[nodiscard]] bool enabled(LogLevel level) const { return level >= minLevel_ && output_ != nullptr; }

    void log(LogLevel level, std::string msg, std::vector<LogField> fields = {}) const;
    void debug(std::string msg, std::vector<LogField> fields = {}) const {
        log(LogLevel::Debug, std::move(msg), std::move(fields));
    }
    void info(std::string msg, std::vector<LogField> fields = {}) const {
        log(LogLevel::Info, std::move(msg), std::move(fields));
    }
    void warn(std::string msg, std::vector<LogField> fields = {}) const {
        log(LogLevel::Warn, std::move(msg), std::move(fields));
    }
    void error(std::string msg, std::vector<LogField> fields = {}) const {
        log(LogLevel::Error, std::move(msg), std::move(fields));
    }

private:
    LogOutput* output_;
    std::string component_;
    LogLevel minLevel_;
    pid_t pid_;
};

}  // namespace relaypro
