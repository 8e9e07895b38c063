#include "supervisor/handover.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>

#include "ipc/wire.h"

namespace relaypro {
namespace {

constexpr uint32_t kHandoverFormat = 1;
constexpr size_t kMaxHandoverBytes = 16 << 20;

bool validFd(int fd) {
    return fd >= 0 && ::fcntl(fd, F_GETFD) != -1;
}

}  // namespace

Result<int> unnamedFile(const std::string& fallbackDir, bool memfdFirst) {
    int fd = -1;
    if (memfdFirst) {
        fd = ::memfd_create("relaypro-handover", MFD_ALLOW_SEALING);  // no MFD_CLOEXEC: it crosses the exec
        if (fd >= 0) return fd;
        if (errno != ENOSYS && errno != EINVAL) return sysError("memfd_create");
    }
    fd = ::open(fallbackDir.c_str(), O_TMPFILE | O_RDWR, 0600);
    if (fd >= 0) return fd;
    std::string name = fallbackDir + "/.relaypro-handover-XXXXXX";
    fd = ::mkostemp(name.data(), 0);
    if (fd < 0) return sysError("cannot create the hand-over file in " + fallbackDir);
    ::unlink(name.c_str());
    return fd;
}

Result<int> writeHandover(const HandoverState& s, const std::string& fallbackDir) {
    ipc::Writer w;
    w.u32(kHandoverFormat);
    w.u32(s.currentGeneration);
    w.i64(s.startedUnixMs);
    w.u32(static_cast<uint32_t>(s.listeners.size()));
    for (const auto& l : s.listeners) {
        w.u8(l.kind);
        w.u32(static_cast<uint32_t>(l.fd));
        w.bytes(l.address);
    }
    w.u32(static_cast<uint32_t>(s.controlFd));
    w.u32(static_cast<uint32_t>(s.workers.size()));
    for (const auto& wk : s.workers) {
        w.u32(static_cast<uint32_t>(wk.pid));
        w.u32(wk.generation);
        w.u32(wk.slot);
        w.u8(wk.state);
        w.u32(static_cast<uint32_t>(wk.channelFd));
        w.u64(wk.totalTunnels);
    }
    w.u64(s.exitedTunnels);
    w.u32(static_cast<uint32_t>(s.everHeldEnv.size()));
    for (const auto& k : s.everHeldEnv) w.bytes(k);
    w.bytes(s.certificateChainPem);
    w.bytes(s.privateKeyPem);
    w.bytes(s.caPem);
    std::string data = w.take();
    auto file = unnamedFile(fallbackDir);
    if (!file) {
        sodium_memzero(data.data(), data.size());
        return file.error();
    }
    int fd = *file;
    size_t off = 0;
    while (off < data.size()) {
        ssize_t n = ::write(fd, data.data() + off, data.size() - off);
        if (n <= 0) {
            sodium_memzero(data.data(), data.size());
            ::close(fd);
            return sysError("cannot write the hand-over state");
        }
        off += static_cast<size_t>(n);
    }
    sodium_memzero(data.data(), data.size());
    ::fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);  // a memfd only
    return fd;
}

Result<HandoverState> readHandover(int fd) {
    std::string data;
    char buf[65536];
    ::lseek(fd, 0, SEEK_SET);
    while (true) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            ::close(fd);
            return sysError("cannot read the hand-over state");
        }
        if (n == 0) break;
        data.append(buf, static_cast<size_t>(n));
        if (data.size() > kMaxHandoverBytes) {
            ::close(fd);
            return Error{"the hand-over state is too large"};
        }
    }
    ::close(fd);
    ipc::Reader r(data);
    HandoverState s;
    if (r.u32() != kHandoverFormat) return Error{"the hand-over state has an unknown format"};
    s.currentGeneration = r.u32();
    s.startedUnixMs = r.i64();
    uint32_t nl = r.count(16);
    for (uint32_t i = 0; i < nl && r.ok(); ++i) {
        HandoverListener l;
        l.kind = r.u8();
        l.fd = static_cast<int>(r.u32());
        l.address = r.bytes(128);
        s.listeners.push_back(l);
    }
    s.controlFd = static_cast<int>(r.u32());
    uint32_t nw = r.count(4096);
    for (uint32_t i = 0; i < nw && r.ok(); ++i) {
        HandoverWorker w;
        w.pid = static_cast<pid_t>(r.u32());
        w.generation = r.u32();
        w.slot = r.u32();
        w.state = r.u8();
        w.channelFd = static_cast<int>(r.u32());
        w.totalTunnels = r.u64();
        if (w.state > 2 || w.pid <= 0) r.fail();
        s.workers.push_back(w);
    }
    s.exitedTunnels = r.u64();
    uint32_t ne = r.count(256);
    for (uint32_t i = 0; i < ne && r.ok(); ++i) s.everHeldEnv.push_back(r.bytes(256));
    s.certificateChainPem = r.bytes(1 << 20);
    s.privateKeyPem = r.bytes(64 << 10);
    s.caPem = r.bytes(1 << 20);
    sodium_memzero(data.data(), data.size());
    if (!r.finish()) return Error{"the hand-over state is malformed"};
    for (int f : handoverDescriptors(s)) {
        if (!validFd(f)) return Error{"the hand-over names descriptor " + std::to_string(f) + ", which is not open"};
    }
    return s;
}

std::vector<int> handoverDescriptors(const HandoverState& s) {
    std::vector<int> fds;
    for (const auto& l : s.listeners) fds.push_back(l.fd);
    if (s.controlFd >= 0) fds.push_back(s.controlFd);
    for (const auto& w : s.workers) fds.push_back(w.channelFd);
    return fds;
}

}  // namespace relaypro
