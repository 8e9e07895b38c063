// One end of a supervisor <-> worker channel: a SOCK_SEQPACKET socket driven by libevent.
// Each datagram is one frame (ipc/messages.h) with up to kMaxFdsPerFrame descriptors attached
// (SCM_RIGHTS). Frames that are too long, truncated, or carry too many descriptors close the
// channel with a reason; so does the peer going away. Sends never block: what the socket cannot
// take now waits in a bounded queue.
#pragma once

#include <event2/event.h>

#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/result.h"
#include "common/unique_fd.h"
#include "ipc/messages.h"

namespace relaypro::ipc {

struct Received {
    FrameHeader header;
    std::string body;
    std::vector<UniqueFd> fds;
};

class Channel {
public:
    using OnMessage = std::function<void(Received&&)>;
    using OnClosed = std::function<void(const std::string& reason)>;
    static constexpr size_t kMaxQueuedBytes = 8 << 20;

    // A connected pair (SOCK_SEQPACKET, close-on-exec).
    static Result<std::pair<UniqueFd, UniqueFd>> socketPair();

    Channel(event_base* base, UniqueFd fd, OnMessage onMessage, OnClosed onClosed);
    ~Channel();
    Channel(const Channel&) = delete;
    Channel& operator=(const Channel&) = delete;

    // Sends a frame with borrowed descriptors (duplicated if the frame has to wait). False when
    // the channel is closed or its queue is full (the caller decides whether that is fatal, and
    // says so where it ignores the result).
    [[nodiscard]] bool send(const std::string& frame, const std::vector<int>& fds = {});
    template <typename M>
    [[nodiscard]] bool send(const M& message, uint32_t generation, const std::vector<int>& fds = {}) {
        return send(frame(message, generation), fds);
    }
    // Sends frames without descriptors in as few system calls as possible (sendmmsg), in order
    // and after anything already queued; what the socket does not take waits in the queue.
    // Returns how many frames were accepted (sent or queued): fewer when the queue is full or
    // the channel closed, and then the rest are the caller's to count as dropped.
    size_t sendAll(const std::vector<std::string>& frames);
    // Sends everything queued, blocking up to `timeoutMs` (used right before an exit or exec).
    bool flush(int timeoutMs);

    [[nodiscard]] bool open() const { return fd_.valid(); }
    [[nodiscard]] int fd() const { return fd_.get(); }
    [[nodiscard]] size_t queuedBytes() const { return queuedBytes_; }
    // Stops reading (the socket stays open for sending until close()).
    void pauseReading();
    // Delivers the frames waiting now (a bounded number), without waiting for the loop; the end
    // of the channel, if it comes, closes it without the closed handler (the caller knows).
    void readPending();
    void close();
    // Gives the socket away (an upgrade hands it to the next supervisor image).
    UniqueFd release();

private:
    struct Outgoing {
        std::string frame;
        std::vector<UniqueFd> fds;
    };
    static void onReadable(int fd, short what, void* arg);
    static void onWritable(int fd, short what, void* arg);
    void readSome();
    bool trySend(const std::string& frame, const std::vector<int>& fds);
    bool enqueue(const std::string& frame, const std::vector<int>& fds);
    void fail(const std::string& reason);
    bool quietEnd_ = false;  // readPending
    uint64_t framesRead_ = 0;

    event_base* base_;
    UniqueFd fd_;
    OnMessage onMessage_;
    OnClosed onClosed_;
    event* readEvent_ = nullptr;
    event* writeEvent_ = nullptr;
    std::deque<Outgoing> queue_;
    std::string buffer_;  // receive buffer, reused
    size_t queuedBytes_ = 0;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Sends one frame on a blocking or non-blocking socket without an event loop (tests, fuzzing).
Status sendFrame(int fd, const std::string& frame, const std::vector<int>& fds = {});

}  // namespace relaypro::ipc
