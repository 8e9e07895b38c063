// The supervisor's life (spec/lifecycle.md): start (or take over from the previous image after
// an upgrade's re-exec), reload, upgrade with draining, stop, watchdog, and the control socket.
// Signals arrive as loop events; every wait has a timeout.
#pragma once

#include <event2/event.h>
#include <jansson.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/config_writer.h"
#include "common/environment.h"
#include "common/process_figures.h"
#include "common/unique_fd.h"
#include "common/worker_settings.h"
#include "supervisor/console_client.h"
#include "supervisor/console_session.h"
#include "supervisor/control_socket.h"
#include "supervisor/handover.h"
#include "supervisor/log_sink.h"
#include "supervisor/metrics_endpoint.h"
#include "supervisor/metrics_registry.h"
#include "supervisor/privileges.h"
#include "supervisor/trust.h"
#include "supervisor/tunnel_listing.h"
#include "supervisor/verify_cache.h"
#include "supervisor/worker_pool.h"

namespace relaypro {

struct ServiceOptions {
    std::string configPath;
    std::string envFile;
    std::vector<std::string> argv;  // this process's arguments: an upgrade re-executes with them
    std::vector<std::string> startWarnings;
    std::string configText;  // what `config` below was parsed from (the snapshot an upgrade hands over)
    std::string envFileText;
    std::optional<Account> account;  // switch to it once listeners are bound (started as root)
};

// An upgrade in progress (at most one at a time).
struct UpgradeInProgress {
    ControlSocket::Respond respond;  // may be empty (SIGUSR2)
    std::chrono::seconds timeout{60};
    std::chrono::steady_clock::time_point deadline;  // `upgrade --timeout`, end to end
    std::string binary;
    pid_t checkPid = -1;
    UniqueFd checkStderr;
    UniqueFd executable;
    uint32_t generation = 0;
    event* checkTimer = nullptr;
    uint32_t handoverFormat = 1;  // the newest the installed binary reads (it says so in check-config)
};

class Service {
public:
    Service(ServiceOptions options, Environment env, Config config);
    ~Service();
    Service(const Service&) = delete;
    Service& operator=(const Service&) = delete;

    // Runs until stopped; returns the exit code.
    int run();

private:
    // A fresh start binds the listeners and starts generation 1; a take-over (after an upgrade's
    // re-exec) adopts what the previous image handed over. Both then share the steps below.
    int freshStart();
    int bindListeners();
    int takeOver(int handoverFd);
    int adoptConfig(HandoverState& state, std::string& snapshotProblem);
    int adoptTrust(HandoverState& state);
    void recreateMissingControlSocket();
    void coalescePendingUpgradeSignal();
    Status openOwnImage();
    static unsigned workerCount(const Config& c);
    int createLoop(const std::shared_ptr<const WorkerSettings>& settings);  // the loop, console client and pool
    void serve();  // watchdog, key rotation and console session, once a generation serves
    WorkerPool::Setup poolSetup(std::shared_ptr<const WorkerSettings> settings);
    // `mustOpen` false (a take-over): a log file that cannot be opened is reported on stderr
    // and does not fail.
    int openLog(bool mustOpen = true);
    void installHandlers();
    void openControl(std::optional<int> adoptFd);
    ControlSocket::Handler controlHandler();
    ControlSocket::IsWorker isWorker();
    Status ensurePrivateFolder();
    void ensureRelayProId();
    Result<std::shared_ptr<const WorkerSettings>> buildSettings(const Config& c);
    int fatal(int code, const std::string& message);
    std::string statusLine() const;
    json_t* statusJson();
    // status --json's registration.state (cli.md).
    [[nodiscard]] const char* registrationState() const;

    // The metrics endpoint (service_metrics.cc): bound with the listeners, or taken over.
    int bindMetrics();
    void adoptMetrics(HandoverState& state);
    void serveMetrics();
    void countConsoleCall(const std::string& path, const ConsoleResponse& r, std::chrono::microseconds took);
    std::string metricsText();
    void notifyReady(const std::string& extra = {});
    void notifyReloading();
    void startWatchdog();
    // Rotates ticket keys (hourly) and token masters (daily), renews the certificate.
    void scheduleKeyCheck();
    static void onKeyTimer(int, short, void* arg);
    [[nodiscard]] bool registered(const Config& c) const;
    // The token endpoint's question to the console (console-api.md, verify), with a short cache.
    void verifyResponder(const ipc::VerifyRequest& request, WorkerPool::VerifyDone done);
    void consoleRevoked(const std::string& what);
    // Registration and heartbeat (console_session.h) and what their answers change here.
    void startConsoleSession();
    void applyRegistration(Registration reg);
    void applyMigration(Migration m);
    // The session looks at config_, with the organizationId waiting for a registration if any.
    void evaluateSession();
    void snapshotOrganizationInUse();
    // Builds and pushes the settings of config_ to the workers; false (logged) if they cannot be built.
    bool pushCurrentSettings();

