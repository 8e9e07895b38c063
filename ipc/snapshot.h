// The settings snapshot a worker serves with (common/worker_settings.h), as bytes for the
// SettingsChunk messages, and back. Decoding checks every count and length; the decoded
// snapshot is complete or there is none.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/worker_settings.h"
#include "ipc/messages.h"

namespace relaypro::ipc {

inline constexpr size_t kMaxSnapshotBytes = 32 << 20;

std::string encodeSettings(const WorkerSettings& settings);
Result<std::shared_ptr<const WorkerSettings>> decodeSettings(std::string_view bytes);

// Splits a snapshot into SettingsChunk messages.
std::vector<SettingsChunk> chunkSnapshot(uint32_t snapshotId, const std::string& bytes);

// Reassembles chunks in order; tells when a snapshot is complete.
class SnapshotAssembler {
public:
    // Adds a chunk. Error: out of order, a different snapshot mid-way, or too large.
    Status add(const SettingsChunk& chunk);
    [[nodiscard]] bool complete() const { return complete_; }
    std::string take();

private:
    uint32_t snapshotId_ = 0;
    uint16_t next_ = 0;
    uint16_t count_ = 0;
    std::string data_;
    bool complete_ = false;
};

}  // namespace relaypro::ipc
