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
    ~Client() {
        if (readEvent != nullptr) event_free(readEvent);
        if (timeout != nullptr) event_free(timeout);
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
        auto c = std::make_unique<Client>();
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
    handler_(name, request, std::move(respond));
    json_decref(request);
}

void ControlSocket::Respond::operator()(json_t* answer) {
    auto send = std::move(send_);
    send_ = nullptr;
    release_ = nullptr;
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
    return release ? release() : -1;
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

Result<std::string> controlRequest(const std::string& path, const std::string& requestJson, int timeoutSeconds) {
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
    std::string answer;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSeconds);
    while (answer.find('\n') == std::string::npos) {
        auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
        if (left <= 0) return Error{"no answer from the service within " + std::to_string(timeoutSeconds) + "s"};
        pollfd p{fd.get(), POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
        char buf[4096];
        ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
        if (n <= 0) return Error{"the service closed the control connection without an answer"};
        answer.append(buf, static_cast<size_t>(n));
        if (answer.size() > (1 << 20)) return Error{"the service's answer is too long"};
    }
    return answer.substr(0, answer.find('\n'));
}

}  // namespace relaypro
