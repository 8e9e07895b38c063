#include "supervisor/status_tunnels.h"

#include <algorithm>
#include <cinttypes>
#include <cstdlib>

#include "common/text.h"
#include "supervisor/control_socket.h"

namespace relaypro {
namespace {

std::optional<uint64_t> unsignedMember(json_t* o, const char* key) {
    json_t* v = json_object_get(o, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0) return std::nullopt;
    return static_cast<uint64_t>(json_integer_value(v));
}

std::string dump(json_t* j) {
    char* text = json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII);
    std::string out = text != nullptr ? text : "null";
    std::free(text);
    return out;
}

}  // namespace

std::optional<TunnelEntry> tunnelEntryFromJson(json_t* row) {
    TunnelEntry e;
    json_t* responder = json_object_get(row, "responder");
    const char* source = json_string_value(json_object_get(row, "source"));
    const char* state = json_string_value(json_object_get(row, "workerState"));
    auto port = unsignedMember(row, "targetPort");
    auto pid = unsignedMember(row, "workerPid");
    auto generation = unsignedMember(row, "generation");
    auto age = unsignedMember(row, "ageMs");
    auto up = unsignedMember(row, "bytesUp");
    auto down = unsignedMember(row, "bytesDown");
    if (!json_is_object(row) || (!json_is_null(responder) && !json_is_string(responder)) || source == nullptr ||
        state == nullptr || !port || *port == 0 || *port > 65535 || !pid || !generation || !age || !up || !down) {
        return std::nullopt;
    }
    if (json_is_string(responder)) e.responder.assign(json_string_value(responder), json_string_length(responder));
    e.source = source;
    e.workerState = state;
    e.targetPort = static_cast<uint16_t>(*port);
    e.workerPid = static_cast<int64_t>(*pid);
    e.generation = static_cast<int64_t>(*generation);
    e.ageMs = *age;
    e.bytesUp = *up;
    e.bytesDown = *down;
    return e;
}

json_t* tunnelEntryToJson(const TunnelEntry& e) {
    json_t* o = json_object();
    json_object_set_new(o, "responder",
                        e.responder.empty() ? json_null() : json_stringn(e.responder.data(), e.responder.size()));
    json_object_set_new(o, "source", json_stringn(e.source.data(), e.source.size()));
    json_object_set_new(o, "targetPort", json_integer(e.targetPort));
    json_object_set_new(o, "workerPid", json_integer(e.workerPid));
    json_object_set_new(o, "generation", json_integer(e.generation));
    json_object_set_new(o, "workerState", json_stringn(e.workerState.data(), e.workerState.size()));
    json_object_set_new(o, "ageMs", json_integer(static_cast<json_int_t>(e.ageMs)));
    json_object_set_new(o, "bytesUp", json_integer(static_cast<json_int_t>(e.bytesUp)));
    json_object_set_new(o, "bytesDown", json_integer(static_cast<json_int_t>(e.bytesDown)));
    return o;
}

// Oldest first for age; most bytes (both ways) first for bytes; the listing's order breaks ties.
bool TunnelCollector::before(const TunnelEntry& a, const TunnelEntry& b) const {
    if (options_.sort == TunnelSort::Age && a.ageMs != b.ageMs) return a.ageMs > b.ageMs;
    if (options_.sort == TunnelSort::Bytes) {
        // Saturating: two counts near 2^64 must not wrap to a small sum.
        uint64_t sa = a.bytesUp + std::min(a.bytesDown, UINT64_MAX - a.bytesUp);
        uint64_t sb = b.bytesUp + std::min(b.bytesDown, UINT64_MAX - b.bytesUp);
        if (sa != sb) return sa > sb;
    }
    return a.order < b.order;
}

