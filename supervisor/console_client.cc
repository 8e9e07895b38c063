#include "supervisor/console_client.h"

#include <curl/curl.h>
#include <sodium.h>

#include <utility>

#include "supervisor/version.h"

namespace relaypro {
namespace {

constexpr size_t kMaxResponseBytes = 1 << 20;

CURLM* multi(void* m) {
    return static_cast<CURLM*>(m);
}

}  // namespace

bool ConsoleResponse::success() const {
    return envelope != nullptr && json_is_true(json_object_get(envelope, "success"));
}

ConsoleResponse::ConsoleResponse(ConsoleResponse&& o) noexcept
    : transportOk(o.transportOk),
      transportError(std::move(o.transportError)),
      timedOut(o.timedOut),
      status(o.status),
      envelope(std::exchange(o.envelope, nullptr)) {}

ConsoleResponse& ConsoleResponse::operator=(ConsoleResponse&& o) noexcept {
    if (this != &o) {
        json_decref(envelope);
        transportOk = o.transportOk;
        transportError = std::move(o.transportError);
        timedOut = o.timedOut;
        status = o.status;
        envelope = std::exchange(o.envelope, nullptr);
    }
    return *this;
}

ConsoleResponse::~ConsoleResponse() {
    json_decref(envelope);
}

struct ConsoleClient::Request {
    uint64_t id = 0;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    curl_slist* resolve = nullptr;  // libcurl reads it when the transfer starts, not when set
    std::string body;               // may hold a credential: wiped
    std::string authorization;
    std::string received;
    char error[CURL_ERROR_SIZE] = {};
    Callback done;
    std::string path;  // for the metrics
    ~Request() {
        if (easy != nullptr) curl_easy_cleanup(easy);
        curl_slist_free_all(headers);
        curl_slist_free_all(resolve);
        sodium_memzero(body.data(), body.size());
        sodium_memzero(authorization.data(), authorization.size());
        sodium_memzero(received.data(), received.size());
    }
};

struct ConsoleClient::SocketWatch {
    ConsoleClient* client;
    event* ev;
};

ConsoleClient::ConsoleClient(event_base* base, const Logger& log) : base_(base), log_(log) {
    static const bool initialised = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    (void)initialised;
    multi_ = curl_multi_init();
    curl_multi_setopt(multi(multi_), CURLMOPT_SOCKETFUNCTION, &ConsoleClient::onSocket);
    curl_multi_setopt(multi(multi_), CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi(multi_), CURLMOPT_TIMERFUNCTION, &ConsoleClient::onTimer);
    curl_multi_setopt(multi(multi_), CURLMOPT_TIMERDATA, this);
    timer_ = evtimer_new(base_, &ConsoleClient::onTimerEvent, this);
    userAgent_ = "RelayPro/" + std::string(versionString());
}

ConsoleClient::~ConsoleClient() {
    for (auto& [id, r] : requests_) curl_multi_remove_handle(multi(multi_), r->easy);
    requests_.clear();
    curl_multi_cleanup(multi(multi_));
    event_free(timer_);
    sodium_memzero(proxyCredentials_.data(), proxyCredentials_.size());
}

void ConsoleClient::configure(const Config& config, const HostsTable& hosts) {
    const ConsoleAddress& a = config.consoleAddress;
    const bool v6 = a.host.find(':') != std::string::npos;
    const std::string host = v6 ? "[" + a.host + "]" : a.host;
    baseUrl_ = "https://" + host + ":" + std::to_string(a.port);
    caPem_ = config.consoleCACert;
    // The system's store: for the console without consoleCACert, and for an https:// proxy.
    systemStore_ = systemTrustStore();
    if (systemStore_.empty() && caPem_.empty()) {
        log_.warn("no trust store found on this system: the console's certificate cannot be checked; set consoleCACert",
                  {{"lookedAt", trustStoreCandidates()}});
    }
    proxy_.clear();
    sodium_memzero(proxyCredentials_.data(), proxyCredentials_.size());
    proxyCredentials_.clear();
    if (config.proxyEnabled && config.proxy.https && !config.proxy.noProxy.bypasses(a.host)) {
        const ProxyUrl& p = *config.proxy.https;
        const bool pv6 = p.host.find(':') != std::string::npos;
        proxy_ = std::string(p.tls ? "https://" : "http://") + (pv6 ? "[" + p.host + "]" : p.host) + ":" +
                 std::to_string(p.port);
        proxyCredentials_ = p.user + ":" + p.password;
    }
    resolve_.clear();
    if (const auto* addresses = hosts.find(a.host); addresses != nullptr && !addresses->empty()) {
        resolve_ = a.host + ":" + std::to_string(a.port) + ":";
        for (size_t i = 0; i < addresses->size(); ++i) {
            const std::string& ip = (*addresses)[i];
            resolve_ += (i > 0 ? "," : "") + (ip.find(':') != std::string::npos ? "[" + ip + "]" : ip);
        }
    }
}

uint64_t ConsoleClient::post(const std::string& path, const std::string& bearer, const std::string& body,
                             std::chrono::milliseconds timeout, Callback done) {
    auto r = std::make_unique<Request>();
    r->path = path;
    r->id = nextId_++;
    r->done = std::move(done);
    r->body = body;
    r->authorization = "Authorization: Bearer " + bearer;
    r->easy = curl_easy_init();
    CURL* e = r->easy;
    r->headers = curl_slist_append(r->headers, "Content-Type: application/json");
    r->headers = curl_slist_append(r->headers, "Accept: application/json");
    r->headers = curl_slist_append(r->headers, "Expect:");
    if (!bearer.empty()) r->headers = curl_slist_append(r->headers, r->authorization.c_str());
    std::string url = baseUrl_ + path;
    curl_easy_setopt(e, CURLOPT_URL, url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, static_cast<long>(r->body.size()));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, userAgent_.c_str());
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout.count()));
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, static_cast<long>(CURL_SSLVERSION_TLSv1_2));
    // Paths are set explicitly, never left to libcurl's compiled-in ones: the packaged libcurl
    // has none (it cannot know the distribution it will run on).
    if (!caPem_.empty()) {
        curl_blob blob{const_cast<char*>(caPem_.data()), caPem_.size(), CURL_BLOB_COPY};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &blob);
    } else {
        curl_easy_setopt(e, CURLOPT_CAINFO, systemStore_.file.empty() ? nullptr : systemStore_.file.c_str());
        curl_easy_setopt(e, CURLOPT_CAPATH, systemStore_.dir.empty() ? nullptr : systemStore_.dir.c_str());
    }
    curl_easy_setopt(e, CURLOPT_PROXY_CAINFO, systemStore_.file.empty() ? nullptr : systemStore_.file.c_str());
    curl_easy_setopt(e, CURLOPT_PROXY_CAPATH, systemStore_.dir.empty() ? nullptr : systemStore_.dir.c_str());
    // libcurl never reads the proxy variables itself: the one parser (proxy_env) decided.
    curl_easy_setopt(e, CURLOPT_PROXY, proxy_.c_str());
    if (!proxy_.empty() && proxyCredentials_ != ":")
        curl_easy_setopt(e, CURLOPT_PROXYUSERPWD, proxyCredentials_.c_str());
    if (!resolve_.empty()) {
        r->resolve = curl_slist_append(nullptr, resolve_.c_str());
        curl_easy_setopt(e, CURLOPT_RESOLVE, r->resolve);
    }
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &ConsoleClient::onBody);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, r.get());
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->error);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r.get());
    uint64_t id = r->id;
    requests_.emplace(id, std::move(r));
    curl_multi_add_handle(multi(multi_), e);
    return id;
}

