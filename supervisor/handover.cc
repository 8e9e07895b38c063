#include "supervisor/handover.h"

#include <fcntl.h>
#include <sodium.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>

#include "ipc/wire.h"

namespace relaypro {
namespace {

constexpr size_t kMaxHandoverBytes = 48 << 20;  // the settings snapshot may take 32 MiB

bool validFd(int fd) {
    return fd >= 0 && ::fcntl(fd, F_GETFD) != -1;
}

void writeFormatTwo(ipc::Writer& w, const HandoverState& s) {
    w.bytes(s.configText);
    w.bytes(s.envFileText);
    w.bytes(s.httpsListen);
    w.bytes(s.httpListen);
    w.bytes(s.settingsBytes);
    w.bytes(s.caBundlePem);
    w.u8(s.revoked ? 1 : 0);
    w.u32(static_cast<uint32_t>(s.upgradeReplyFd));
    w.u64(s.droppedLogLines);
    w.u64(s.droppedLogLinesTotal);
    w.u32(static_cast<uint32_t>(s.unsavedUpdates.size()));
    for (const auto& u : s.unsavedUpdates) {
        w.u8(static_cast<uint8_t>(u.kind));
        w.u32(static_cast<uint32_t>(u.path.size()));
        for (const auto& p : u.path) w.bytes(p);
        w.bytes(u.value);
    }
    w.bytes(s.unsavedBase);
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

Result<int> writeHandover(const HandoverState& s, const std::string& fallbackDir, uint32_t format) {
    ipc::Writer w;
    w.u32(format);
    w.u32(s.currentGeneration);
    w.i64(s.startedUnixMs);
    w.u32(static_cast<uint32_t>(s.listeners.size()));
    for (const auto& l : s.listeners) {
        w.u8(static_cast<uint8_t>(l.kind));
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
    if (format >= 2) writeFormatTwo(w, s);
    if (format >= 3) {
        w.u32(static_cast<uint32_t>(s.metricsFd));
        w.bytes(s.metricsAddress);
        w.bytes(s.metricsState);
    }
    if (format >= 4) {
        w.u32(static_cast<uint32_t>(s.workers.size()));
        for (const auto& wk : s.workers) w.u16(wk.protocol);
    }
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

namespace {

// The whole memfd (it is closed); sized first so that no copy of a secret is left behind by a
// reallocation.
Result<std::string> readAll(int fd) {
    std::string data;
    struct stat st {};
    if (::fstat(fd, &st) == 0 && st.st_size > 0 && static_cast<size_t>(st.st_size) <= kMaxHandoverBytes) {
        data.reserve(static_cast<size_t>(st.st_size));
    }
    char buf[65536];
    ::lseek(fd, 0, SEEK_SET);
    while (true) {
        ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0) {
            Error e = sysError("cannot read the hand-over state");
            ::close(fd);
            sodium_memzero(data.data(), data.size());
            sodium_memzero(buf, sizeof buf);
            return e;
        }
        if (n == 0) break;
        data.append(buf, static_cast<size_t>(n));
        if (data.size() > kMaxHandoverBytes) {
            ::close(fd);
            sodium_memzero(data.data(), data.size());
            return Error{"the hand-over state is too large"};
        }
    }
    ::close(fd);
    sodium_memzero(buf, sizeof buf);
    return data;
}

void readListenersAndWorkers(ipc::Reader& r, HandoverState& s) {
    uint32_t nl = r.count(16);
    for (uint32_t i = 0; i < nl && r.ok(); ++i) {
        ListenerSocket l;
        auto kind = listenerKindFromWire(r.u8());
        if (!kind) r.fail();
        l.kind = kind.value_or(ListenerKind::Https);
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
        if (w.state > HandoverWorker::kDraining || w.pid <= 0) r.fail();
        s.workers.push_back(w);
    }
}

std::vector<ConfigUpdate> readUnsavedUpdates(ipc::Reader& r) {
    std::vector<ConfigUpdate> out;
    uint32_t nu = r.count(64);
    for (uint32_t i = 0; i < nu && r.ok(); ++i) {
        ConfigUpdate u;
        uint8_t kind = r.u8();
        if (kind > static_cast<uint8_t>(ConfigUpdate::Kind::Remove)) r.fail();
        u.kind = static_cast<ConfigUpdate::Kind>(kind);
        uint32_t np = r.count(8);
        for (uint32_t k = 0; k < np && r.ok(); ++k) u.path.push_back(r.bytes(64));
        u.value = r.bytes(1 << 20);
        if (u.path.empty()) r.fail();
        out.push_back(std::move(u));
    }
    return out;
}

// What format 2 adds to format 1: the running configuration.
void readFormat2(ipc::Reader& r, HandoverState& s) {
    s.configText = r.bytes(1 << 20);
    s.envFileText = r.bytes(1 << 20);
    s.httpsListen = r.bytes(300);
    s.httpListen = r.bytes(300);
    s.settingsBytes = r.bytes(32 << 20);
    s.caBundlePem = r.bytes(1 << 20);
    uint8_t revoked = r.u8();
    if (revoked > 1) r.fail();
    s.revoked = revoked == 1;
    s.upgradeReplyFd = static_cast<int>(r.u32());
    s.droppedLogLines = r.u64();
    s.droppedLogLinesTotal = r.u64();
    s.unsavedUpdates = readUnsavedUpdates(r);
    s.unsavedBase = r.bytes(1 << 20);
    if (s.configText.empty() || s.httpsListen.empty() || s.settingsBytes.empty() || s.caBundlePem.empty()) r.fail();
}

}  // namespace

Result<HandoverState> readHandover(int fd) {
    auto data = readAll(fd);
    if (!data) return data.error();
    struct Wipe {
        std::string& d;
        ~Wipe() { sodium_memzero(d.data(), d.size()); }
    } wipe{*data};
    ipc::Reader r(*data);
    HandoverState s;
    // Format 1 (the previous release) is the start of format 2.
    s.format = r.u32();
    if (s.format < 1 || s.format > kHandoverFormat) return Error{"the hand-over state has an unknown format"};
    s.currentGeneration = r.u32();
    s.startedUnixMs = r.i64();
    readListenersAndWorkers(r, s);
    s.exitedTunnels = r.u64();
    uint32_t ne = r.count(256);
    for (uint32_t i = 0; i < ne && r.ok(); ++i) s.everHeldEnv.push_back(r.bytes(256));
    s.certificateChainPem = r.bytes(1 << 20);
    s.privateKeyPem = r.bytes(64 << 10);
    s.caPem = r.bytes(1 << 20);
    if (s.format >= 2) readFormat2(r, s);
    if (s.format >= 3) {
        s.metricsFd = static_cast<int>(r.u32());
        s.metricsAddress = r.bytes(300);
        s.metricsState = r.bytes(1 << 20);
    }
    if (s.format >= 4) {
        if (r.count(static_cast<uint32_t>(s.workers.size())) != s.workers.size()) r.fail();
        for (auto& wk : s.workers) wk.protocol = r.u16();
    }
    if (!r.finish()) {
        wipeHandoverSecrets(s);
        return Error{"the hand-over state is malformed"};
    }
    for (int f : handoverDescriptors(s)) {
        if (!validFd(f)) {
            wipeHandoverSecrets(s);
            return Error{"the hand-over names descriptor " + std::to_string(f) + ", which is not open"};
        }
    }
    return s;
}

void wipeHandoverSecrets(HandoverState& s) {
    for (std::string* secret :
         {&s.privateKeyPem, &s.caBundlePem, &s.configText, &s.envFileText, &s.unsavedBase, &s.settingsBytes}) {
        sodium_memzero(secret->data(), secret->size());
    }
    for (auto& u : s.unsavedUpdates) sodium_memzero(u.value.data(), u.value.size());
}

std::vector<int> handoverDescriptors(const HandoverState& s) {
    std::vector<int> fds;
    for (const auto& l : s.listeners) fds.push_back(l.fd);
    if (s.controlFd >= 0) fds.push_back(s.controlFd);
    for (const auto& w : s.workers) fds.push_back(w.channelFd);
    if (s.upgradeReplyFd >= 0) fds.push_back(s.upgradeReplyFd);
    if (s.metricsFd >= 0) fds.push_back(s.metricsFd);
    return fds;
}

}  // namespace relaypro