bool TunnelCollector::add(TunnelEntry e) {
    auto cmp = [this](const TunnelEntry& a, const TunnelEntry& b) { return before(a, b); };
    if (!options_.limit) {
        if (rows_.size() >= kMaxSortedRows) return false;
        rows_.push_back(std::move(e));
        return true;
    }
    // A heap with the worst kept row on top: a better row replaces it.
    if (rows_.size() < *options_.limit) {
        rows_.push_back(std::move(e));
        std::push_heap(rows_.begin(), rows_.end(), cmp);
    } else if (!rows_.empty() && before(e, rows_.front())) {
        std::pop_heap(rows_.begin(), rows_.end(), cmp);
        rows_.back() = std::move(e);
        std::push_heap(rows_.begin(), rows_.end(), cmp);
    }
    return true;
}

std::vector<TunnelEntry> TunnelCollector::take() {
    std::vector<TunnelEntry> out = std::move(rows_);
    rows_.clear();
    std::sort(out.begin(), out.end(), [this](const TunnelEntry& a, const TunnelEntry& b) { return before(a, b); });
    return out;
}

std::string terminalSafe(std::string_view text) {
    return escapedText(text);
}

std::string formatAge(uint64_t ageMs) {
    uint64_t s = ageMs / 1000;
    char buf[64];
    if (s >= 86400) {
        std::snprintf(buf, sizeof buf, "%" PRIu64 "d%02" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", s / 86400,
                      s / 3600 % 24, s / 60 % 60, s % 60);
    } else if (s >= 3600) {
        std::snprintf(buf, sizeof buf, "%" PRIu64 "h%02" PRIu64 "m%02" PRIu64 "s", s / 3600, s / 60 % 60, s % 60);
    } else if (s >= 60) {
        std::snprintf(buf, sizeof buf, "%" PRIu64 "m%02" PRIu64 "s", s / 60, s % 60);
    } else {
        std::snprintf(buf, sizeof buf, "%" PRIu64 "s", s);
    }
    return buf;
}

std::string tunnelTableHeader() {
    char buf[160];
    std::snprintf(buf, sizeof buf, "%-36s %-24s %5s %7s %4s %-8s %11s %14s %14s\n", "RESPONDER", "SOURCE", "PORT",
                  "WORKER", "GEN", "STATE", "AGE", "BYTES-UP", "BYTES-DOWN");
    return buf;
}

std::string tunnelTableLine(const TunnelEntry& e) {
    const std::string responder = e.responder.empty() ? "-" : terminalSafe(e.responder);
    const std::string source = terminalSafe(e.source);
    const std::string state = terminalSafe(e.workerState);
    std::string line(responder.size() + source.size() + state.size() + 256, '\0');
    int n = std::snprintf(
        line.data(), line.size(), "%-36s %-24s %5u %7lld %4lld %-8s %11s %14" PRIu64 " %14" PRIu64 "\n",
        responder.c_str(), source.c_str(), e.targetPort, static_cast<long long>(e.workerPid),
        static_cast<long long>(e.generation), state.c_str(), formatAge(e.ageMs).c_str(), e.bytesUp, e.bytesDown);
    line.resize(n > 0 ? std::min(static_cast<size_t>(n), line.size() - 1) : 0);
    if (line.empty() || line.back() != '\n') line += '\n';
    return line;
}

namespace {

// What listTunnels prints, as the lines arrive and at the end.
class TunnelPrinter {
public:
    TunnelPrinter(const TunnelOptions& options, std::FILE* out) : options_(options), out_(out), kept_(options) {}

    // One line of the service's answer; false to stop reading (the end, or `error` set).
    bool line(std::string_view text) {
        json_error_t jerr;
        json_t* j = json_loadb(text.data(), text.size(), JSON_REJECT_DUPLICATES, &jerr);
        if (j == nullptr || !json_is_object(j)) {
            if (j != nullptr) json_decref(j);
            error = "the service sent a malformed answer";
            return false;
        }
        if (const char* e = json_string_value(json_object_get(j, "error"))) {
            // A service of a version before --tunnels does not know the command.
            error = std::string_view(e) == "unknown command"
                        ? "the running service cannot list tunnels (it is older than this command; upgrade it)"
                        : e;
            json_decref(j);
            return false;
        }
        if (json_is_true(json_object_get(j, "end"))) {
            end_ = j;
            return false;
        }
        auto entry = tunnelEntryFromJson(j);
        json_decref(j);
        if (!entry) {
            error = "the service sent a malformed tunnel";
            return false;
        }
        entry->order = listed_++;
        if (!kept_.streams()) {
            if (!kept_.add(std::move(*entry))) {
                error = "more than " + std::to_string(kMaxSortedRows) + " tunnels to sort: add --limit";
                return false;
            }
        } else if (!options_.limit || shown_ < *options_.limit) {
            print(*entry);
        }
        return true;
    }

