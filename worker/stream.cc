#include "worker/stream.h"

#include <openssl/err.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

namespace relaypro {

void Stream::attach(int fd, SSL* ssl) {
    reset();
    fd_ = fd;
    ssl_ = ssl;
}

void Stream::reset() {
    if (ssl_ != nullptr) {
        SSL_free(ssl_);
        ssl_ = nullptr;
    }
    if (fd_ >= 0) {
        ::close(fd_);
        fd_ = -1;
    }
}

Io Stream::sslResult(int ret) {
    int err = SSL_get_error(ssl_, ret);
    switch (err) {
        case SSL_ERROR_WANT_READ:
            return Io::WantRead;
        case SSL_ERROR_WANT_WRITE:
            return Io::WantWrite;
        case SSL_ERROR_ZERO_RETURN:
            return Io::Eof;
        case SSL_ERROR_SYSCALL:
            ERR_clear_error();
            if (errno == EAGAIN || errno == EINTR) return Io::WantRead;
            return Io::Error;
        default:
            ERR_clear_error();
            return Io::Error;
    }
}

Io Stream::handshake() {
    ERR_clear_error();
    int r = SSL_do_handshake(ssl_);
    return r == 1 ? Io::Done : sslResult(r);
}

Io Stream::read(char* buf, size_t cap, size_t& n) {
    n = 0;
    if (ssl_ != nullptr) {
        ERR_clear_error();
        int r = SSL_read_ex(ssl_, buf, cap, &n) == 1 ? 1 : 0;
        return r == 1 ? Io::Done : sslResult(r);
    }
    while (true) {
        ssize_t r = ::recv(fd_, buf, cap, 0);
        if (r > 0) {
            n = static_cast<size_t>(r);
            return Io::Done;
        }
        if (r == 0) return Io::Eof;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Io::WantRead;
        return Io::Error;
    }
}

Io Stream::write(const char* buf, size_t len, size_t& n) {
    n = 0;
    if (ssl_ != nullptr) {
        ERR_clear_error();
        int r = SSL_write_ex(ssl_, buf, len, &n) == 1 ? 1 : 0;
        return r == 1 ? Io::Done : sslResult(r);
    }
    while (true) {
        ssize_t r = ::send(fd_, buf, len, MSG_NOSIGNAL);
        if (r >= 0) {
            n = static_cast<size_t>(r);
            return Io::Done;
        }
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return Io::WantWrite;
        return Io::Error;
    }
}

Io Stream::shutdownWrite() {
    if (ssl_ != nullptr) {
        ERR_clear_error();
        int r = SSL_shutdown(ssl_);
        if (r >= 0) return Io::Done;  // 0: our close_notify is out; we do not wait for theirs
        Io io = sslResult(r);
        return io == Io::Eof ? Io::Done : io;
    }
    if (::shutdown(fd_, SHUT_WR) != 0 && errno != ENOTCONN) return Io::Error;
    return Io::Done;
}

void StreamEvents::assign(event_base* base, int fd, event_callback_fn callback, void* arg) {
    disarm();
    event_assign(&read_, base, fd, EV_READ | EV_PERSIST, callback, arg);
    event_assign(&write_, base, fd, EV_WRITE | EV_PERSIST, callback, arg);
    assigned_ = true;
}

void StreamEvents::arm(Wants wants) {
    if (!assigned_) return;
    short want = static_cast<short>((wants.read ? EV_READ : 0) | (wants.write ? EV_WRITE : 0));
    if ((want & EV_READ) != (armed_ & EV_READ)) {
        if ((want & EV_READ) != 0)
            event_add(&read_, nullptr);
        else
            event_del(&read_);
    }
    if ((want & EV_WRITE) != (armed_ & EV_WRITE)) {
        if ((want & EV_WRITE) != 0)
            event_add(&write_, nullptr);
        else
            event_del(&write_);
    }
    armed_ = want;
}

void StreamEvents::disarm() {
    if (!assigned_) return;
    event_del(&read_);
    event_del(&write_);
    armed_ = 0;
}

}  // namespace relaypro
