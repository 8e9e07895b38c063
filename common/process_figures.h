// What a process holds, for the metrics (supervisor/metrics_text.h): its resident memory and its
// open descriptors, read from /proc/self through descriptors opened once, so that a sandboxed
// worker, which may open nothing, can still read them (a read and an fstat, no open).
#pragma once

#include <cstdint>
#include <optional>

#include "common/unique_fd.h"

namespace relaypro {

class ProcessFigures {
public:
    // Opens /proc/self/statm and /proc/self/fd; a figure whose file cannot be opened reads as
    // nullopt. Counts the descriptors open now, for kernels that do not count them (see below).
    static ProcessFigures open();

    // Resident set size in bytes.
    [[nodiscard]] std::optional<uint64_t> residentBytes() const;
    // Open descriptors: the size Linux 6.2 and later report for /proc/self/fd. Older kernels
    // report 0: then nullopt, and the caller estimates from what it knows it opened since
    // `descriptorsAtOpen()`.
    [[nodiscard]] std::optional<uint64_t> descriptors() const;
    [[nodiscard]] uint64_t descriptorsAtOpen() const { return atOpen_; }

private:
    UniqueFd statm_;
    UniqueFd fdDir_;
    uint64_t atOpen_ = 0;
};

}  // namespace relaypro
