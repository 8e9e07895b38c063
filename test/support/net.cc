#include "test/support/net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>
#include <cstring>
#include <random>

namespace relaypro::testing {
namespace {

// Peers that close on us (that is what many tests provoke) must not kill the test with SIGPIPE.
const bool kSigpipeIgnored = [] {
    ::signal(SIGPIPE, SIG_IGN);
    return true;
}();

bool fillAddress(const std::string& host, uint16_t port, sockaddr_storage& a, socklen_t& len) {
    std::memset(&a, 0, sizeof a);
    auto* v4 = reinterpret_cast<sockaddr_in*>(&a);
    if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        len = sizeof(sockaddr_in);
        return true;
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&a);
    if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        len = sizeof(sockaddr_in6);
        return true;
    }
    return false;
}

bool waitFor(int fd, short events, std::chrono::milliseconds timeout) {
    pollfd p{fd, events, 0};
    return ::poll(&p, 1, static_cast<int>(timeout.count())) > 0;
}

}  // namespace

int listenOn(const std::string& host, uint16_t port, int backlog) {
    sockaddr_storage a{};
    socklen_t len = 0;
    if (!fillAddress(host, port, a, len)) return -1;
    int fd = ::socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (::bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 || ::listen(fd, backlog) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}

uint16_t localPort(int fd) {
    sockaddr_storage a{};
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    if (a.ss_family == AF_INET) return ntohs(reinterpret_cast<sockaddr_in*>(&a)->sin_port);
    return ntohs(reinterpret_cast<sockaddr_in6*>(&a)->sin6_port);
}

int connectTo(const std::string& host, uint16_t port, std::chrono::milliseconds timeout) {
    sockaddr_storage a{};
    socklen_t len = 0;
    if (!fillAddress(host, port, a, len)) return -1;
    int fd = ::socket(a.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int r = ::connect(fd, reinterpret_cast<sockaddr*>(&a), len);
    int err = r == 0 ? 0 : errno;
    if (r != 0 && err == EINPROGRESS) {
        if (!waitFor(fd, POLLOUT, timeout)) {
            err = ETIMEDOUT;
        } else {
            socklen_t el = sizeof err;
            ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        }
    }
    if (err != 0) {
        // errno says why: ECONNREFUSED (no listener), ETIMEDOUT, or ECONNRESET for a connection
        // the server accepted and reset before this looked (a refusal at accept can be that fast).
        ::close(fd);
        errno = err;
        return -1;
    }
    int flags = ::fcntl(fd, F_GETFL);
    ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

Client::~Client() {
    close();
}

void Client::close() {
    if (ssl_ != nullptr) SSL_free(ssl_);
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
    if (fd_ >= 0) ::close(fd_);
    ssl_ = nullptr;
    ctx_ = nullptr;
    fd_ = -1;
}

bool Client::connect(const std::string& host, uint16_t port, bool tls, const std::string& sni, const std::string& alpn,
                     std::string_view preamble) {
    fd_ = connectTo(host, port);
    if (fd_ < 0) return false;
    if (!preamble.empty() && !writeAll(fd_, nullptr, preamble)) return false;
    if (!tls) return true;
    ctx_ = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_verify(ctx_, SSL_VERIFY_NONE, nullptr);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    if (!sni.empty())
        SSL_ctrl(ssl_, SSL_CTRL_SET_TLSEXT_HOSTNAME, TLSEXT_NAMETYPE_host_name, const_cast<char*>(sni.c_str()));
    if (!alpn.empty()) {
        std::string wire(1, static_cast<char>(alpn.size()));
        wire += alpn;
        SSL_set_alpn_protos(ssl_, reinterpret_cast<const unsigned char*>(wire.data()),
                            static_cast<unsigned>(wire.size()));
    }
    timeval tv{10, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    return SSL_connect(ssl_) == 1;
}

std::string Client::negotiatedAlpn() const {
    const unsigned char* p = nullptr;
    unsigned len = 0;
    if (ssl_ != nullptr) SSL_get0_alpn_selected(ssl_, &p, &len);
    return std::string(reinterpret_cast<const char*>(p), len);
}

bool Client::send(std::string_view data) {
    return writeAll(fd_, ssl_, data);
}

ssize_t Client::rawRead(char* buf, size_t n, std::chrono::milliseconds timeout) {
    if (ssl_ == nullptr || SSL_pending(ssl_) == 0) {
        if (!waitFor(fd_, POLLIN, timeout)) return -2;  // timeout
    }
    if (ssl_ != nullptr) {
        int r = SSL_read(ssl_, buf, static_cast<int>(n));
        if (r > 0) return r;
        int e = SSL_get_error(ssl_, r);
        ERR_clear_error();
        if (e == SSL_ERROR_WANT_READ) return -3;
        return e == SSL_ERROR_ZERO_RETURN || e == SSL_ERROR_SYSCALL ? 0 : -1;
    }
    return ::recv(fd_, buf, n, 0);
}

std::string Client::recv(size_t max, std::chrono::milliseconds timeout) {
    if (!buffered_.empty()) {
        std::string out = buffered_.substr(0, max);
        buffered_.erase(0, out.size());
        return out;
    }
    std::string buf(max, '\0');
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return "";
        ssize_t n = rawRead(buf.data(), max, left);
        if (n == -3) continue;
        if (n <= 0) {
            if (n == 0 || n == -1) eof_ = true;
            return "";
        }
        buf.resize(static_cast<size_t>(n));
        return buf;
    }
}

std::string Client::readHead(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string acc;
    while (true) {
        size_t end = acc.find("\r\n\r\n");
        if (end != std::string::npos) {
            buffered_ = acc.substr(end + 4) + buffered_;
            return acc.substr(0, end + 4);
        }
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return acc;
        std::string more = recv(65536, left);
        if (more.empty()) return acc;
        acc += more;
    }
}

std::string Client::readExactly(size_t n, std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string acc;
    while (acc.size() < n) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        std::string more = recv(n - acc.size(), left);
        if (more.empty()) break;
        acc += more;
    }
    return acc;
}

std::string Client::readAll(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string acc;
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) break;
        std::string more = recv(65536, left);
        if (more.empty()) break;
        acc += more;
    }
    return acc;
}

