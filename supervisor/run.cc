#include "supervisor/run.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "common/config.h"
#include "common/config_writer.h"
#include "common/name_resolution.h"
#include "common/password_file.h"
#include "common/unique_fd.h"
#include "relaypro_version.h"
#include "supervisor/cli.h"
#include "supervisor/log_sink.h"
#include "supervisor/privileges.h"
#include "supervisor/server_certificate.h"
#include "worker/server.h"

namespace relaypro {
namespace {

constexpr int kListenBacklog = 4096;

Result<UniqueFd> bindListener(const HostPort& hp) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* res = nullptr;
    std::string port = std::to_string(hp.port);
    int rc = ::getaddrinfo(hp.host.c_str(), port.c_str(), &hints, &res);
    if (rc != 0) return Error{"cannot resolve listen address " + hp.text() + ": " + gai_strerror(rc)};
    std::string lastError = "no address";
    for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
        UniqueFd fd(::socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
        if (!fd) continue;
        int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (::bind(fd.get(), ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd.get(), kListenBacklog) != 0) {
            lastError = std::strerror(errno);
            continue;
        }
        ::freeaddrinfo(res);
        return fd;
    }
    ::freeaddrinfo(res);
    return Error{"cannot listen on " + hp.text() + ": " + lastError};
}

std::string boundAddress(int fd) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) return "?";
    char host[INET6_ADDRSTRLEN] = {};
    if (a.ss_family == AF_INET) {
        auto* s = reinterpret_cast<sockaddr_in*>(&a);
        inet_ntop(AF_INET, &s->sin_addr, host, sizeof host);
        return std::string(host) + ":" + std::to_string(ntohs(s->sin_port));
    }
    auto* s = reinterpret_cast<sockaddr_in6*>(&a);
    inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof host);
    return "[" + std::string(host) + "]:" + std::to_string(ntohs(s->sin6_port));
}

