// A real squid on loopback for tests: CONNECT anywhere, or only for user "sq" (password
// "sqpass") with `requireAuth`; its access log shows what went through it.
#pragma once

#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <string>

#include "test/support/net.h"
#include "test/support/process.h"
#include "test/support/test_files.h"

namespace relaypro::testing {

class Squid {
public:
    // A squid on loopback that allows CONNECT anywhere; with `requireAuth`, only for user "sq".
    Squid(const TempDir& dir, bool requireAuth) : dir_(dir.path() / (requireAuth ? "squid-auth" : "squid")) {
        std::filesystem::create_directories(dir_);
        ::chmod(dir_.c_str(), 0777);  // squid writes its logs as its own user
        int probe = listenOn("127.0.0.1");
        port_ = localPort(probe);
        ::close(probe);
        std::string conf =
            "http_port 127.0.0.1:" + std::to_string(port_) + "\npid_filename " + (dir_ / "squid.pid").string() +
            "\naccess_log stdio:" + (dir_ / "access.log").string() + "\ncache_log " + (dir_ / "cache.log").string() +
            "\ncache deny all\ncache_mem 8 MB\nshutdown_lifetime 0 seconds\ncoredump_dir " + dir_.string() + "\n";
        if (requireAuth) {
            ChildProcess pw = ChildProcess::spawn(
                {"/bin/sh", "-c",
                 "printf 'sq:%s\\n' \"$(openssl passwd -apr1 sqpass)\" > " + (dir_ / "passwd").string()},
                {{"PATH", "/usr/bin:/bin"}});
            pw.wait();
            ::chmod((dir_ / "passwd").c_str(), 0644);
            conf += "auth_param basic program /usr/lib/squid/basic_ncsa_auth " + (dir_ / "passwd").string() +
                    "\nacl authed proxy_auth REQUIRED\nhttp_access allow authed\nhttp_access deny all\n";
        } else {
            conf += "http_access allow all\n";
        }
        writeText(dir_ / "squid.conf", conf);
        // A service name of this instance's own: squid names its shared-memory segments after it,
        // and a SIGKILLed squid leaves them behind, which makes the next squid of the same name
        // fail with "shm_open(...): File exists".
        static int instances = 0;
        service_ = "relayprotest" + std::to_string(::getpid()) + "x" + std::to_string(instances++);
        process_ = ChildProcess::spawn({"/usr/sbin/squid", "-N", "-n", service_, "-f", (dir_ / "squid.conf").string()},
                                       {{"PATH", "/usr/bin:/bin"}}, dir_ / "out.txt", dir_ / "err.txt");
        ready_ = eventually(
            [&] {
                int fd = connectTo("127.0.0.1", port_, std::chrono::milliseconds(200));
                if (fd >= 0) ::close(fd);
                return fd >= 0;
            },
            std::chrono::seconds(30));
    }
    ~Squid() { kill(); }
    // Kills it (SIGKILL: no goodbye to its clients) and removes what that leaves behind.
    void kill() {
        process_.stop(SIGKILL);
        std::error_code ignored;
        for (const auto& entry : std::filesystem::directory_iterator("/dev/shm", ignored)) {
            if (entry.path().filename().string().starts_with(service_ + "-")) std::filesystem::remove(entry, ignored);
        }
    }
    [[nodiscard]] bool ready() const { return ready_; }
    [[nodiscard]] uint16_t port() const { return port_; }
    [[nodiscard]] std::string accessLog() const { return readText(dir_ / "access.log"); }
    [[nodiscard]] std::string errors() const { return readText(dir_ / "err.txt") + readText(dir_ / "cache.log"); }

private:
    std::filesystem::path dir_;
    std::string service_;
    uint16_t port_ = 0;
    ChildProcess process_;
    bool ready_ = false;
};

}  // namespace relaypro::testing