bool Client::waitClosed(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
        auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left.count() <= 0) return false;
        std::string more = recv(65536, left);
        if (more.empty()) return eof_;
    }
}

void Client::shutdownWrite() {
    if (ssl_ != nullptr)
        SSL_shutdown(ssl_);
    else
        ::shutdown(fd_, SHUT_WR);
}

int statusOf(const std::string& head) {
    if (head.size() < 12 || head.compare(0, 7, "HTTP/1.") != 0) return -1;
    return std::atoi(head.substr(9, 3).c_str());
}

std::vector<std::string> headersOf(const std::string& head, const std::string& name) {
    std::vector<std::string> out;
    size_t pos = head.find("\r\n");
    while (pos != std::string::npos && pos + 2 < head.size()) {
        size_t end = head.find("\r\n", pos + 2);
        if (end == std::string::npos) break;
        std::string line = head.substr(pos + 2, end - pos - 2);
        size_t colon = line.find(':');
        if (colon != std::string::npos && strcasecmp(line.substr(0, colon).c_str(), name.c_str()) == 0) {
            size_t v = line.find_first_not_of(' ', colon + 1);
            out.push_back(v == std::string::npos ? "" : line.substr(v));
        }
        pos = end;
    }
    return out;
}

std::string headerOf(const std::string& head, const std::string& name) {
    auto all = headersOf(head, name);
    return all.empty() ? "" : all.front();
}

bool writeAll(int fd, SSL* ssl, std::string_view data) {
    while (!data.empty()) {
        if (ssl != nullptr) {
            int n = SSL_write(ssl, data.data(), static_cast<int>(std::min<size_t>(data.size(), 1 << 20)));
            if (n <= 0) {
                ERR_clear_error();
                return false;
            }
            data.remove_prefix(static_cast<size_t>(n));
        } else {
            ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            data.remove_prefix(static_cast<size_t>(n));
        }
    }
    return true;
}

std::string readRequestHead(int fd, SSL* ssl) {
    std::string acc;
    char buf[4096];
    while (acc.find("\r\n\r\n") == std::string::npos && acc.size() < 65536) {
        int n = ssl != nullptr ? SSL_read(ssl, buf, sizeof buf) : static_cast<int>(::recv(fd, buf, sizeof buf, 0));
        if (n <= 0) break;
        acc.append(buf, static_cast<size_t>(n));
    }
    return acc;
}

void makeTestCertificate(const std::string& name, std::string& certPem, std::string& keyPem) {
    EVP_PKEY* key = EVP_EC_gen("P-256");
    X509* cert = X509_new();
    X509_set_version(cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
    X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
    X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
    X509_set_pubkey(cert, key);
    X509_NAME* n = X509_get_subject_name(cert);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(name.c_str()), -1, -1, 0);
    X509_set_issuer_name(cert, n);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, cert, cert, nullptr, nullptr, 0);
    std::string san = "DNS:" + name;
    X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, NID_subject_alt_name, san.c_str());
    X509_add_ext(cert, ext, -1);
    X509_EXTENSION_free(ext);
    X509_sign(cert, key, EVP_sha256());
    BIO* cb = BIO_new(BIO_s_mem());
    BIO* kb = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(cb, cert);
    PEM_write_bio_PrivateKey(kb, key, nullptr, nullptr, 0, nullptr, nullptr);
    char* p = nullptr;
    long len = BIO_get_mem_data(cb, &p);
    certPem.assign(p, static_cast<size_t>(len));
    len = BIO_get_mem_data(kb, &p);
    keyPem.assign(p, static_cast<size_t>(len));
    BIO_free(cb);
    BIO_free(kb);
    X509_free(cert);
    EVP_PKEY_free(key);
}

