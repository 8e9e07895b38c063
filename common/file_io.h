// Reading whole files with a size cap, and replacing a file atomically (temporary file in the
// same folder created with O_EXCL, fsync, rename, fsync of the folder), keeping its mode and
// owner. A crash at any point leaves either the old or the new file, never a partial one.
#pragma once

#include <sys/types.h>

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace relaypro {

// Reads a regular file of at most maxBytes. errno ENOENT is kept in the error for callers
// that treat a missing file as empty.
Result<std::string> readFile(const std::string& path, size_t maxBytes);

// The folder part of a path ("." when there is none) and the last component.
std::string dirName(const std::string& path);
std::string baseName(const std::string& path);
// `path` if absolute, else `base`/`path`.
std::string resolvePath(const std::string& base, const std::string& path);

struct AtomicWriteOptions {
    // Mode for the new file; unset = keep the mode of the file being replaced (0600 if none).
    std::optional<mode_t> mode;
    // Keep the replaced file's owner and group (needs privilege when they differ from ours).
    bool keepOwner = true;
    // Test seam: called at each step ("opened", "written", "synced", "renamed"); a test may
    // kill the process there to prove the file is never partial.
    std::function<void(std::string_view step)> onStep;
};

// Replaces `path` with `content`. Refuses a path that is a symbolic link or not a regular file.
Status writeFileAtomic(const std::string& path, std::string_view content, const AtomicWriteOptions& options = {});

// Removes temporary files that an interrupted writeFileAtomic left beside `path`.
void removeStaleTemporaries(const std::string& path);

}  // namespace relaypro
