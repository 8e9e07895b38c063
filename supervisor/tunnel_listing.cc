#include "supervisor/tunnel_listing.h"

#include <sodium.h>

#include <algorithm>
#include <string>

#include "common/event_time.h"

namespace relaypro {

struct TunnelListings::Listing {
    TunnelListings* owner = nullptr;
    std::shared_ptr<ControlSocket::Stream> out;
    std::vector<WorkerView> workers;
    std::vector<const char*> reasons;  // per worker: why it is not listed (null: listed)
    std::vector<uint64_t> counts;      // per worker: tunnels listed
    size_t index = 0;                  // the worker being listed
    uint32_t requestId = 0;            // of the chunk asked for
    uint64_t cursor = 0;               // its `after`
    size_t chunks = 0;                 // of this worker so far
    std::chrono::steady_clock::time_point startedAt = std::chrono::steady_clock::now();
    bool waitingForWorker = false;
    bool waitingForClient = false;
    event* timer = nullptr;
    ~Listing() {
        if (timer != nullptr) event_free(timer);
    }
};

TunnelListings::TunnelListings(event_base* base, Ask ask)
    : base_(base),
      ask_(std::move(ask)),
      // Not from 1: an answer to a request of the previous image (before an upgrade's re-exec)
      // must not pass for one of this image's.
      nextRequestId_(randombytes_random() | 1U) {}

TunnelListings::~TunnelListings() = default;

bool TunnelListings::start(std::vector<WorkerView> workers, std::shared_ptr<ControlSocket::Stream> out) {
    if (listings_.size() >= kMaxListings) return false;
    auto l = std::make_unique<Listing>();
    Listing* raw = l.get();
    l->owner = this;
    l->out = std::move(out);
    l->reasons.assign(workers.size(), nullptr);
    l->counts.assign(workers.size(), 0);
    l->workers = std::move(workers);
    l->timer = evtimer_new(base_, &TunnelListings::onTimeout, raw);
    l->out->watch(
        [this, raw] {
            if (!raw->waitingForClient) return;
            raw->waitingForClient = false;
            askNext(*raw);
        },
        [this, raw] { remove(*raw); });
    listings_.push_back(std::move(l));
    askNext(*raw);
    return true;
}

void TunnelListings::askNext(Listing& l) {
    while (l.index < l.workers.size()) {
        const WorkerView& w = l.workers[l.index];
        l.requestId = nextRequestId_++;
        ipc::TunnelListRequest request{l.requestId, l.cursor, kRowsPerChunk};
        if (w.state != "starting" && ask_(w.pid, request)) {
            l.waitingForWorker = true;
            timeval tv = toTimeval(kAnswerTimeout);
            evtimer_add(l.timer, &tv);
            return;
        }
        l.reasons[l.index] = w.state == "starting" ? "starting" : "ended or cannot be reached";
        ++l.index;
        l.cursor = 0;
        l.chunks = 0;
    }
    finish(l);
}

void TunnelListings::next(Listing& l, const char* reason) {
    l.reasons[l.index] = reason;
    ++l.index;
    l.cursor = 0;
    l.chunks = 0;
}

void TunnelListings::onTimeout(int, short, void* arg) {
    auto* l = static_cast<Listing*>(arg);
    l->waitingForWorker = false;
    l->owner->next(*l, "did not answer within 5 s");
    l->owner->askNext(*l);
}

void TunnelListings::answered(pid_t pid, const ipc::TunnelList* list) {
    // Copied: a listing may end (and go) below.
    std::vector<Listing*> waiting;
    for (auto& l : listings_) {
        if (!l->waitingForWorker || l->workers[l->index].pid != pid) continue;
        if (list != nullptr && (list->requestId != l->requestId || list->after != l->cursor)) continue;
        waiting.push_back(l.get());
    }
    for (Listing* l : waiting) {
        l->waitingForWorker = false;
        evtimer_del(l->timer);
        if (list == nullptr) {
            next(*l, "does not list tunnels (an earlier build)");
        } else {
            if (!writeRows(*l, *list)) {
                remove(*l);  // the client is gone
                continue;
            }
            if (list->done) {
                next(*l, nullptr);
            } else if (++l->chunks >= kMaxChunksPerWorker) {
                next(*l, "sent too many chunks");
            } else {
                l->cursor = list->next;
            }
        }
        if (l->out->pending() >= kLowWater) {
            l->waitingForClient = true;  // the stream's drained callback asks on
        } else {
            askNext(*l);
        }
    }
}

bool TunnelListings::writeRows(Listing& l, const ipc::TunnelList& list) {
    const WorkerView& w = l.workers[l.index];
    // The worker took its clock (the system's monotonic one, as ours) when it answered, a few
    // microseconds ago; the workers before it answered earlier.
    const auto since =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - l.startedAt);
    const uint64_t sinceStartMs = static_cast<uint64_t>(std::max<int64_t>(0, since.count()));
    for (const ipc::TunnelRow& row : list.rows) {
        if (!l.out->write(rowJson(row, w, sinceStartMs))) return false;
    }
    l.counts[l.index] += list.rows.size();
    return true;
}

