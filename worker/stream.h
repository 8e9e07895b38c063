// One end of a connection: a non-blocking socket, with or without TLS, behind the same small
// interface (pgbouncer's sbuf idea), so one state machine drives plain and TLS peers alike.
// Operations never block; a call that cannot complete says which readiness it waits for.
#pragma once

#include <event2/event.h>
#include <event2/event_struct.h>
#include <openssl/ssl.h>

#include <cstddef>

namespace relaypro {

enum class Io {
    Done,       // some bytes moved (or the operation completed)
    WantRead,   // try again when the socket is readable
    WantWrite,  // try again when the socket is writable
    Eof,        // the peer finished sending (TCP FIN or TLS close_notify)
    Error,      // the connection is broken
};

// The readiness a stream waits for before its next try.
struct Wants {
    bool read = false;
    bool write = false;
    // Waits for what `io` (WantRead or WantWrite) asked for.
    void add(Io io) { (io == Io::WantRead ? read : write) = true; }
};

class Stream {
public:
    Stream() = default;
    ~Stream() { reset(); }
    Stream(const Stream&) = delete;
    Stream& operator=(const Stream&) = delete;

    // Takes ownership of `fd` (and `ssl`, which must already be bound to fd, when given).
    void attach(int fd, SSL* ssl = nullptr);
    // Closes the socket (sending nothing more) and frees the TLS state.
    void reset();
    // Gives up ownership without closing anything (the caller took fd() and ssl()).
    void release() {
        fd_ = -1;
        ssl_ = nullptr;
    }

    [[nodiscard]] int fd() const { return fd_; }
    [[nodiscard]] SSL* ssl() const { return ssl_; }
    [[nodiscard]] bool tls() const { return ssl_ != nullptr; }
    [[nodiscard]] bool open() const { return fd_ >= 0; }

    Io handshake();
    Io read(char* buf, size_t cap, size_t& n);
    Io write(const char* buf, size_t len, size_t& n);
    // Ends our sending side: shutdown(SHUT_WR), or a TLS close_notify. Done once it is sent.
    Io shutdownWrite();
    // TLS bytes already decrypted inside OpenSSL, readable without the socket being readable.
    [[nodiscard]] bool hasPending() const { return ssl_ != nullptr && SSL_pending(ssl_) > 0; }

private:
    Io sslResult(int ret);
    int fd_ = -1;
    SSL* ssl_ = nullptr;
};

// The two readiness events of one stream's socket, added and removed as its Wants change
// (level-triggered, persistent: an event stays added only while its readiness is wanted).
class StreamEvents {
public:
    StreamEvents() = default;
    ~StreamEvents() { disarm(); }
    StreamEvents(const StreamEvents&) = delete;
    StreamEvents& operator=(const StreamEvents&) = delete;

    void assign(event_base* base, int fd, event_callback_fn callback, void* arg);
    void arm(Wants wants);
    void disarm();

private:
    event read_{}, write_{};
    short armed_ = 0;
    bool assigned_ = false;
};

}  // namespace relaypro
