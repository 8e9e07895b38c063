// `relaypro status --tunnels` in the supervisor. A listing asks the workers one after the other
// for their open tunnels, a chunk at a time (ipc/tunnel_list.h), and writes each chunk's rows to
// the control client as lines (ControlSocket::Stream); it asks for the next chunk only once the
// client has taken nearly all of the last. So a listing holds one chunk at most however many
// tunnels there are, a worker's loop is held for one chunk at a time, and at most kMaxListings
// run at once. A worker that does not answer within kAnswerTimeout, or that is of a build without
// the list (it answers Unknown), is named in the last line as not listed; that is not an error.
//
// The answer's lines (docs/operators-guide.md, "Who is connected"): one JSON object a tunnel,
//   {"responder": "resp-A" | "basic:<user>" | null, "source": "203.0.113.7:50112",
//    "targetPort": 443, "workerPid": 4250, "generation": 3, "workerState": "serving",
//    "ageMs": 5231000, "bytesUp": 1024, "bytesDown": 2048}
// then {"end": true, "tunnels": N, "workers": [{"pid", "generation", "state", "listed",
// "tunnels", "reason" (when not listed)}]}; or {"error": "…"} alone.
#pragma once

#include <event2/event.h>
#include <jansson.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <vector>

#include "ipc/tunnel_list.h"
#include "supervisor/control_socket.h"
#include "supervisor/worker_pool_core.h"

namespace relaypro {

class TunnelListings {
public:
    static constexpr size_t kMaxListings = 4;
    // Rows asked for in a chunk: a worker spends about 0.85 µs a row on it (20,000 tunnels, 4
    // workers, measured with the workers' CPU time), so 500 keep its loop's turn near 0.4 ms.
    static constexpr uint16_t kRowsPerChunk = 500;
    static constexpr std::chrono::seconds kAnswerTimeout{5};  // for each chunk
    // A worker that sends more chunks than this is not listed further (each chunk moves on by at
    // least one connection serial; this bounds what a worker that lies can make a listing do).
    static constexpr size_t kMaxChunksPerWorker = 1 << 16;
    // The next chunk is asked for when the client has less than this to take.
    static constexpr size_t kLowWater = 64 * 1024;

    // Sends a request to a worker (WorkerPool::askTunnels); false when it cannot.
    using Ask = std::function<bool(pid_t pid, const ipc::TunnelListRequest& request)>;

    TunnelListings(event_base* base, Ask ask);
    ~TunnelListings();
    TunnelListings(const TunnelListings&) = delete;
    TunnelListings& operator=(const TunnelListings&) = delete;

    // Lists the tunnels of `workers` (the pool's view now; starting ones have none) onto `out`;
    // false, with nothing written, when kMaxListings already run.
    bool start(std::vector<WorkerView> workers, std::shared_ptr<ControlSocket::Stream> out);
    // A worker's chunk; null: it has no list (WorkerPoolCore::TunnelListHandler).
    void answered(pid_t pid, const ipc::TunnelList* list);
    [[nodiscard]] size_t running() const { return listings_.size(); }

    // One tunnel as a line of the answer. `sinceStartMs` is how long the listing has run: the
    // worker measured the row's age when it answered, and the line gives the age at the
    // listing's start, so that ages from workers asked one after the other compare.
    static json_t* rowJson(const ipc::TunnelRow& row, const WorkerView& worker, uint64_t sinceStartMs = 0);

private:
    struct Listing;
    static void onTimeout(int, short, void* arg);
    void askNext(Listing& l);
    void next(Listing& l, const char* reason);  // this worker is done (reason null: listed)
    void finish(Listing& l);
    void remove(Listing& l);
    bool writeRows(Listing& l, const ipc::TunnelList& list);

    event_base* base_;
    Ask ask_;
    uint32_t nextRequestId_;
    std::vector<std::unique_ptr<Listing>> listings_;
};

}  // namespace relaypro
