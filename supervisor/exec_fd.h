// Runs the program open at a descriptor: the supervisor keeps its own binary open so that a
// worker, or the next image during an upgrade, is the file that was checked, whatever the path
// holds by then. Both functions are async-signal-safe (callable between fork and exec).
#pragma once

namespace relaypro {

// execveat(fd, "", argv, envp, AT_EMPTY_PATH) (Linux 3.19); on a kernel without it, execve() of
// /proc/self/fd/<fd>, which names the same open file. Returns only on failure, errno set.
void execDescriptor(int fd, char* const argv[], char* const envp[]);

// Writes "/proc/self/fd/<fd>" into `out` (at least 32 bytes) without allocating.
void procSelfFdPath(int fd, char* out);

// Marks every descriptor from `lowest` up close-on-exec: close_range(CLOSE_RANGE_CLOEXEC)
// (Linux 5.11); else the descriptors /proc/self/fd lists; else every number below RLIMIT_NOFILE.
void closeOnExecFrom(int lowest);
// The two fallbacks, on their own for the tests. Each returns false when it could not cover every
// descriptor (the listing failed to open or part-way).
bool closeOnExecListed(int lowest);
bool closeOnExecBelowLimit(int lowest);

}  // namespace relaypro