    // After the last line: the kept rows, then the summary; false when the answer had no end.
    bool finish() {
        if (end_ == nullptr || !unsignedMember(end_, "tunnels") || !json_is_array(json_object_get(end_, "workers"))) {
            error = "the service ended the listing early";
            return false;
        }
        for (const TunnelEntry& e : kept_.take()) print(e);
        begin();
        json_t* workers = json_object_get(end_, "workers");
        if (options_.json) {
            std::fprintf(out_, "%s], \"total\": %" PRIu64 ", \"workers\": %s}\n", shown_ > 0 ? "\n" : "", listed_,
                         dump(workers).c_str());
            return true;
        }
        std::fprintf(out_, "%" PRIu64 " tunnel%s", listed_, listed_ == 1 ? "" : "s");
        if (shown_ < listed_) std::fprintf(out_, ", %" PRIu64 " shown", shown_);
        std::fputc('\n', out_);
        size_t i = 0;
        json_t* w = nullptr;
        json_array_foreach(workers, i, w) {
            if (json_is_true(json_object_get(w, "listed"))) continue;
            const char* state = json_string_value(json_object_get(w, "state"));
            const char* reason = json_string_value(json_object_get(w, "reason"));
            std::fprintf(out_, "worker %" PRIu64 " (generation %" PRIu64 ", %s) not listed: %s\n",
                         unsignedMember(w, "pid").value_or(0), unsignedMember(w, "generation").value_or(0),
                         terminalSafe(state != nullptr ? state : "?").c_str(),
                         terminalSafe(reason != nullptr ? reason : "?").c_str());
        }
        return true;
    }

    ~TunnelPrinter() {
        if (end_ != nullptr) json_decref(end_);
    }
    TunnelPrinter(const TunnelPrinter&) = delete;
    TunnelPrinter& operator=(const TunnelPrinter&) = delete;

    std::string error;

private:
    void begin() {
        if (begun_) return;
        begun_ = true;
        std::fputs(options_.json ? "{\"tunnels\": [" : tunnelTableHeader().c_str(), out_);
    }
    void print(const TunnelEntry& e) {
        begin();
        if (options_.json) {
            json_t* j = tunnelEntryToJson(e);
            std::fprintf(out_, "%s%s", shown_ > 0 ? ",\n" : "\n", dump(j).c_str());
            json_decref(j);
        } else {
            std::fputs(tunnelTableLine(e).c_str(), out_);
        }
        ++shown_;
    }

    const TunnelOptions& options_;
    std::FILE* out_;
    TunnelCollector kept_;
    json_t* end_ = nullptr;
    bool begun_ = false;
    uint64_t listed_ = 0;
    uint64_t shown_ = 0;
};

}  // namespace

int listTunnels(const std::string& socketPath, const TunnelOptions& options, std::FILE* out, std::FILE* err) {
    TunnelPrinter printer(options, out);
    // 60 s without a line: the supervisor waits at most 5 s for each worker's chunk, and a worker
    // that misses its pings is replaced within seconds, so only a hung service is that slow.
    Status s = controlLines(socketPath, "{\"command\":\"tunnels\"}", 60,
                            [&](std::string_view line) { return printer.line(line); });
    if (!s) {
        std::fprintf(err, "relaypro: %s\n", s.error().describe().c_str());
        return 1;
    }
    if (!printer.error.empty() || !printer.finish()) {
        std::fflush(out);
        std::fprintf(err, "relaypro: %s\n", terminalSafe(printer.error).c_str());
        return 1;
    }
    return 0;
}

}  // namespace relaypro
