#include "supervisor/run.h"

#include <arpa/inet.h>
#include <event2/event.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "common/config.h"
#include "common/config_writer.h"
#include "common/name_resolution.h"
#include "common/password_file.h"
#include "common/unique_fd.h"
#include "supervisor/version.h"
#include "supervisor/cli.h"
#include "supervisor/control_socket.h"
#include "supervisor/log_sink.h"
#include "supervisor/privileges.h"
#include "supervisor/server_certificate.h"
#include "supervisor/worker_pool.h"

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
        // Our own image, opened now: workers are exec'ed from it even if the file is replaced
        // on disk later (a package upgrade), so they always match this supervisor.
        executable_.reset(::open("/proc/self/exe", O_RDONLY | O_CLOEXEC));
        if (!executable_)
            return fatal(kExitFailure, std::string("cannot open /proc/self/exe: ") + std::strerror(errno));
        // Bind first (a port below 1024 may need root or CAP_NET_BIND_SERVICE), then drop to the
        // service account, then create files: they belong to that account.
        auto https = bindListener(config_.httpsListen);
        if (!https) return fatal(kExitFailure, https.error().message);
        listeners_.push_back({"https", boundAddress(https->get())});
        listenerFds_.push_back({0, std::move(*https)});
        if (config_.httpListen) {
            auto http = bindListener(*config_.httpListen);
            if (!http) return fatal(kExitFailure, http.error().message);
            listeners_.push_back({"http", boundAddress(http->get())});
            listenerFds_.push_back({1, std::move(*http)});
        }
        if (account_) {
            if (auto s = switchToAccount(*account_); !s) return fatal(kExitFailure, s.error().describe());
        }
        // Nobody of our uid (a compromised worker included) may trace us or read our memory.
        ::prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);

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
        log_->info("start", {{"version", std::string(versionString())}, {"config", configPath_}});
        ensureRelayProId();
        if (auto s = ensurePrivateFolder(); !s) return fatal(kExitConfig, s.error().describe());

        auto material = config_.certFile.empty()
                            ? makeSelfSignedCertificate(config_.serverName, std::chrono::hours(24 * 365))
                            : loadCertificateFiles(config_.certFile, config_.keyFile);
        if (!material) return fatal(kExitConfig, "server certificate: " + material.error().message);
        caPem_ = material->certificateChainPem.substr(
            0, material->certificateChainPem.find("-----END CERTIFICATE-----") + 26);
        workers_ = config_.workers != 0
                       ? config_.workers
                       : static_cast<unsigned>(std::clamp<long>(::sysconf(_SC_NPROCESSORS_ONLN), 1, 64));
        auto settings = buildSettings(config_);
        if (!settings) return fatal(kExitConfig, settings.error().message);

        base_ = event_base_new();
        if (base_ == nullptr) return fatal(kExitFailure, "cannot create the event loop");
        WorkerPool::Setup setup;
        for (const auto& [kind, fd] : listenerFds_) setup.listeners.push_back({kind, fd.get()});
        setup.material = std::move(*material);
        setup.settings = *settings;
        const char* hooks = std::getenv("RELAYPRO_TEST_HOOKS");
        setup.testHooks = hooks != nullptr && std::string_view(hooks) == "1";
        setup.selfTest.paths = {configPath_, config_.caBundleFile, config_.logger.path};
        if (!config_.passwordFile.empty()) setup.selfTest.paths.push_back(config_.passwordFile);
        setup.selfTest.controlSocket = config_.controlSocketPath();
        pool_ = std::make_unique<WorkerPool>(base_, *log_, sink_.get(), std::move(setup));

        auto control = ControlSocket::open(
            base_, config_.controlSocketPath(), *log_,
            [this](const std::string& command, json_t* request, ControlSocket::Respond respond) {
                onControl(command, request, std::move(respond));
            },
            [this](pid_t pid) {
                auto pids = pool_->pids();
                return std::find(pids.begin(), pids.end(), pid) != pids.end();
            });
        if (!control) return fatal(kExitFailure, control.error().describe());
        control_ = std::move(*control);
        started_ = std::chrono::steady_clock::now();

        std::vector<event*> signals;
        for (auto [sig, cb] : {std::pair{SIGTERM, &Service::onStop}, std::pair{SIGINT, &Service::onStop},
                               std::pair{SIGHUP, &Service::onReload}, std::pair{SIGUSR1, &Service::onReopen},
                               std::pair{SIGCHLD, &Service::onChild}}) {
            event* e = evsignal_new(base_, sig, cb, this);
            event_add(e, nullptr);
            signals.push_back(e);
        }
        int exitCode = kExitOk;
        pool_->startGeneration(
            1, workers_, executable_.get(),
            [this] {
                pool_->setCurrent(1);
                for (const auto& [kind, address] : listeners_)
                    log_->info("listening", {{"kind", kind}, {"address", address}});
                log_->info("ready", {{"workers", workers_}, {"tunnelsMax", maxConnectionsPerWorker_ * workers_}});
                sd_notifyf(0, "READY=1\nSTATUS=%s\nMAINPID=%lu", statusLine().c_str(),
                           static_cast<unsigned long>(::getpid()));
                startWatchdog();
            },
            [this, &exitCode](const std::string& why) {
                log_->error("workers did not start", {{"error", why}});
                std::fprintf(stderr, "relaypro: workers did not start: %s\n", why.c_str());
                exitCode = kExitFailure;
                event_base_loopexit(base_, nullptr);
            });

        event_base_dispatch(base_);

        log_->info("stopped", {{"totalTunnels", pool_->stats().totalTunnels}});
        control_.reset();
        pool_.reset();
        for (event* e : signals) event_free(e);
        if (watchdog_ != nullptr) event_free(watchdog_);
        event_base_free(base_);
        sink_->waitForBackground();
        return exitCode;
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

    // <privateFolder>, mode 0700, created as the service account; an existing one must be a
    // folder (not a link) of ours.
    Status ensurePrivateFolder() {
        const std::string& dir = config_.privateFolder;
        if (::mkdir(dir.c_str(), 0700) == 0) return {};
        if (errno != EEXIST) return sysError("cannot create the private folder " + dir);
        struct stat st {};
        if (::lstat(dir.c_str(), &st) != 0) return sysError("cannot inspect the private folder " + dir);
        if (!S_ISDIR(st.st_mode)) return Error{"the private folder " + dir + " is not a folder (a link is refused)"};
        if (st.st_uid != ::geteuid()) {
            return Error{"the private folder " + dir + " belongs to uid " + std::to_string(st.st_uid) +
                         "; it must belong to the service account (chown it)"};
        }
        if ((st.st_mode & 077) != 0)
            log_->warn("the private folder is open to others; chmod 700 it", {{"folder", dir}});
        return {};
    }

    void onControl(const std::string& command, json_t* /*request*/, ControlSocket::Respond respond) {
        if (command == "status") return respond(statusJson());
        log_->warn("control socket request refused",
                   {{"reason", "unknown command"}, {"command", command.substr(0, 64)}});
        respond(json_pack("{s:s}", "error", "unknown command"));
    }

    json_t* statusJson() {
        json_t* listeners = json_array();
        for (const auto& [kind, address] : listeners_) {
            json_array_append_new(listeners, json_pack("{s:s,s:s}", "kind", kind.c_str(), "address", address.c_str()));
        }
        json_t* workers = json_array();
        for (const auto& w : pool_->view()) {
            json_array_append_new(workers, json_pack("{s:I,s:I,s:s,s:I,s:I}", "pid", static_cast<json_int_t>(w.pid),
                                                     "generation", static_cast<json_int_t>(w.generation), "state",
                                                     w.state.c_str(), "tunnels", static_cast<json_int_t>(w.tunnels),
                                                     "connections", static_cast<json_int_t>(w.connections)));
        }
        auto uptime =
            std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_).count();
        json_t* registration =
            json_pack("{s:s,s:I,s:s}", "state", "unregistered", "relayId", static_cast<json_int_t>(config_.relayId),
                      "registeredTo", config_.registeredTo.c_str());
        return json_pack("{s:s,s:I,s:I,s:I,s:o,s:s,s:o,s:o}", "version", std::string(versionString()).c_str(), "pid",
                         static_cast<json_int_t>(::getpid()), "generation", static_cast<json_int_t>(pool_->current()),
                         "uptimeSeconds", static_cast<json_int_t>(uptime), "registration", registration,
                         "caFingerprint", "", "listeners", listeners, "workers", workers);
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
        maxConnectionsPerWorker_ = connectionShare(c, workers_);
        return WorkerSettings::fromConfig(c, std::move(passwords), std::move(*names), caPem_, maxConnectionsPerWorker_);
    }

    std::string statusLine() const {
        PoolStats st = pool_ ? pool_->stats() : PoolStats{};
        size_t serving = pool_ ? pool_->serving(pool_->current()) : 0;
        return std::string(stopping_ ? "stopping" : "serving") + "; " + std::to_string(serving) + " workers; " +
               std::to_string(st.tunnels) + " tunnels; not registered";
    }

    void startWatchdog() {
        uint64_t usec = 0;
        if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return;
        watchdog_ = event_new(base_, -1, EV_PERSIST, &Service::onWatchdog, this);
        uint64_t half = usec / 2;
        timeval tv{static_cast<time_t>(half / 1000000), static_cast<suseconds_t>(half % 1000000)};
        event_add(watchdog_, &tv);
    }

    static void onWatchdog(int, short, void* arg) {
        auto* self = static_cast<Service*>(arg);
        // Only while this loop runs and at least one worker of the current generation serves.
        if (self->pool_->serving(self->pool_->current()) > 0) sd_notify(0, "WATCHDOG=1");
    }

    static void onStop(int, short, void* arg) { static_cast<Service*>(arg)->stop(); }
    static void onReload(int, short, void* arg) { static_cast<Service*>(arg)->reload(); }
    static void onChild(int, short, void* arg) { static_cast<Service*>(arg)->pool_->reap(); }
    static void onReopen(int, short, void* arg) {
        auto* self = static_cast<Service*>(arg);
        if (auto s = self->sink_->reopen(); !s) {
            std::fprintf(stderr, "relaypro: %s\n", s.error().describe().c_str());
        } else {
            self->log_->info("log file reopened");
        }
    }

    void stop() {
        if (stopping_) return;
        stopping_ = true;
        sd_notify(0, "STOPPING=1");
        PoolStats st = pool_->stats();
        log_->info("stopping", {{"connections", st.connections}, {"tunnels", st.tunnels}});
        auto grace = std::chrono::duration_cast<std::chrono::milliseconds>(config_.limits.shutdownGrace);
        pool_->stopAll(grace, [this] { event_base_loopexit(base_, nullptr); });
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
        pool_->pushSettings(*settings);
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
    UniqueFd executable_;
    std::vector<std::pair<uint8_t, UniqueFd>> listenerFds_;
    std::unique_ptr<LogSink> sink_;
    std::unique_ptr<Logger> log_;
    std::string caPem_;
    std::vector<std::pair<std::string, std::string>> listeners_;
    unsigned workers_ = 1;
    uint64_t maxConnectionsPerWorker_ = 0;
    event_base* base_ = nullptr;
    std::unique_ptr<WorkerPool> pool_;
    std::unique_ptr<ControlSocket> control_;
    std::chrono::steady_clock::time_point started_;
    event* watchdog_ = nullptr;
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