TestServer::TestServer(bool tls, Handler handler, const std::string& host, uint16_t port)
    : handler_(std::move(handler)) {
    listenFd_ = listenOn(host, port);
    port_ = listenFd_ >= 0 ? localPort(listenFd_) : 0;
    if (tls) {
        std::string cert, key;
        makeTestCertificate("localhost", cert, key);
        ctx_ = SSL_CTX_new(TLS_server_method());
        BIO* cb = BIO_new_mem_buf(cert.data(), static_cast<int>(cert.size()));
        BIO* kb = BIO_new_mem_buf(key.data(), static_cast<int>(key.size()));
        X509* x = PEM_read_bio_X509(cb, nullptr, nullptr, nullptr);
        EVP_PKEY* k = PEM_read_bio_PrivateKey(kb, nullptr, nullptr, nullptr);
        SSL_CTX_use_certificate(ctx_, x);
        SSL_CTX_use_PrivateKey(ctx_, k);
        X509_free(x);
        EVP_PKEY_free(k);
        BIO_free(cb);
        BIO_free(kb);
    }
    acceptor_ = std::thread([this] { acceptLoop(); });
}

TestServer::~TestServer() {
    stopping_ = true;
    ::shutdown(listenFd_, SHUT_RDWR);
    if (acceptor_.joinable()) acceptor_.join();
    ::close(listenFd_);
    std::lock_guard lock(mutex_);
    for (auto& w : workers_) {
        if (w.thread.joinable()) w.thread.join();
    }
    if (ctx_ != nullptr) SSL_CTX_free(ctx_);
}

void TestServer::acceptLoop() {
    while (!stopping_) {
        int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (fd < 0) {
            if (stopping_) return;
            continue;
        }
        ++connections_;
        std::lock_guard lock(mutex_);
        // Join the handlers that have finished, so a long test does not pile up threads.
        for (auto it = workers_.begin(); it != workers_.end();) {
            if (*it->done) {
                it->thread.join();
                it = workers_.erase(it);
            } else {
                ++it;
            }
        }
        auto done = std::make_shared<std::atomic<bool>>(false);
        workers_.push_back({std::thread([this, fd, done] {
                                serve(fd);
                                *done = true;
                            }),
                            done});
    }
}

void TestServer::serve(int fd) {
    timeval tv{20, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    SSL* ssl = nullptr;
    if (ctx_ != nullptr) {
        ssl = SSL_new(ctx_);
        SSL_set_fd(ssl, fd);
        if (SSL_accept(ssl) != 1) {
            SSL_free(ssl);
            ::close(fd);
            return;
        }
    }
    handler_(fd, ssl);
    if (ssl != nullptr) {
        SSL_shutdown(ssl);
        SSL_free(ssl);
    }
    ::close(fd);
}

DnsServer::DnsServer(const std::string& ip, uint16_t port, std::map<std::string, std::string> aRecords)
    : records_(std::move(aRecords)) {
    sockaddr_storage a{};
    socklen_t len = 0;
    if (!fillAddress(ip, port, a, len)) return;
    fd_ = ::socket(a.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) != 0) {
        ::close(fd_);
        fd_ = -1;
        return;
    }
    thread_ = std::thread([this] { loop(); });
}

DnsServer::~DnsServer() {
    stopping_ = true;
    if (thread_.joinable()) thread_.join();
    if (fd_ >= 0) ::close(fd_);
}

