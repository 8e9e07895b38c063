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
    struct Client;

public:
    // An answer of many lines, written as the client takes them: what it has not taken yet is
    // held here, and the writer is told when all of it was taken (to write more then). A client
    // that takes nothing for kStallTimeout, closes, or resets is gone.
    class Stream {
    public:
        static constexpr int kStallSeconds = 30;
        // Queues one line (the object is owned); false when the client is gone.
        bool write(json_t* line);
        // Bytes queued that the client has not taken.
        [[nodiscard]] size_t pending() const;
        // `drained`: everything queued was taken; `gone`: the client left (never after end()).
        // Both are called from the loop, never from within write().
        void watch(std::function<void()> drained, std::function<void()> gone);
        // The last line is written: the connection closes once the client has taken it.
        void end();

    private:
        friend class ControlSocket;
        std::weak_ptr<Client> client_;
    };

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
        // Turns the answer into a stream of lines (an empty Respond gives a stream that is gone).
        std::shared_ptr<Stream> stream();

    private:
        friend class ControlSocket;
        std::function<void(json_t*)> send_;
        std::function<int()> release_;
        std::function<std::shared_ptr<Stream>()> stream_;
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
    ControlSocket(event_base* base, const Logger& log, Handler handler, IsWorker isWorker);
    static void onAccept(int fd, short, void* arg);
    static void onClientReadable(int fd, short, void* arg);
    static void onClientTimeout(int fd, short, void* arg);
    static void onClientWritable(int fd, short, void* arg);
    bool flushStream(Client* c);
    void streamGone(Client* c);
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
    std::vector<std::shared_ptr<Client>> clients_;  // shared: a Stream watches its client
    std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// The client side: sends one request, waits for the answer line (up to `timeoutSeconds`).
Result<std::string> controlRequest(const std::string& path, const std::string& requestJson, int timeoutSeconds);
// The same for an answer of many lines: `onLine` gets each (without its newline) until it returns
// false or the service closes the connection; a line longer than 1 MiB, or `timeoutSeconds`
// without a byte, is an error.
Status controlLines(const std::string& path, const std::string& requestJson, int timeoutSeconds,
                    const std::function<bool(std::string_view line)>& onLine);

}  // namespace relaypro
