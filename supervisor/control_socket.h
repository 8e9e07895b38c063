// The control socket (<privateFolder>/control.sock, mode 0600; spec/cli.md): `relaypro status`
// and `relaypro upgrade` talk to the running service over it. One JSON request line, one JSON
// answer line. A peer is accepted only if SO_PEERCRED shows uid 0 or the service's own uid and
// a pid that is not one of the workers'. Anything malformed or unknown is refused and logged.
#pragma once

#include <event2/event.h>
#include <jansson.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/log_record.h"
#include "common/result.h"
#include "common/unique_fd.h"

namespace relaypro {

class ControlSocket {
public:
    // The answer to one request: may be given later (an upgrade answers when it is done), at most
    // once, or the connection released to be answered by the next supervisor image.
    class Respond {
    public:
        Respond() = default;
        Respond(std::nullptr_t) {}  // NOLINT(google-explicit-constructor): "no one to answer"
        // Sends `answer` (owned) and ends the connection; a Respond that is empty drops it.
        void operator()(json_t* answer);
        explicit operator bool() const { return static_cast<bool>(send_); }
        // The connection's descriptor, given away (close-on-exec set) for an answer written with
        // answerOn(); -1 when there is none. The Respond is empty afterwards.
        int release();

    private:
        friend class ControlSocket;
        std::function<void(json_t*)> send_;
        std::function<int()> release_;
    };
    using Handler = std::function<void(const std::string& command, json_t* request, Respond respond)>;
    using IsWorker = std::function<bool(pid_t)>;

    static Result<std::unique_ptr<ControlSocket>> open(event_base* base, const std::string& path, const Logger& log,
                                                       Handler handler, IsWorker isWorker);
    // Takes over a listening control socket handed over by the previous supervisor image.
    static std::unique_ptr<ControlSocket> adopt(event_base* base, int fd, const std::string& path, const Logger& log,
                                                Handler handler, IsWorker isWorker);
    // Gives the listening socket away (upgrade); the socket file stays.
    int release();
    // Writes `answer` (owned) as the one answer line on a connection a Respond released, and
    // closes it.
    static void answerOn(int fd, json_t* answer);
    ~ControlSocket();
    ControlSocket(const ControlSocket&) = delete;
    ControlSocket& operator=(const ControlSocket&) = delete;

private:
    struct Client;
    ControlSocket(event_base* base, const Logger& log, Handler handler, IsWorker isWorker);
    static void onAccept(int fd, short, void* arg);
    static void onClientReadable(int fd, short, void* arg);
    static void onClientTimeout(int fd, short, void* arg);
    void dispatch(Client* c);
    void finish(Client* c, json_t* answer);
    void drop(Client* c);
    int releaseClient(Client* c);

    event_base* base_;
    const Logger& log_;
    Handler handler_;
    IsWorker isWorker_;
    std::string path_;
    UniqueFd fd_;
    event* acceptEvent_ = nullptr;
    std::vector<std::unique_ptr<Client>> clients_;
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The client side: sends one request, waits for the answer line (up to `timeoutSeconds`).
Result<std::string> controlRequest(const std::string& path, const std::string& requestJson, int timeoutSeconds);

}  // namespace relaypro
