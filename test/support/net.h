// Network peers for integration tests, all on loopback and port 0: a blocking TLS/plain client
// to talk to RelayPro byte by byte, and small servers standing in for the console (HTTPS page,
// TCP echo, a slow reader) that count the connections they saw.
#pragma once

#include <netinet/in.h>
#include <openssl/ssl.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace relaypro::testing {

// A listening TCP socket on `host` (an IP literal) and port 0 (or `port`).
int listenOn(const std::string& host, uint16_t port = 0, int backlog = 128);
uint16_t localPort(int fd);
// A random address in 127.20.0.0–127.219.255.255 (all of 127.0.0.0/8 is local): a test's own,
// so fixed ports such as NATS's 4222 or the console's 443 collide with nothing else.
std::string privateLoopback();
// Blocking connect with a timeout; -1 on failure, errno saying why (ECONNRESET: the server
// accepted the connection and reset it before the handshake's end was looked at).
int connectTo(const std::string& host, uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(10));

// A blocking client connection, plain or TLS (no certificate checks: tests talk to self-signed peers).
class Client {
public:
    ~Client();
    Client() = default;
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    // Connects to RelayPro; with `tls`, completes a handshake (optionally with SNI / ALPN).
    // `preamble` is sent in clear before the TLS handshake (a PROXY protocol header).
    bool connect(const std::string& host, uint16_t port, bool tls, const std::string& sni = {},
                 const std::string& alpn = "http/1.1", std::string_view preamble = {});
    bool send(std::string_view data);
    // Up to `max` bytes; "" on EOF or error (see eof()). Times out after `timeout`.
    std::string recv(size_t max = 65536, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // Reads until "\r\n\r\n" (the response head, with any bytes after it kept for later).
    std::string readHead(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // Reads exactly n bytes (less on EOF/timeout).
    std::string readExactly(size_t n, std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // Reads until the peer closes.
    std::string readAll(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    // Waits for EOF (true) or reports data/timeout (false).
    bool waitClosed(std::chrono::milliseconds timeout = std::chrono::seconds(10));
    void shutdownWrite();
    void close();
    [[nodiscard]] int fd() const { return fd_; }
    [[nodiscard]] SSL* ssl() const { return ssl_; }
    [[nodiscard]] bool eof() const { return eof_; }
    [[nodiscard]] std::string negotiatedAlpn() const;

private:
    ssize_t rawRead(char* buf, size_t n, std::chrono::milliseconds timeout);
    int fd_ = -1;
    SSL_CTX* ctx_ = nullptr;
    SSL* ssl_ = nullptr;
    std::string buffered_;
    bool eof_ = false;
};

// "HTTP/1.1 407 ..." -> 407; -1 when malformed.
// Standard base64 of `bytes`; and "Basic <base64(user:password)>" for Proxy-Authorization.
std::string base64Of(std::string_view bytes);
inline std::string basicAuthorization(const std::string& userPass) {
    return "Basic " + base64Of(userPass);
}
int statusOf(const std::string& head);
// The value of header `name` in a response head (first one), "" if absent.
std::string headerOf(const std::string& head, const std::string& name);
std::vector<std::string> headersOf(const std::string& head, const std::string& name);

// A small threaded server: accepts on loopback, hands each connection to `handler` on its own
// thread, counts connections.
class TestServer {
public:
    using Handler = std::function<void(int fd, SSL* ssl)>;
    // `tls`: a self-signed certificate for "localhost" is made on the fly.
    TestServer(bool tls, Handler handler, const std::string& host = "127.0.0.1", uint16_t port = 0);
    ~TestServer();
    TestServer(const TestServer&) = delete;
    TestServer& operator=(const TestServer&) = delete;

    [[nodiscard]] uint16_t port() const { return port_; }
    [[nodiscard]] int connections() const { return connections_.load(); }

    // Ready-made handlers.
    static Handler httpPage(std::string body);  // answers any request with 200 and `body`, then closes
    static Handler echo();                      // echoes until the peer closes
    static Handler plainHttpRecorder(std::shared_ptr<std::string> lastRequest, std::string body);

private:
    void acceptLoop();
    void serve(int fd);  // one connection, on its own thread
    struct Running {
        std::thread thread;
        std::shared_ptr<std::atomic<bool>> done;  // set by the thread as it ends
    };
    int listenFd_ = -1;
    uint16_t port_ = 0;
    SSL_CTX* ctx_ = nullptr;
    Handler handler_;
    std::atomic<int> connections_{0};
    std::atomic<bool> stopping_{false};
    std::thread acceptor_;
    std::mutex mutex_;
    std::list<Running> workers_;
};

// A tiny DNS server over UDP: A records for the names it knows, NXDOMAIN for others, no AAAA.
class DnsServer {
public:
    DnsServer(const std::string& ip, uint16_t port, std::map<std::string, std::string> aRecords);
    ~DnsServer();
    DnsServer(const DnsServer&) = delete;
    DnsServer& operator=(const DnsServer&) = delete;
    [[nodiscard]] bool ok() const { return fd_ >= 0; }
    [[nodiscard]] int queries() const { return queries_.load(); }
    // An AAAA record too (before the first query).
    void addAaaa(const std::string& name, const std::string& ip) {
        std::lock_guard<std::mutex> lock(mutex_);
        aaaa_[name] = ip;
    }
    // The next `n` A questions get no answer at all (a lost packet: the resolver times out).
    void dropNextA(int n) { dropA_ = n; }
    // Each question as asked: the name with its case, and the type ("A", "AAAA" or a number).
    [[nodiscard]] std::vector<std::pair<std::string, std::string>> questions() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return questions_;
    }

private:
    void loop();
    mutable std::mutex mutex_;
    std::vector<std::pair<std::string, std::string>> questions_;
    int fd_ = -1;
    std::map<std::string, std::string> records_;
    std::map<std::string, std::string> aaaa_;
    std::atomic<int> dropA_{0};
    std::atomic<int> queries_{0};
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

// Helpers for handlers: read/write all on a plain or TLS connection.
bool writeAll(int fd, SSL* ssl, std::string_view data);
std::string readRequestHead(int fd, SSL* ssl);

// A self-signed P-256 certificate and key for `name` (PEM) for test servers.
void makeTestCertificate(const std::string& name, std::string& certPem, std::string& keyPem);

}  // namespace relaypro::testing