    // What config.yml and the environment file say now, merged with what must stay as running
    // (`keep`), with the settings built from it: not applied yet.
    enum class Keep { RestartFields, Listeners };
    struct Candidate {
        ConfigSnapshot snapshot;
        std::shared_ptr<const WorkerSettings> settings;
        std::vector<std::string> changed;  // the fields that apply
        bool revoked = false;
        std::optional<int64_t> pendingOrganizationId;  // the file's, when it is not the running one
    };
    Result<Candidate> readFiles(Keep keep);
    void commit(Candidate&& c);
    // Reads the files and applies them if they can be used (readFiles, then commit); returns the
    // fields that changed, comma-separated, as the "reload" line says them.
    Result<std::string> applyConfig(Keep keep);
    // After a take-over: the files as they are now, if they changed during the switch.
    // Returns what the STATUS line should add ("; reload failed: …"), or "".
    std::string applyFilesAfterTakeOver();
    // A write of RelayPro's own into config.yml (registration, migration, relayProId), also made
    // in the snapshot of the running configuration.
    void rememberUpdates(const std::vector<ConfigUpdate>& updates, bool stored);
    // The CA bundle file is gone: written back from the CA in use.
    void restoreMissingCaBundle();

    void reload();
    void stop();
    void onControl(const std::string& command, json_t* request, ControlSocket::Respond respond);
    void childrenExited();

    void beginUpgrade(std::chrono::seconds timeout, ControlSocket::Respond respond);
    Result<pid_t> spawnCheck();
    void upgradeChecked(int status);
    void upgradeReady();
    void upgradeFailed(const std::string& why);
    // Answers the waiting `upgrade` with `answer` (an error), ends the check, forgets the upgrade.
    void endUpgrade(const std::string& answer);
    void reexecute();
    HandoverState handoverState();
    void recoverFromExec(const HandoverState& state, const std::string& why);
    std::string installedBinary() const;

    static void onSignal(int sig, short, void* arg);
    static void onSignalFd(int fd, short, void* arg);
    static void onWatchdog(int, short, void* arg);
    static void onCheckTimeout(int, short, void* arg);
    static void onReexec(int, short, void* arg);

    ServiceOptions options_;
    Environment env_;
    Config config_;
    std::string configText_;  // config_'s snapshot (ServiceOptions::configText)
    std::string envFileText_;
    // RelayPro's own writes to config.yml that could not be stored: applied to what is read from
    // the file from then on (reload, upgrade), and handed over, until a write succeeds.
    std::vector<ConfigUpdate> unsavedUpdates_;
    std::string unsavedBase_;  // config.yml when the last of them failed
    UniqueFd executable_;
    std::string executablePath_;  // the path this image was started from (the "installed binary")
    // The listening sockets, owned here (closed at stop or destruction; workers get copies).
    std::vector<ListenerSocket> listeners_;
    void closeListeners();
    // limits.listenBacklog on the listening sockets (at start, at each reload and upgrade).
    void applyListenBacklog();
    void checkSourcePorts();               // limits.sourcePorts against the kernel's range: a warning
    std::vector<ListenerKind> activated_;  // kinds whose socket came from systemd (LISTEN_FDS)
    std::unique_ptr<LogSink> sink_;
    std::unique_ptr<Logger> log_;
    std::unique_ptr<Trust> trust_;
    std::unique_ptr<ConsoleClient> console_;
    std::unique_ptr<ConsoleSession> session_;
    bool revoked_ = false;            // the console answered 401/403 to this relay's securityToken
    int warnedBacklog_ = 0;           // limits.listenBacklog last warned about (above somaxconn)
    uint64_t warnedSourcePorts_ = 0;  // the overlap last warned about (both ranges), 0: none
    // config.yml's organizationId when a reload or an upgrade changed it: config_ keeps the one in
    // use until a registration with this one succeeds (config.md: "at the next registration").
    std::optional<int64_t> pendingOrganizationId_;
    VerifyCache verifyCache_;
    std::string caPem_;
    event* keyTimer_ = nullptr;
    unsigned workers_ = 1;
    uint64_t maxConnectionsPerWorker_ = 0;
    event_base* base_ = nullptr;
    std::unique_ptr<WorkerPool> pool_;
    std::unique_ptr<ControlSocket> control_;
    MetricsRegistry metrics_;
    UniqueFd metricsSocket_;  // metrics.listen's, or none
    std::string metricsAddress_;
    std::unique_ptr<MetricsEndpoint> metricsEndpoint_;
    ProcessFigures figures_ = ProcessFigures::open();
    std::unique_ptr<TunnelListings> listings_;  // `status --tunnels`; its timers are on base_
    UniqueFd signalFd_;
    event* signalEvent_ = nullptr;
    event* watchdog_ = nullptr;
    event* reexec_ = nullptr;
    std::chrono::system_clock::time_point started_;
    std::optional<UpgradeInProgress> upgrade_;
    bool stopping_ = false;
    int exitCode_ = 0;
};

}  // namespace relaypro
