// The service manager's end of sd_notify for tests (recipes/sd_notify harness).
#pragma once

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace relaypro::testing {

// The service manager's end of sd_notify: a datagram socket that records every message with the
// sender's pid (from the kernel, SO_PASSCRED) and when it came.
class NotifyHarness {
public:
    struct Message {
        std::string text;
        pid_t pid;
        std::chrono::steady_clock::time_point at;
    };
    explicit NotifyHarness(const std::filesystem::path& path) : path_(path) {
        fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
        ::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a);
        int one = 1;
        ::setsockopt(fd_, SOL_SOCKET, SO_PASSCRED, &one, sizeof one);
        timeval tv{0, 100000};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        thread_ = std::thread([this] { loop(); });
    }
    ~NotifyHarness() {
        stop_ = true;
        thread_.join();
        ::close(fd_);
    }
    std::vector<Message> messages() {
        std::lock_guard lock(mutex_);
        return messages_;
    }
    // Messages containing `needle`.
    std::vector<Message> with(const std::string& needle) {
        std::vector<Message> out;
        for (auto& m : messages()) {
            if (m.text.find(needle) != std::string::npos) out.push_back(m);
        }
        return out;
    }

private:
    void loop() {
        while (!stop_) {
            char buf[4096];
            alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred))];
            iovec iov{buf, sizeof buf};
            msghdr msg{};
            msg.msg_iov = &iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control;
            msg.msg_controllen = sizeof control;
            ssize_t n = ::recvmsg(fd_, &msg, 0);
            if (n <= 0) continue;
            pid_t pid = -1;
            for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS) {
                    ucred cred{};
                    std::memcpy(&cred, CMSG_DATA(c), sizeof cred);
                    pid = cred.pid;
                }
            }
            std::lock_guard lock(mutex_);
            messages_.push_back({std::string(buf, static_cast<size_t>(n)), pid, std::chrono::steady_clock::now()});
        }
    }
    std::filesystem::path path_;
    int fd_ = -1;
    std::atomic<bool> stop_{false};
    std::mutex mutex_;
    std::vector<Message> messages_;
    std::thread thread_;
};

}  // namespace relaypro::testing