void ConsoleClient::cancel(uint64_t id) {
    auto it = requests_.find(id);
    if (it == requests_.end()) return;
    curl_multi_remove_handle(multi(multi_), it->second->easy);
    requests_.erase(it);
}

size_t ConsoleClient::onBody(char* data, size_t size, size_t n, void* userp) {
    auto* r = static_cast<Request*>(userp);
    size_t bytes = size * n;
    if (r->received.size() + bytes > kMaxResponseBytes) return 0;  // aborts the transfer
    r->received.append(data, bytes);
    return bytes;
}

int ConsoleClient::onSocket(void*, int fd, int what, void* clientp, void* socketp) {
    auto* self = static_cast<ConsoleClient*>(clientp);
    auto* watch = static_cast<SocketWatch*>(socketp);
    if (what == CURL_POLL_REMOVE) {
        if (watch != nullptr) {
            event_free(watch->ev);
            delete watch;
        }
        curl_multi_assign(multi(self->multi_), fd, nullptr);
        return 0;
    }
    short events = EV_PERSIST;
    if ((what & CURL_POLL_IN) != 0) events |= EV_READ;
    if ((what & CURL_POLL_OUT) != 0) events |= EV_WRITE;
    if (watch == nullptr) {
        watch = new SocketWatch{self, nullptr};
        curl_multi_assign(multi(self->multi_), fd, watch);
    } else {
        event_free(watch->ev);
    }
    watch->ev = event_new(self->base_, fd, events, &ConsoleClient::onSocketEvent, self);
    event_add(watch->ev, nullptr);
    return 0;
}

int ConsoleClient::onTimer(void*, long timeoutMs, void* clientp) {
    auto* self = static_cast<ConsoleClient*>(clientp);
    if (timeoutMs < 0) {
        evtimer_del(self->timer_);
        return 0;
    }
    timeval tv{timeoutMs / 1000, static_cast<suseconds_t>((timeoutMs % 1000) * 1000)};
    evtimer_add(self->timer_, &tv);
    return 0;
}

void ConsoleClient::onSocketEvent(int fd, short what, void* arg) {
    int flags = ((what & EV_READ) != 0 ? CURL_CSELECT_IN : 0) | ((what & EV_WRITE) != 0 ? CURL_CSELECT_OUT : 0);
    static_cast<ConsoleClient*>(arg)->drive(fd, flags);
}

void ConsoleClient::onTimerEvent(int, short, void* arg) {
    static_cast<ConsoleClient*>(arg)->drive(CURL_SOCKET_TIMEOUT, 0);
}

void ConsoleClient::drive(int fd, int flags) {
    int running = 0;
    curl_multi_socket_action(multi(multi_), fd, flags, &running);
    finished();
}

void ConsoleClient::finished() {
    int left = 0;
    while (CURLMsg* msg = curl_multi_info_read(multi(multi_), &left)) {
        if (msg->msg != CURLMSG_DONE) continue;
        Request* raw = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &raw);
        CURLcode code = msg->data.result;
        curl_multi_remove_handle(multi(multi_), msg->easy_handle);
        auto it = requests_.find(raw->id);
        if (it == requests_.end()) continue;
        std::unique_ptr<Request> r = std::move(it->second);
        requests_.erase(it);
        ConsoleResponse response;
        if (code == CURLE_OK) {
            response.transportOk = true;
            curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &response.status);
            response.envelope = parseEnvelope(r->received);
        } else {
            response.timedOut = code == CURLE_OPERATION_TIMEDOUT;
            response.transportError = r->error[0] != '\0' ? std::string(r->error) : curl_easy_strerror(code);
        }
        if (observer_) {
            curl_off_t micros = 0;
            curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME_T, &micros);
            observer_(r->path, response, std::chrono::microseconds(micros));
        }
        if (r->done) r->done(std::move(response));
    }
}

}  // namespace relaypro
