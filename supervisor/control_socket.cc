#include "supervisor/control_socket.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

namespace relaypro {
namespace {

constexpr size_t kMaxRequestBytes = 4096;

bool fillAddress(const std::string& path, sockaddr_un& a) {
    if (path.size() >= sizeof a.sun_path) return false;
    std::memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return true;
}

json_t* errorAnswer(const std::string& message) {
    return json_pack("{s:s}", "error", message.c_str());
}

}  // namespace

struct ControlSocket::Client {
    ControlSocket* owner;
    UniqueFd fd;
    event* readEvent = nullptr;
    event* timeout = nullptr;
    std::string buffer;
    bool answered = false;
    bool dispatched = false;
    // A stream (Respond::stream): the lines the client has not taken, and its writer's callbacks.
    bool streaming = false;
    bool ending = false;
    std::string out;
    size_t outOffset = 0;
    event* writeEvent = nullptr;
    std::function<void()> drained;
    std::function<void()> gone;
    ~Client() {
        if (readEvent != nullptr) event_free(readEvent);
        if (timeout != nullptr) event_free(timeout);
        if (writeEvent != nullptr) event_free(writeEvent);
    }
};

ControlSocket::ControlSocket(event_base* base, const Logger& log, Handler handler, IsWorker isWorker)
    : base_(base), log_(log), handler_(std::move(handler)), isWorker_(std::move(isWorker)) {}

Result<std::unique_ptr<ControlSocket>> ControlSocket::open(event_base* base, const std::string& path, const Logger& log,
                                                           Handler handler, IsWorker isWorker) {
    sockaddr_un a{};
    if (!fillAddress(path, a)) return Error{"control socket path " + path + " is too long for a Unix socket"};
    // A socket left by a previous run (ours) is replaced; anything else at that path is not.
    struct stat st {};
    if (::lstat(path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode) || st.st_uid != ::geteuid()) {
            return Error{path + " exists and is not this service's socket; remove it"};
        }
        ::unlink(path.c_str());
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return sysError("cannot create the control socket");
    mode_t old = ::umask(0177);  // created 0600, never wider for an instant
    int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::umask(old);
    if (rc != 0) return sysError("cannot bind the control socket " + path);
    if (::listen(fd.get(), 16) != 0) return sysError("cannot listen on the control socket");
    std::unique_ptr<ControlSocket> s(new ControlSocket(base, log, std::move(handler), std::move(isWorker)));
    s->path_ = path;
    s->fd_ = std::move(fd);
    s->acceptEvent_ = event_new(base, s->fd_.get(), EV_READ | EV_PERSIST, &ControlSocket::onAccept, s.get());
    event_add(s->acceptEvent_, nullptr);
    return s;
}

std::unique_ptr<ControlSocket> ControlSocket::adopt(event_base* base, int fd, const std::string& path,
                                                    const Logger& log, Handler handler, IsWorker isWorker) {
    std::unique_ptr<ControlSocket> s(new ControlSocket(base, log, std::move(handler), std::move(isWorker)));
    s->path_ = path;
    ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    s->fd_.reset(fd);
    s->acceptEvent_ = event_new(base, fd, EV_READ | EV_PERSIST, &ControlSocket::onAccept, s.get());
    event_add(s->acceptEvent_, nullptr);
    return s;
}

int ControlSocket::release() {
    if (acceptEvent_ != nullptr) event_del(acceptEvent_);
    return fd_.release();
}

ControlSocket::~ControlSocket() {
    *alive_ = false;
    clients_.clear();
    if (acceptEvent_ != nullptr) event_free(acceptEvent_);
    if (fd_) ::unlink(path_.c_str());
}

void ControlSocket::onAccept(int, short, void* arg) {
    auto* self = static_cast<ControlSocket*>(arg);
    while (true) {
        UniqueFd fd(::accept4(self->fd_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (!fd) return;
        ucred cred{};
        socklen_t len = sizeof cred;
        if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 ||
            (cred.uid != 0 && cred.uid != ::geteuid()) || self->isWorker_(cred.pid)) {
            self->log_.warn("control socket peer refused",
                            {{"peerPid", static_cast<int64_t>(cred.pid)}, {"peerUid", static_cast<int64_t>(cred.uid)}});
            continue;  // closed without an answer
        }
        auto c = std::make_shared<Client>();
        c->owner = self;
        c->fd = std::move(fd);
        c->readEvent =
            event_new(self->base_, c->fd.get(), EV_READ | EV_PERSIST, &ControlSocket::onClientReadable, c.get());
        c->timeout = evtimer_new(self->base_, &ControlSocket::onClientTimeout, c.get());
        timeval tv{5, 0};
        event_add(c->readEvent, nullptr);
        evtimer_add(c->timeout, &tv);
        self->clients_.push_back(std::move(c));
    }
}

void ControlSocket::onClientTimeout(int, short, void* arg) {
    auto* c = static_cast<Client*>(arg);
    if (c->streaming) return c->owner->streamGone(c);  // it took nothing for kStallSeconds
    if (!c->dispatched) c->owner->drop(c);
}

void ControlSocket::onClientReadable(int, short, void* arg) {
    auto* c = static_cast<Client*>(arg);
    ControlSocket* self = c->owner;
    char buf[1024];
    ssize_t n = ::recv(c->fd.get(), buf, sizeof buf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        if (!c->dispatched) return self->drop(c);
        if (c->streaming) return self->streamGone(c);
        // The client left while its answer is being prepared (an upgrade): nothing more to read,
        // and an end of file stays readable, so the event goes (a persistent one would spin).
        event_del(c->readEvent);
        return;
    }
    if (c->dispatched) return;  // nothing more is read after the request
    c->buffer.append(buf, static_cast<size_t>(n));
    if (c->buffer.size() > kMaxRequestBytes) {
        self->log_.warn("control socket request refused", {{"reason", "longer than 4096 bytes"}});
        self->finish(c, errorAnswer("request too long"));
        return;
    }
    if (c->buffer.find('\n') == std::string::npos) return;
    self->dispatch(c);
}

void ControlSocket::dispatch(Client* c) {
    c->dispatched = true;
    evtimer_del(c->timeout);
    std::string line = c->buffer.substr(0, c->buffer.find('\n'));
    json_error_t err;
    json_t* request = json_loadb(line.data(), line.size(), JSON_REJECT_DUPLICATES, &err);
    const char* command = request != nullptr ? json_string_value(json_object_get(request, "command")) : nullptr;
    if (request == nullptr || !json_is_object(request) || command == nullptr) {
        log_.warn("control socket request refused", {{"reason", "malformed request"}});
        if (request != nullptr) json_decref(request);
        finish(c, errorAnswer("malformed request"));
        return;
    }
    std::weak_ptr<bool> alive = alive_;
    std::string name = command;
    Respond respond;
    respond.send_ = [this, c, alive](json_t* answer) {
        if (alive.expired()) {
            json_decref(answer);
            return;
        }
        finish(c, answer);
    };
    respond.release_ = [this, c, alive]() { return alive.expired() ? -1 : releaseClient(c); };
    respond.stream_ = [this, c, alive]() {
        auto stream = std::make_shared<Stream>();
        if (alive.expired()) return stream;
        for (auto& client : clients_) {
            if (client.get() != c) continue;
            c->streaming = true;
            c->writeEvent = event_new(base_, c->fd.get(), EV_WRITE | EV_PERSIST, &ControlSocket::onClientWritable, c);
            stream->client_ = client;
        }
        return stream;
    };
    handler_(name, request, std::move(respond));
    json_decref(request);
}

void ControlSocket::Respond::operator()(json_t* answer) {
    auto send = std::move(send_);
    send_ = nullptr;
    release_ = nullptr;
    stream_ = nullptr;
    if (send) {
        send(answer);
    } else {
        json_decref(answer);
    }
}

int ControlSocket::Respond::release() {
    auto release = std::move(release_);
    send_ = nullptr;
    release_ = nullptr;
    stream_ = nullptr;
    return release ? release() : -1;
}

std::shared_ptr<ControlSocket::Stream> ControlSocket::Respond::stream() {
    auto make = std::move(stream_);
    send_ = nullptr;
    release_ = nullptr;
    stream_ = nullptr;
    return make ? make() : std::make_shared<Stream>();
}

bool ControlSocket::Stream::write(json_t* line) {
    auto c = client_.lock();
    if (!c || c->ending) {
        json_decref(line);
        return false;
    }
    // ASCII only: whatever a worker's strings hold reaches the operator's terminal escaped.
    char* text = json_dumps(line, JSON_COMPACT | JSON_ENSURE_ASCII);
    json_decref(line);
    if (text == nullptr) return true;  // nothing to write (jansson out of memory)
    if (c->outOffset > 0 && c->outOffset == c->out.size()) {
        c->out.clear();
        c->outOffset = 0;
    }
    c->out.append(text);
    c->out.push_back('\n');
    std::free(text);
    if (event_pending(c->writeEvent, EV_WRITE, nullptr) == 0) {
        event_add(c->writeEvent, nullptr);
        timeval tv{kStallSeconds, 0};
        evtimer_add(c->timeout, &tv);
    }
    return true;
}

size_t ControlSocket::Stream::pending() const {
    auto c = client_.lock();
    return c ? c->out.size() - c->outOffset : 0;
}

void ControlSocket::Stream::watch(std::function<void()> drained, std::function<void()> gone) {
    if (auto c = client_.lock()) {
        c->drained = std::move(drained);
        c->gone = std::move(gone);
    }
}

void ControlSocket::Stream::end() {
    auto c = client_.lock();
    if (!c || c->ending) return;
    c->ending = true;
    c->drained = nullptr;
    c->gone = nullptr;
    event_add(c->writeEvent, nullptr);
    event_active(c->writeEvent, EV_WRITE, 0);  // closes from the loop once everything is taken
}

void ControlSocket::onClientWritable(int, short, void* arg) {
    auto* c = static_cast<Client*>(arg);
    c->owner->flushStream(c);
}

// Sends what the client takes; false when the client is gone (dropped).
bool ControlSocket::flushStream(Client* c) {
    size_t before = c->outOffset;
    while (c->outOffset < c->out.size()) {
        ssize_t n = ::send(c->fd.get(), c->out.data() + c->outOffset, c->out.size() - c->outOffset,
                           MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            c->outOffset += static_cast<size_t>(n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (c->outOffset > before) {
                timeval tv{Stream::kStallSeconds, 0};
                evtimer_add(c->timeout, &tv);  // it takes some: the stall deadline starts again
            }
            return true;
        }
        streamGone(c);
        return false;
    }
    c->out.clear();
    c->outOffset = 0;
    event_del(c->writeEvent);
    evtimer_del(c->timeout);
    if (c->ending) {
        drop(c);
        return false;
    }
    if (c->drained) {
        auto drained = c->drained;  // it may write, end, or be the last user of the client
        drained();
    }
    return true;
}

void ControlSocket::streamGone(Client* c) {
    auto gone = c->ending ? nullptr : std::move(c->gone);
    drop(c);
    if (gone) gone();
}

namespace {

void sendAnswerLine(int fd, json_t* answer) {
    char* text = json_dumps(answer, JSON_COMPACT);
    json_decref(answer);
    if (text == nullptr) return;
    std::string line = std::string(text) + "\n";
    std::free(text);
    // Answers are small: the socket takes them whole; a client that does not read loses it.
    [[maybe_unused]] ssize_t w = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

}  // namespace

void ControlSocket::answerOn(int fd, json_t* answer) {
    if (fd < 0) {
        json_decref(answer);
        return;
    }
    sendAnswerLine(fd, answer);
    ::close(fd);
}

void ControlSocket::finish(Client* c, json_t* answer) {
    sendAnswerLine(c->fd.get(), answer);
    drop(c);
}

int ControlSocket::releaseClient(Client* c) {
    for (auto it = clients_.begin(); it != clients_.end(); ++it) {
        if (it->get() == c) {
            int fd = (*it)->fd.release();
            clients_.erase(it);  // its events go with it
            ::fcntl(fd, F_SETFD, FD_CLOEXEC);
            return fd;
        }
    }
    return -1;
}

void ControlSocket::drop(Client* c) {
    for (auto it = clients_.begin(); it != clients_.end(); ++it) {
        if (it->get() == c) {
            clients_.erase(it);
            return;
        }
    }
}

Status controlLines(const std::string& path, const std::string& requestJson, int timeoutSeconds,
                    const std::function<bool(std::string_view line)>& onLine) {
    sockaddr_un a{};
    if (!fillAddress(path, a)) return Error{"control socket path too long: " + path};
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) return sysError("socket");
    if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        return sysError("the service is not running (cannot connect to " + path + ")");
    }
    std::string line = requestJson + "\n";
    if (::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
        return sysError("cannot send to the service");
    }
    std::string buffer;
    bool any = false;
    while (true) {
        pollfd p{fd.get(), POLLIN, 0};
        int ready = ::poll(&p, 1, timeoutSeconds * 1000);
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) return Error{"no answer from the service within " + std::to_string(timeoutSeconds) + "s"};
        char buf[16384];
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
        buffer.append(buf, static_cast<size_t>(n));
        size_t start = 0;
        for (size_t nl = buffer.find('\n'); nl != std::string::npos; nl = buffer.find('\n', start)) {
            any = true;
            if (!onLine(std::string_view(buffer).substr(start, nl - start))) return Status{};
            start = nl + 1;
        }
        buffer.erase(0, start);
        if (buffer.size() > (1 << 20)) return Error{"the service's answer is too long"};
    }
    if (!any) return Error{"the service closed the control connection without an answer"};
    if (!buffer.empty()) return Error{"the service's answer ends in the middle of a line"};
    return Status{};
}

Result<std::string> controlRequest(const std::string& path, const std::string& requestJson, int timeoutSeconds) {
    std::string answer;
    auto s = controlLines(path, requestJson, timeoutSeconds, [&](std::string_view line) {
        answer = line;
        return false;
    });
    if (!s) return s.error();
    return answer;
}

}  // namespace relaypro
