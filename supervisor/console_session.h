// Registration and heartbeat with the console (console-api.md), in the background on the
// supervisor's loop: register when a deployment token is known and the relay has no security
// token, was revoked, or is registered to another console address; retry network errors and 5xx
// with exponential backoff (1 s to 5 min, jittered), a refused deployment token no more often
// than every 5 min; once registered, a heartbeat every minute that carries the relay's stats and
// may bring a migration. What to do with an answer (write config.yml, push settings) is the
// service's: it gets it through the hooks.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "common/config.h"
#include "common/log_record.h"
#include "supervisor/console_client.h"

namespace relaypro {

struct HeartbeatStats {
    uint64_t activeTunnels = 0;
    uint64_t totalTunnels = 0;
    uint64_t workers = 0;
};

class ConsoleSession {
public:
    enum class State { Unregistered, Registering, Rejected, Registered, Revoked };

    struct Hooks {
        std::function<void(Registration)> registered;
        std::function<void(const std::string& during)> revoked;  // 401/403 to the relay's securityToken
        std::function<void(Migration)> migration;
        std::function<HeartbeatStats()> stats;
    };
    struct Identity {
        std::string caCertificatePem;
        std::string caFingerprint;  // lower-case hex
        std::chrono::system_clock::time_point startedAt;
    };

    static constexpr std::chrono::seconds kMaxBackoff{300};
    static constexpr std::chrono::seconds kRejectedRetry{300};

    ConsoleSession(event_base* base, ConsoleClient& client, const Logger& log, Hooks hooks, Identity identity,
                   std::chrono::milliseconds heartbeatInterval);
    ~ConsoleSession();
    ConsoleSession(const ConsoleSession&) = delete;
    ConsoleSession& operator=(const ConsoleSession&) = delete;

    // Looks at the configuration (at start, after a reload, a registration or a revocation) and
    // registers, heartbeats or waits accordingly. `newOrganization`: config.organizationId is not
    // the one the relay registered with (a reload changed it): with a deployment token known, the
    // relay registers again with it (config.md: it takes effect at the next registration).
    void evaluate(const Config& config, bool revoked, bool newOrganization = false);

    [[nodiscard]] State state() const { return state_; }
    [[nodiscard]] const char* stateName() const;

    // The delay before registration attempt `attempt` (0-based): 2^attempt s capped at 5 min,
    // with jitter: uniformly in [d/2, d].
    static std::chrono::milliseconds backoff(unsigned attempt);

private:
    static void onRegisterTimer(int, short, void* arg);
    static void onHeartbeatTimer(int, short, void* arg);
    void registerNow();
    void registrationAnswered(ConsoleResponse&& r);
    void retryRegistration(std::chrono::milliseconds delay, const std::string& why);
    void heartbeatNow();
    void heartbeatAnswered(ConsoleResponse&& r);
    void cancelAll();
    void arm(event* timer, std::chrono::milliseconds delay);

    event_base* base_;
    ConsoleClient& client_;
    Logger log_;
    Hooks hooks_;
    Identity identity_;
    std::chrono::milliseconds heartbeatInterval_;
    Config config_;
    State state_ = State::Unregistered;
    unsigned attempts_ = 0;
    std::string rejectedToken_;  // the deployment token the console refused (hashed)
    std::optional<uint64_t> inFlight_;
    event* registerTimer_ = nullptr;
    event* heartbeatTimer_ = nullptr;
    bool warnedNoToken_ = false;
};

}  // namespace relaypro
