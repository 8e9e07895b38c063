// Result<T>: a value or an error message (with the errno that caused it, when there was one).
// Errors are values in RelayPro: functions that can fail return Result, never throw on the
// data path, and constructors cannot fail (factories return Result instead).
#pragma once

#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <variant>

namespace relaypro {

struct Error {
    std::string message;
    int sysErrno = 0;  // 0 when the error did not come from a system call

    // "message: strerror(errno)" for system-call failures, the message alone otherwise.
    [[nodiscard]] std::string describe() const {
        if (sysErrno == 0) return message;
        return message + ": " + std::strerror(sysErrno);
    }
};

// Shorthand for an error from the last failed system call.
inline Error sysError(std::string message, int err = errno) {
    return Error{std::move(message), err};
}

template <typename T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::in_place_index<0>, std::move(value)) {}      // NOLINT(google-explicit-constructor)
    Result(Error error) : v_(std::in_place_index<1>, std::move(error)) {}  // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool ok() const { return v_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() & { return std::get<0>(v_); }
    const T& value() const& { return std::get<0>(v_); }
    T&& value() && { return std::get<0>(std::move(v_)); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

    [[nodiscard]] const Error& error() const { return std::get<1>(v_); }

private:
    std::variant<T, Error> v_;
};

// Result<void>: success or an Error.
template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), failed_(true) {}  // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool ok() const { return !failed_; }
    explicit operator bool() const { return ok(); }
    [[nodiscard]] const Error& error() const { return error_; }

private:
    Error error_;
    bool failed_ = false;
};

using Status = Result<void>;

}  // namespace relaypro