// limits.maxConnections auto: (RLIMIT_NOFILE - 64) / 2 per worker, after raising the soft limit
// to the hard one (a tunnel takes two descriptors).
uint64_t connectionShare(const Config& c, unsigned workers) {
    rlimit lim{};
    if (::getrlimit(RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        ::setrlimit(RLIMIT_NOFILE, &lim);
        ::getrlimit(RLIMIT_NOFILE, &lim);
    }
    uint64_t perProcess = lim.rlim_cur > 64 ? (lim.rlim_cur - 64) / 2 : 1;
    if (c.limits.maxConnections == 0) return perProcess;
    return std::max<uint64_t>(1, std::min<uint64_t>(perProcess, c.limits.maxConnections / workers));
}

// The running values of fields that only a restart changes.
Config keepRestartFields(const Config& running, Config next) {
    next.serverName = running.serverName;
    next.privateFolder = running.privateFolder;
    next.httpsListen = running.httpsListen;
    next.certFile = running.certFile;
    next.keyFile = running.keyFile;
    next.logger = running.logger;
    next.workers = running.workers;
    next.metricsListen = running.metricsListen;
    next.httpListen = running.httpListen;
    next.caBundleFile = running.caBundleFile;
    return next;
}

class Service {
public:
    Service(std::string configPath, std::string envFile, Environment env, Config config)
        : configPath_(std::move(configPath)),
          envFile_(std::move(envFile)),
          env_(std::move(env)),
          config_(std::move(config)) {}

    int run() {
        ::signal(SIGPIPE, SIG_IGN);
        // Bind first (a port below 1024 may need root or CAP_NET_BIND_SERVICE), then drop to the
        // service account, then create files: they belong to that account.
        std::vector<ListenerSocket> sockets;
        auto https = bindListener(config_.httpsListen);
        if (!https) return fatal(kExitFailure, https.error().message);
        listeners_.push_back({"https", boundAddress(https->get())});
        sockets.push_back({ListenerKind::Https, https->release()});
        if (config_.httpListen) {
            auto http = bindListener(*config_.httpListen);
            if (!http) return fatal(kExitFailure, http.error().message);
            listeners_.push_back({"http", boundAddress(http->get())});
            sockets.push_back({ListenerKind::Http, http->release()});
        }
        if (account_) {
            if (auto s = switchToAccount(*account_); !s) return fatal(kExitFailure, s.error().describe());
        }

        LogSinkOptions lo;
        lo.path = config_.logger.path;
        lo.maxSize = config_.logger.maxSize;
        lo.maxAge = config_.logger.maxAge;
        lo.maxBackups = config_.logger.maxBackups;
        lo.compress = !config_.logger.noCompress;
        lo.echoFd = ::isatty(STDERR_FILENO) == 1 ? STDERR_FILENO : -1;
        auto sink = LogSink::open(lo);
        if (!sink) return fatal(kExitFailure, sink.error().describe());
        sink_ = std::move(*sink);
        log_ = std::make_unique<Logger>(sink_.get(), "supervisor",
                                        config_.debugLogging ? LogLevel::Debug : LogLevel::Info);
        for (const auto& w : startWarnings_) log_->warn(w);
        log_->info("start", {{"version", RELAYPRO_VERSION}, {"config", configPath_}});
        ensureRelayProId();

        auto material = config_.certFile.empty()
                            ? makeSelfSignedCertificate(config_.serverName, std::chrono::hours(24 * 365))
                            : loadCertificateFiles(config_.certFile, config_.keyFile);
        if (!material) return fatal(kExitConfig, "server certificate: " + material.error().message);
        caPem_ = material->certificateChainPem.substr(
            0, material->certificateChainPem.find("-----END CERTIFICATE-----") + 26);

        auto settings = buildSettings(config_);
        if (!settings) return fatal(kExitConfig, settings.error().message);

        base_ = event_base_new();
        if (base_ == nullptr) return fatal(kExitFailure, "cannot create the event loop");
        auto server = Server::create(base_, std::move(sockets), *material, *settings, sink_.get());
        sodium_memzero(material->privateKeyPem.data(), material->privateKeyPem.size());
        if (!server) return fatal(kExitFailure, server.error().message);
        server_ = std::move(*server);
        server_->onEmpty([this] { event_base_loopexit(base_, nullptr); });

        event* term = evsignal_new(base_, SIGTERM, &Service::onStop, this);
        event* intr = evsignal_new(base_, SIGINT, &Service::onStop, this);
        event* hup = evsignal_new(base_, SIGHUP, &Service::onReload, this);
        event* usr1 = evsignal_new(base_, SIGUSR1, &Service::onReopen, this);
        for (event* e : {term, intr, hup, usr1}) event_add(e, nullptr);

        for (const auto& [kind, address] : listeners_) log_->info("listening", {{"kind", kind}, {"address", address}});
        log_->info("ready", {{"tunnelsMax", settings->get()->maxConnections}});
        sd_notifyf(0, "READY=1\nSTATUS=%s\nMAINPID=%lu", statusLine().c_str(), static_cast<unsigned long>(::getpid()));

        event_base_dispatch(base_);

        log_->info("stopped", {{"totalTunnels", server_->stats().totalTunnels}});
        server_.reset();
        for (event* e : {term, intr, hup, usr1}) event_free(e);
        if (graceTimer_ != nullptr) event_free(graceTimer_);
        event_base_free(base_);
        sink_->waitForBackground();
        return kExitOk;
    }

    std::vector<std::string> startWarnings_;
    std::optional<Account> account_;  // switch to it after binding (started as root)

private:
    // relayProId is generated once and written back (config.md); if config.yml cannot be
    // written, the id lives in memory and the error names the fix.
    void ensureRelayProId() {
        if (!config_.relayProId.empty()) return;
        config_.relayProId = generateUuidV4();
        if (auto s = writeConfigUpdates(configPath_, {ConfigUpdate::string({"relayProId"}, config_.relayProId)}, env_);
            !s) {
            log_->error("relayProId could not be stored",
                        {{"error", s.error().message}, {"relayProId", config_.relayProId}});
        } else {
            log_->info("relayProId generated", {{"relayProId", config_.relayProId}});
        }
    }

    int fatal(int code, const std::string& message) {
        if (log_) log_->error(message);
        std::fprintf(stderr, "relaypro: %s\n", message.c_str());
        return code;
    }

    Result<std::shared_ptr<const WorkerSettings>> buildSettings(const Config& c) {
        std::shared_ptr<const PasswordFile> passwords;
        if (!c.passwordFile.empty()) {
            auto pf = PasswordFile::load(c.passwordFile);
            if (!pf) return pf.error();
            passwords = std::make_shared<const PasswordFile>(std::move(*pf));
        }
        auto names = loadNameResolution(c.hostsFile, c.resolvConfFile);
        if (!names) return names.error();
        return WorkerSettings::fromConfig(c, std::move(passwords), std::move(*names), caPem_, connectionShare(c, 1));
    }

    std::string statusLine() const {
        auto st = server_ ? server_->stats() : ServerStats{};
        return std::string(server_ && server_->draining() ? "stopping" : "serving") + "; 1 worker; " +
               std::to_string(st.tunnels) + " tunnels; not registered";
    }

    static void onStop(int, short, void* arg) { static_cast<Service*>(arg)->stop(); }
    static void onReload(int, short, void* arg) { static_cast<Service*>(arg)->reload(); }
    static void onReopen(int, short, void* arg) {
        auto* self = static_cast<Service*>(arg);
        if (auto s = self->sink_->reopen(); !s) {
            std::fprintf(stderr, "relaypro: %s\n", s.error().describe().c_str());
        } else {
            self->log_->info("log file reopened");
        }
    }
    static void onGrace(int, short, void* arg) {
        auto* self = static_cast<Service*>(arg);
        self->log_->info("shutdown grace ended; closing remaining connections",
                         {{"tunnels", self->server_->stats().tunnels}});
        self->server_->closeAll();
        event_base_loopexit(self->base_, nullptr);
    }

    void stop() {
        if (stopping_) return;
        stopping_ = true;
        sd_notify(0, "STOPPING=1");
        log_->info("stopping", {{"connections", server_->stats().connections}, {"tunnels", server_->stats().tunnels}});
        server_->beginDrain();
        if (server_->stats().connections == 0) {
            event_base_loopexit(base_, nullptr);
            return;
        }
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(config_.limits.shutdownGrace).count();
        timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>((ms % 1000) * 1000)};
        graceTimer_ = evtimer_new(base_, &Service::onGrace, this);
        evtimer_add(graceTimer_, &tv);
    }

    void reload() {
        timespec now{};
        ::clock_gettime(CLOCK_MONOTONIC, &now);
        sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
                   static_cast<unsigned long long>(now.tv_sec) * 1000000ULL +
                       static_cast<unsigned long long>(now.tv_nsec) / 1000ULL);
        std::vector<std::string> warnings;
        Environment env = env_;
        auto failed = [&](const std::string& why) {
            log_->error("reload failed; keeping the running configuration", {{"error", why}});
            sd_notifyf(0, "READY=1\nSTATUS=%s; reload failed: %s", statusLine().c_str(), why.substr(0, 200).c_str());
        };
        if (auto s = env.loadFile(envFile_, warnings); !s) return failed(s.error().message);
        auto next = loadConfig(configPath_, env, warnings);
        if (!next) return failed(next.error().message);
        for (const auto& w : warnings) log_->warn(w);
        Config merged = keepRestartFields(config_, *next);
        std::vector<std::string> changed;
        for (const auto& ch : diffConfigs(config_, *next)) {
            if (ch.apply == Apply::Restart) {
                log_->warn(ch.field + " changed; takes effect after restart", {{"field", ch.field}});
            } else {
                changed.push_back(ch.field);
            }
        }
        auto settings = buildSettings(merged);
        if (!settings) return failed(settings.error().message);
        env_ = std::move(env);
        config_ = std::move(merged);
        server_->applySettings(*settings);
        log_->setMinLevel(config_.debugLogging ? LogLevel::Debug : LogLevel::Info);
        std::string list;
        for (const auto& f : changed) list += (list.empty() ? "" : ",") + f;
        log_->info("reload", {{"changed", list}});
        sd_notifyf(0, "READY=1\nSTATUS=%s", statusLine().c_str());
    }

    std::string configPath_;
    std::string envFile_;
    Environment env_;
    Config config_;
    std::unique_ptr<LogSink> sink_;
    std::unique_ptr<Logger> log_;
    std::string caPem_;
    std::vector<std::pair<std::string, std::string>> listeners_;
    event_base* base_ = nullptr;
    std::unique_ptr<Server> server_;
    event* graceTimer_ = nullptr;
    bool stopping_ = false;
};

}  // namespace

int runService(const std::string& configPath, const std::string& envFile, Environment env, Config config,
               std::vector<std::string> warnings, std::optional<Account> account) {
    Service service(configPath, envFile, std::move(env), std::move(config));
    service.startWarnings_ = std::move(warnings);
    service.account_ = std::move(account);
    return service.run();
}

}  // namespace relaypro