json_t* TunnelListings::rowJson(const ipc::TunnelRow& row, const WorkerView& worker, uint64_t sinceStartMs) {
    using Auth = ipc::TunnelRow::Auth;
    json_t* o = json_object();
    json_t* responder = json_null();
    if (row.auth == Auth::Bearer) responder = json_stringn(row.identity.data(), row.identity.size());
    if (row.auth == Auth::Basic) responder = json_string(("basic:" + row.identity).c_str());
    json_object_set_new(o, "responder", responder != nullptr ? responder : json_null());
    json_object_set_new(o, "source", json_stringn(row.source.data(), row.source.size()));
    json_object_set_new(o, "targetPort", json_integer(row.targetPort));
    json_object_set_new(o, "workerPid", json_integer(worker.pid));
    json_object_set_new(o, "generation", json_integer(worker.generation));
    json_object_set_new(o, "workerState", json_string(worker.state.c_str()));
    // A tunnel opened after the listing started is 0.
    const uint64_t ageMs = row.ageMs - std::min(row.ageMs, sinceStartMs);
    json_object_set_new(o, "ageMs", json_integer(static_cast<json_int_t>(ageMs)));
    // Counts above 2^63 (never reached) are shown as the largest JSON integer jansson has.
    auto count = [](uint64_t v) { return json_integer(static_cast<json_int_t>(std::min<uint64_t>(v, INT64_MAX))); };
    json_object_set_new(o, "bytesUp", count(row.bytesUp));
    json_object_set_new(o, "bytesDown", count(row.bytesDown));
    return o;
}

void TunnelListings::finish(Listing& l) {
    json_t* workers = json_array();
    uint64_t total = 0;
    for (size_t i = 0; i < l.workers.size(); ++i) {
        const WorkerView& w = l.workers[i];
        total += l.counts[i];
        json_t* o = json_pack("{s:I,s:I,s:s,s:b,s:I}", "pid", static_cast<json_int_t>(w.pid), "generation",
                              static_cast<json_int_t>(w.generation), "state", w.state.c_str(), "listed",
                              l.reasons[i] == nullptr, "tunnels", static_cast<json_int_t>(l.counts[i]));
        if (l.reasons[i] != nullptr) json_object_set_new(o, "reason", json_string(l.reasons[i]));
        json_array_append_new(workers, o);
    }
    (void)l.out->write(json_pack("{s:b,s:I,s:o}", "end", 1, "tunnels", static_cast<json_int_t>(total), "workers",
                                 workers));  // a client gone has nothing to miss
    l.out->end();
    remove(l);
}

void TunnelListings::remove(Listing& l) {
    std::erase_if(listings_, [&](const auto& p) { return p.get() == &l; });
}

}  // namespace relaypro