void DnsServer::loop() {
    unsigned char q[512];
    while (!stopping_) {
        if (!waitFor(fd_, POLLIN, std::chrono::milliseconds(50))) continue;
        sockaddr_storage from{};
        socklen_t fromLen = sizeof from;
        ssize_t n = ::recvfrom(fd_, q, sizeof q, 0, reinterpret_cast<sockaddr*>(&from), &fromLen);
        if (n < 12) continue;
        ++queries_;
        // The question: labels up to a zero byte, then type and class.
        size_t pos = 12;
        std::string name;
        while (pos < static_cast<size_t>(n) && q[pos] != 0) {
            size_t l = q[pos];
            if (pos + 1 + l > static_cast<size_t>(n)) break;
            if (!name.empty()) name += '.';
            name.append(reinterpret_cast<char*>(q + pos + 1), l);
            pos += 1 + l;
        }
        size_t questionEnd = pos + 5;
        if (questionEnd > static_cast<size_t>(n)) continue;
        unsigned type = (static_cast<unsigned>(q[pos + 1]) << 8) | q[pos + 2];
        {
            std::lock_guard<std::mutex> lock(mutex_);
            questions_.emplace_back(name, type == 1 ? "A" : type == 28 ? "AAAA" : std::to_string(type));
        }
        std::string lower;
        for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (type == 1 && dropA_.load() > 0) {
            --dropA_;
            continue;
        }
        if (type == 28) {  // AAAA: an answer when one was added, else NODATA (or NXDOMAIN)
            std::string v6;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                if (auto found = aaaa_.find(lower); found != aaaa_.end()) v6 = found->second;
            }
            std::string r(reinterpret_cast<char*>(q), questionEnd);
            r[2] = static_cast<char>(0x81);
            r[3] = static_cast<char>(v6.empty() && !records_.contains(lower) ? 0x83 : 0x80);
            r[4] = 0;
            r[5] = 1;
            r[6] = 0;
            r[7] = static_cast<char>(v6.empty() ? 0 : 1);
            r[8] = r[9] = r[10] = r[11] = 0;
            if (!v6.empty()) {
                in6_addr addr{};
                inet_pton(AF_INET6, v6.c_str(), &addr);
                const unsigned char answer[] = {0xC0, 0x0C, 0, 28, 0, 1, 0, 0, 1, 44, 0, 16};  // TTL 300
                r.append(reinterpret_cast<const char*>(answer), sizeof answer);
                r.append(reinterpret_cast<const char*>(&addr), 16);
            }
            ::sendto(fd_, r.data(), r.size(), 0, reinterpret_cast<sockaddr*>(&from), fromLen);
            continue;
        }
        auto it = records_.find(lower);
        std::string r(reinterpret_cast<char*>(q), questionEnd);
        r[2] = static_cast<char>(0x81);                                // response, recursion desired
        r[3] = static_cast<char>(it == records_.end() ? 0x83 : 0x80);  // NXDOMAIN or no error
        r[4] = 0;
        r[5] = 1;
        r[6] = 0;
        r[7] = static_cast<char>(it != records_.end() && type == 1 ? 1 : 0);
        r[8] = r[9] = r[10] = r[11] = 0;  // no authority, no additional (drop EDNS)
        if (it != records_.end() && type == 1) {
            in_addr addr{};
            inet_pton(AF_INET, it->second.c_str(), &addr);
            const unsigned char answer[] = {0xC0, 0x0C, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4};
            r.append(reinterpret_cast<const char*>(answer), sizeof answer);
            r.append(reinterpret_cast<const char*>(&addr), 4);
        }
        ::sendto(fd_, r.data(), r.size(), 0, reinterpret_cast<sockaddr*>(&from), fromLen);
    }
}

TestServer::Handler TestServer::httpPage(std::string body) {
    return [body](int fd, SSL* ssl) {
        std::string head = readRequestHead(fd, ssl);
        if (head.empty()) return;
        writeAll(fd, ssl,
                 "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + std::to_string(body.size()) +
                     "\r\nConnection: close\r\n\r\n" + body);
    };
}

TestServer::Handler TestServer::echo() {
    return [](int fd, SSL* ssl) {
        char buf[65536];
        while (true) {
            int n = ssl != nullptr ? SSL_read(ssl, buf, sizeof buf) : static_cast<int>(::recv(fd, buf, sizeof buf, 0));
            if (n <= 0) return;
            if (!writeAll(fd, ssl, std::string_view(buf, static_cast<size_t>(n)))) return;
        }
    };
}

TestServer::Handler TestServer::plainHttpRecorder(std::shared_ptr<std::string> lastRequest, std::string body) {
    auto mutex = std::make_shared<std::mutex>();
    return [lastRequest, body, mutex](int fd, SSL* ssl) {
        std::string head = readRequestHead(fd, ssl);
        {
            std::lock_guard lock(*mutex);
            *lastRequest = head;
        }
        writeAll(fd, ssl, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    };
}

std::string privateLoopback() {
    std::random_device rd;
    return "127." + std::to_string(20 + rd() % 200) + "." + std::to_string(rd() % 250 + 1) + "." +
           std::to_string(rd() % 250 + 1);
}

std::string base64Of(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                            reinterpret_cast<const unsigned char*>(bytes.data()), static_cast<int>(bytes.size()));
    out.resize(static_cast<size_t>(n));
    return out;
}

}  // namespace relaypro::testing
