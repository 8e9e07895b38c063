// Helpers of the lifecycle-at-scale tests (scale_test.cc, review19_test.cc).
#pragma once

#include <openssl/bio.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <utility>

#include "test/support/net.h"
#include "test/support/secrets.h"

namespace relaypro::testing {

// TLS, CONNECT to the echo target, one byte echoed: a tunnel the way a Responder holds one.
inline bool openTunnel(Client& c, uint16_t relayPort, uint16_t echoPort) {
    if (!c.connect("127.0.0.1", relayPort, true)) return false;
    if (!c.send("CONNECT localhost:" + std::to_string(echoPort) +
                " HTTP/1.1\r\nProxy-Authorization: " + basicCredential() + "\r\n\r\n")) {
        return false;
    }
    if (statusOf(c.readHead()) != 200) return false;
    return c.send("x") && c.readExactly(1) == "x";
}

// Writes a whole TLS ClientHello (OpenSSL's, made in memory) to `fd`; false when it could not.
inline bool writeClientHello(int fd) {
    SSL_CTX* ctx = SSL_CTX_new(TLS_client_method());
    SSL* ssl = ctx != nullptr ? SSL_new(ctx) : nullptr;
    bool sent = false;
    if (ssl != nullptr) {
        BIO* out = BIO_new(BIO_s_mem());
        SSL_set_bio(ssl, BIO_new(BIO_s_mem()), out);
        SSL_set_connect_state(ssl);
        (void)SSL_do_handshake(ssl);  // wants to read: the ClientHello is in `out`
        char* data = nullptr;
        long n = BIO_get_mem_data(out, &data);
        sent = n > 0 && ::write(fd, data, static_cast<size_t>(n)) == n;
    }
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    return sent;
}

// A connection to `port` that sends a whole TLS ClientHello and then nothing: once the relay
// has processed it, a handshake in progress that waits for its client (limits.maxHandshakes
// counts it). -1 on failure.
inline int sendClientHello(uint16_t port) {
    int fd = connectTo("127.0.0.1", port);
    if (fd < 0) return -1;
    if (!writeClientHello(fd)) {
        ::close(fd);
        return -1;
    }
    return fd;
}

// The relay answered the ClientHello on `fd` (its ServerHello is readable) within `timeout`.
inline bool answered(int fd, int timeoutMs = 10000) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, timeoutMs) == 1 && (p.revents & POLLIN) != 0;
}

// The relay answered the ClientHello on `fd` with a handshake record (its ServerHello), not a
// reset or an end, within `timeout`; the byte is read.
inline bool servedHello(int fd, int timeoutMs = 10000) {
    unsigned char type = 0;
    return answered(fd, timeoutMs) && ::read(fd, &type, 1) == 1 && type == 0x16;
}

// A listening socket on `port` as `ss -ltn` shows it: {connections waiting in its accept queue,
// the queue's length}; {-1, -1} when there is none.
inline std::pair<long, long> listenQueue(uint16_t port) {
    std::string cmd = "ss -ltnH 'sport = :" + std::to_string(port) + "' 2>/dev/null";
    FILE* p = ::popen(cmd.c_str(), "r");
    if (p == nullptr) return {-1, -1};
    char line[512] = {};
    std::pair<long, long> q{-1, -1};
    if (std::fgets(line, sizeof line, p) != nullptr) {
        char state[32] = {};
        if (std::sscanf(line, "%31s %ld %ld", state, &q.first, &q.second) != 3) q = {-1, -1};
    }
    ::pclose(p);
    return q;
}

}  // namespace relaypro::testing
