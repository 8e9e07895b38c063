#include "ipc/channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace relaypro::ipc {
namespace {

constexpr int kMaxFramesPerWakeup = 64;

bool sendWithFds(int fd, const std::string& frame, const std::vector<int>& fds, int& err) {
    iovec iov{const_cast<char*>(frame.data()), frame.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFdsPerFrame)];
    if (!fds.empty()) {
        msg.msg_control = control;
        msg.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
        cmsghdr* c = CMSG_FIRSTHDR(&msg);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
        std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    while (true) {
        ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) return true;
        if (errno == EINTR) continue;
        err = errno;
        return false;
    }
}

}  // namespace

Result<std::pair<UniqueFd, UniqueFd>> Channel::socketPair() {
    int sv[2];
    if (::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) != 0) return sysError("socketpair");
    return std::make_pair(UniqueFd(sv[0]), UniqueFd(sv[1]));
}

Channel::Channel(event_base* base, UniqueFd fd, OnMessage onMessage, OnClosed onClosed)
    : base_(base), fd_(std::move(fd)), onMessage_(std::move(onMessage)), onClosed_(std::move(onClosed)) {
    readEvent_ = event_new(base_, fd_.get(), EV_READ | EV_PERSIST, &Channel::onReadable, this);
    writeEvent_ = event_new(base_, fd_.get(), EV_WRITE | EV_PERSIST, &Channel::onWritable, this);
    event_add(readEvent_, nullptr);
}

Channel::~Channel() {
    *alive_ = false;
    if (readEvent_ != nullptr) event_free(readEvent_);
    if (writeEvent_ != nullptr) event_free(writeEvent_);
}

void Channel::pauseReading() {
    if (readEvent_ != nullptr) event_del(readEvent_);
}

void Channel::close() {
    if (readEvent_ != nullptr) event_del(readEvent_);
    if (writeEvent_ != nullptr) event_del(writeEvent_);
    fd_.reset();
    queue_.clear();
    queuedBytes_ = 0;
}

UniqueFd Channel::release() {
    if (readEvent_ != nullptr) event_del(readEvent_);
    if (writeEvent_ != nullptr) event_del(writeEvent_);
    return std::move(fd_);
}

bool Channel::trySend(const std::string& frame, const std::vector<int>& fds) {
    int err = 0;
    if (sendWithFds(fd_.get(), frame, fds, err)) return true;
    if (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) return false;
    fail(std::string("send failed: ") + std::strerror(err));
    return false;
}

bool Channel::send(const std::string& frame, const std::vector<int>& fds) {
    if (!fd_ || frame.size() > kMaxFrameBytes || fds.size() > kMaxFdsPerFrame) return false;
    if (queue_.empty() && trySend(frame, fds)) return true;
    return enqueue(frame, fds);
}

bool Channel::enqueue(const std::string& frame, const std::vector<int>& fds) {
    if (!fd_) return false;
    if (queuedBytes_ + frame.size() > kMaxQueuedBytes) return false;
    Outgoing o{frame, {}};
    for (int f : fds) o.fds.emplace_back(::fcntl(f, F_DUPFD_CLOEXEC, 0));
    queuedBytes_ += frame.size();
    queue_.push_back(std::move(o));
    event_add(writeEvent_, nullptr);
    return true;
}

size_t Channel::sendAll(const std::vector<std::string>& frames) {
    size_t done = 0;
    if (fd_ && queue_.empty()) {
        constexpr size_t kBatch = 64;
        iovec iov[kBatch];
        mmsghdr msgs[kBatch];
        while (done < frames.size()) {
            size_t n = 0;
            for (; n < kBatch && done + n < frames.size(); ++n) {
                const std::string& f = frames[done + n];
                if (f.size() > kMaxFrameBytes) break;
                iov[n] = iovec{const_cast<char*>(f.data()), f.size()};
                msgs[n] = mmsghdr{};
                msgs[n].msg_hdr.msg_iov = &iov[n];
                msgs[n].msg_hdr.msg_iovlen = 1;
            }
            if (n == 0) return done;  // an oversized frame: refused, like send() refuses it
            int sent = ::sendmmsg(fd_.get(), msgs, static_cast<unsigned>(n), MSG_NOSIGNAL | MSG_DONTWAIT);
            if (sent < 0) {
                if (errno == EINTR) continue;
                if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) break;
                fail(std::string("send failed: ") + std::strerror(errno));
                return done;
            }
            done += static_cast<size_t>(sent);
            if (static_cast<size_t>(sent) < n) break;  // the socket is full: queue the rest
        }
    }
    for (; done < frames.size(); ++done) {
        if (frames[done].size() > kMaxFrameBytes || !enqueue(frames[done], {})) break;
    }
    return done;
}

