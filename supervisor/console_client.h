// HTTPS to the console (console-api.md): libcurl's multi interface driven by the supervisor's
// libevent loop, so a slow console never blocks signals, the watchdog or the workers. JSON
// bodies, `User-Agent: RelayPro/<version>`, the console's certificate checked against
// consoleCACert (or the system trust store, common/trust_store) with the host name, the system proxy when
// proxyEnabled (NO_PROXY honoured), names from RELAYPRO_HOSTS_FILE first. Bodies and tokens are
// never logged.
#pragma once

#include <event2/event.h>
#include <jansson.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "common/config.h"
#include "common/log_record.h"
#include "common/name_resolution.h"
#include "common/trust_store.h"
#include "supervisor/console_answers.h"

namespace relaypro {

struct ConsoleResponse {
    bool transportOk = false;    // an HTTP answer arrived (any status)
    std::string transportError;  // curl's reason otherwise (timeout, refused, TLS, ...)
    bool timedOut = false;
    long status = 0;
    // The envelope: {"success", "statusCode", "result", "errors"}; null when the body is not one.
    json_t* envelope = nullptr;  // owned
    [[nodiscard]] bool success() const;

    ConsoleResponse() = default;
    ConsoleResponse(const ConsoleResponse&) = delete;
    ConsoleResponse& operator=(const ConsoleResponse&) = delete;
    ConsoleResponse(ConsoleResponse&& o) noexcept;
    ConsoleResponse& operator=(ConsoleResponse&& o) noexcept;
    ~ConsoleResponse();
};

class ConsoleClient {
public:
    using Callback = std::function<void(ConsoleResponse&&)>;

    ConsoleClient(event_base* base, const Logger& log);
    ~ConsoleClient();  // cancels what is in flight without calling back
    ConsoleClient(const ConsoleClient&) = delete;
    ConsoleClient& operator=(const ConsoleClient&) = delete;

    // Where and how to reach the console; requests already in flight keep their settings.
    void configure(const Config& config, const HostsTable& hosts);

    // POSTs `body` (JSON) to `path` with `Authorization: Bearer <bearer>`; `done` runs once on
    // the loop. Returns an id for cancel().
    uint64_t post(const std::string& path, const std::string& bearer, const std::string& body,
                  std::chrono::milliseconds timeout, Callback done);
    void cancel(uint64_t id);
    // Told of every call that ended (not of a cancelled one), before its callback: the metrics.
    using Observer = std::function<void(const std::string& path, const ConsoleResponse&, std::chrono::microseconds)>;
    void observe(Observer o) { observer_ = std::move(o); }
    [[nodiscard]] size_t inFlight() const { return requests_.size(); }

private:
    struct Request;
    struct SocketWatch;
    static int onSocket(void* easy, int fd, int what, void* clientp, void* socketp);
    static int onTimer(void* multi, long timeoutMs, void* clientp);
    static void onSocketEvent(int fd, short what, void* arg);
    static void onTimerEvent(int, short, void* arg);
    static size_t onBody(char* data, size_t size, size_t n, void* userp);
    void drive(int fd, int flags);
    void finished();

    event_base* base_;
    Logger log_;
    Observer observer_;
    void* multi_ = nullptr;  // CURLM*
    event* timer_ = nullptr;
    std::string baseUrl_;
    std::string caPem_;
    TrustStorePaths systemStore_;   // read at configure(): the console without caPem_, an https:// proxy
    std::string proxy_;             // empty: direct
    std::string proxyCredentials_;  // "user:password" for the proxy, a secret
    std::string resolve_;           // "host:port:addr,addr" from the hosts file, or empty
    std::string userAgent_;
    uint64_t nextId_ = 1;
    std::map<uint64_t, std::unique_ptr<Request>> requests_;
};

}  // namespace relaypro
