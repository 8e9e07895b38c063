// `relaypro status --tunnels` on the operator's side: reads the service's lines (the shape is in
// supervisor/tunnel_listing.h and docs/operators-guide.md), sorts and limits them, and prints
// them as a table or as one JSON document. Memory: rows go straight through when neither --sort
// nor --limit is given; --limit N keeps the N best rows at most (a bounded heap); --sort alone
// keeps every row, up to kMaxSortedRows (beyond: an error that says to use --limit). The
// supervisor never holds more than one worker's chunk for it.
#pragma once

#include <jansson.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace relaypro {

enum class TunnelSort { Listing, Age, Bytes };  // Listing: as the service lists them

struct TunnelOptions {
    TunnelSort sort = TunnelSort::Listing;
    std::optional<uint64_t> limit;
    bool json = false;
};

struct TunnelEntry {
    std::string responder;  // "" when the tunnel has no authenticated identity
    std::string source;
    uint16_t targetPort = 0;
    int64_t workerPid = 0;
    int64_t generation = 0;
    std::string workerState;
    uint64_t ageMs = 0;
    uint64_t bytesUp = 0;
    uint64_t bytesDown = 0;
    uint64_t order = 0;  // its place in the listing (ties keep it)
};

inline constexpr size_t kMaxSortedRows = 1000000;
inline constexpr uint64_t kMaxTunnelLimit = 1000000;

// A row line of the service's answer; nullopt when a member is missing or of the wrong type.
std::optional<TunnelEntry> tunnelEntryFromJson(json_t* row);
json_t* tunnelEntryToJson(const TunnelEntry& e);

// Keeps the rows to print: all of them, or the best `limit` by `sort`, in print order.
class TunnelCollector {
public:
    explicit TunnelCollector(const TunnelOptions& options) : options_(options) {}
    // False when --sort without --limit has reached kMaxSortedRows.
    bool add(TunnelEntry e);
    // The rows kept, best first (sorted), and the collector emptied.
    std::vector<TunnelEntry> take();
    // Whether rows can be printed as they come (no --sort).
    [[nodiscard]] bool streams() const { return options_.sort == TunnelSort::Listing; }

private:
    [[nodiscard]] bool before(const TunnelEntry& a, const TunnelEntry& b) const;
    TunnelOptions options_;
    std::vector<TunnelEntry> rows_;  // a heap (worst on top) when limited
};

// The table: a header line, and one line a tunnel. Every text from the service is escaped
// (control characters, C1 controls, malformed UTF-8 and backslashes as \xNN).
std::string tunnelTableHeader();
std::string tunnelTableLine(const TunnelEntry& e);
std::string terminalSafe(std::string_view text);
std::string formatAge(uint64_t ageMs);  // "3d04h05m06s", "1h02m03s", "5m06s", "7s"

// Runs the listing against the control socket at `socketPath`; returns the exit code.
int listTunnels(const std::string& socketPath, const TunnelOptions& options, std::FILE* out, std::FILE* err);

}  // namespace relaypro