void Channel::onWritable(int, short, void* arg) {
    auto* self = static_cast<Channel*>(arg);
    while (!self->queue_.empty()) {
        Outgoing& o = self->queue_.front();
        std::vector<int> raw;
        for (auto& f : o.fds) raw.push_back(f.get());
        if (!self->trySend(o.frame, raw)) return;  // still full (or failed: fail() cleaned up)
        self->queuedBytes_ -= o.frame.size();
        self->queue_.pop_front();
    }
    event_del(self->writeEvent_);
}

bool Channel::flush(int timeoutMs) {
    while (!queue_.empty() && fd_) {
        pollfd p{fd_.get(), POLLOUT, 0};
        if (::poll(&p, 1, timeoutMs) <= 0) return false;
        Outgoing& o = queue_.front();
        std::vector<int> raw;
        for (auto& f : o.fds) raw.push_back(f.get());
        if (!trySend(o.frame, raw)) {
            if (!fd_) return false;
            continue;
        }
        queuedBytes_ -= o.frame.size();
        queue_.pop_front();
    }
    if (writeEvent_ != nullptr) event_del(writeEvent_);
    return queue_.empty();
}

void Channel::onReadable(int, short, void* arg) {
    static_cast<Channel*>(arg)->readSome();
}

void Channel::readSome() {
    std::weak_ptr<bool> alive = alive_;
    for (int i = 0; i < kMaxFramesPerWakeup && fd_; ++i) {
        std::string& buf = buffer_;
        buf.resize(kMaxFrameBytes + 1);  // one byte more than allowed: detects long frames
        iovec iov{buf.data(), buf.size()};
        msghdr msg{};
        msg.msg_iov = &iov;
        msg.msg_iovlen = 1;
        alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * (kMaxFdsPerFrame + 1))];
        msg.msg_control = control;
        msg.msg_controllen = sizeof control;
        ssize_t n = ::recvmsg(fd_.get(), &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            return fail(std::string("receive failed: ") + std::strerror(errno));
        }
        // Take ownership of every descriptor first, so none leaks whatever happens next.
        std::vector<UniqueFd> fds;
        for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
            size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            for (size_t k = 0; k < count; ++k) {
                int f = -1;
                std::memcpy(&f, CMSG_DATA(c) + k * sizeof(int), sizeof f);
                fds.emplace_back(f);
            }
        }
        if (n == 0) return fail("the peer closed the channel");
        if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) != 0 || static_cast<size_t>(n) > kMaxFrameBytes) {
            return fail("a frame longer than " + std::to_string(kMaxFrameBytes) +
                        " bytes or with too many descriptors");
        }
        if (fds.size() > kMaxFdsPerFrame) return fail("too many descriptors in one frame");
        buf.resize(static_cast<size_t>(n));
        auto header = decodeFrameHeader(buf);
        if (!header) return fail("a malformed frame header");
        Received r{*header, buf.substr(kFrameHeaderBytes), std::move(fds)};
        ++framesRead_;
        onMessage_(std::move(r));
        if (alive.expired() || !*alive.lock()) return;  // the handler destroyed this channel
    }
}

void Channel::readPending() {
    std::weak_ptr<bool> alive = alive_;
    quietEnd_ = true;
    // The peer is gone: what it sent is all there will be, so everything is read (a socket's
    // buffer bounds it), not only a wake-up's worth.
    for (uint64_t before = ~framesRead_; before != framesRead_ && fd_ && !alive.expired() && *alive.lock();) {
        before = framesRead_;
        readSome();
    }
    if (!alive.expired() && *alive.lock()) quietEnd_ = false;
}

void Channel::fail(const std::string& reason) {
    close();
    if (onClosed_ && !quietEnd_) {
        OnClosed cb = onClosed_;  // the callback may destroy this object
        cb(reason);
    }
}

Status sendFrame(int fd, const std::string& frame, const std::vector<int>& fds) {
    int err = 0;
    if (!sendWithFds(fd, frame, fds, err)) return Error{"send failed", err};
    return {};
}

}  // namespace relaypro::ipc
