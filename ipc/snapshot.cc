#include "ipc/snapshot.h"

namespace relaypro::ipc {
namespace {

constexpr uint32_t kSnapshotFormat = 1;

void writeDuration(Writer& w, Duration d) {
    w.i64(d.count());
}
Duration readDuration(Reader& r) {
    int64_t v = r.i64();
    if (v < 0) r.fail();
    return Duration(v);
}

void writeConsole(Writer& w, const ConsoleAddress& a) {
    w.bytes(a.host);
    w.u16(a.port);
    w.boolean(a.portGiven);
}
ConsoleAddress readConsole(Reader& r) {
    ConsoleAddress a;
    a.host = r.bytes(256);
    a.port = r.u16();
    a.portGiven = r.boolean();
    return a;
}

void writeProxyUrl(Writer& w, const std::optional<ProxyUrl>& u) {
    w.boolean(u.has_value());
    if (!u) return;
    w.boolean(u->tls);
    w.bytes(u->host);
    w.u16(u->port);
    w.bytes(u->user);
    w.bytes(u->password);
}
std::optional<ProxyUrl> readProxyUrl(Reader& r) {
    if (!r.boolean()) return std::nullopt;
    ProxyUrl u;
    u.tls = r.boolean();
    u.host = r.bytes(256);
    u.port = r.u16();
    u.user = r.bytes(1024);
    u.password = r.bytes(1024);
    return u;
}

}  // namespace

std::string encodeSettings(const WorkerSettings& s) {
    Writer w;
    w.u32(kSnapshotFormat);
    const Limits& l = s.limits;
    w.u64(l.maxConnections);
    writeDuration(w, l.headerTimeout);
    w.u64(l.maxHeaderBytes);
    writeDuration(w, l.connectTimeout);
    writeDuration(w, l.idleTimeout);
    writeDuration(w, l.drainTimeout);
    writeDuration(w, l.shutdownGrace);
    w.u32(l.tokenRequestsPerMinute);
    w.u64(s.maxConnections);
    writeConsole(w, s.policy.console());
    w.boolean(s.policy.migration().has_value());
    if (s.policy.migration()) {
        writeConsole(w, s.policy.migration()->consoleAddress);
        w.i64(std::chrono::duration_cast<std::chrono::seconds>(s.policy.migration()->validUntilAt.time_since_epoch())
                  .count());
        w.bytes(s.policy.migration()->validUntilText);
    }
    w.boolean(s.passwords != nullptr);
    if (s.passwords) {
        w.u32(static_cast<uint32_t>(s.passwords->entries().size()));
        for (const auto& e : s.passwords->entries()) {
            w.bytes(e.user);
            w.bytes(e.secret);
            w.boolean(e.hashed);
        }
    }
    w.boolean(s.proxyEnabled);
    writeProxyUrl(w, s.proxy.https);
    writeProxyUrl(w, s.proxy.http);
    w.bytes(s.proxy.noProxy.text());
    w.u32(static_cast<uint32_t>(s.names.hosts.names.size()));
    for (const auto& [name, addresses] : s.names.hosts.names) {
        w.bytes(name);
        w.u32(static_cast<uint32_t>(addresses.size()));
        for (const auto& a : addresses) w.bytes(a);
    }
    const ResolverConfig& rc = s.names.resolver;
    w.u32(static_cast<uint32_t>(rc.nameservers.size()));
    for (const auto& ns : rc.nameservers) w.bytes(ns);
    w.u32(static_cast<uint32_t>(rc.search.size()));
    for (const auto& d : rc.search) w.bytes(d);
    w.u32(static_cast<uint32_t>(rc.ndots));
    w.u32(static_cast<uint32_t>(rc.timeoutSeconds));
    w.u32(static_cast<uint32_t>(rc.attempts));
    w.u32(static_cast<uint32_t>(s.trustedSources.size()));
    for (const auto& c : s.trustedSources) w.bytes(c.text());
    w.boolean(s.registered);
    w.bytes(s.caPem);
    w.boolean(s.debugLogging);
    w.i64(s.organizationId);
    w.u32(static_cast<uint32_t>(s.tokenLifetime.count()));
    w.u32(static_cast<uint32_t>(s.tokenClockSkew.count()));
    return w.take();
}

Result<std::shared_ptr<const WorkerSettings>> decodeSettings(std::string_view bytes) {
    if (bytes.size() > kMaxSnapshotBytes) return Error{"settings snapshot too large"};
    Reader r(bytes);
    if (r.u32() != kSnapshotFormat) return Error{"settings snapshot of an unknown format"};
    auto s = std::make_shared<WorkerSettings>();
    Limits& l = s->limits;
    l.maxConnections = r.u64();
    l.headerTimeout = readDuration(r);
    l.maxHeaderBytes = r.u64();
    l.connectTimeout = readDuration(r);
    l.idleTimeout = readDuration(r);
    l.drainTimeout = readDuration(r);
    l.shutdownGrace = readDuration(r);
    l.tokenRequestsPerMinute = r.u32();
    s->maxConnections = r.u64();
    ConsoleAddress console = readConsole(r);
    std::optional<Migration> migration;
    if (r.boolean()) {
        Migration m;
        m.consoleAddress = readConsole(r);
        int64_t until = r.i64();
        if (until < 0 || until >= 7258118400LL) r.fail();  // as config.md allows: 1970 to 2199
        m.validUntilAt = std::chrono::system_clock::time_point(std::chrono::seconds(r.ok() ? until : 0));
        m.validUntilText = r.bytes(64);
        migration = std::move(m);
    }
    s->policy = TargetPolicy(std::move(console), std::move(migration));
    if (r.boolean()) {
        uint32_t n = r.count(1 << 20);
        std::vector<PasswordEntry> entries;
        for (uint32_t i = 0; i < n && r.ok(); ++i) {
            PasswordEntry e;
            e.user = r.bytes(4096);
            e.secret = r.bytes(4096);
            e.hashed = r.boolean();
            entries.push_back(std::move(e));
        }
        s->passwords = std::make_shared<const PasswordFile>(PasswordFile::fromEntries(std::move(entries)));
    }
    s->proxyEnabled = r.boolean();
    s->proxy.https = readProxyUrl(r);
    s->proxy.http = readProxyUrl(r);
    auto noProxy = NoProxy::parse(r.bytes(64 * 1024));
    if (!noProxy) return Error{"settings snapshot: " + noProxy.error().message};
    s->proxy.noProxy = std::move(*noProxy);
    uint32_t names = r.count(1 << 20);
    for (uint32_t i = 0; i < names && r.ok(); ++i) {
        std::string name = r.bytes(256);
        uint32_t count = r.count(64);
        auto& list = s->names.hosts.names[name];
        for (uint32_t k = 0; k < count && r.ok(); ++k) list.push_back(r.bytes(64));
    }
    ResolverConfig& rc = s->names.resolver;
    uint32_t ns = r.count(16);
    for (uint32_t i = 0; i < ns && r.ok(); ++i) rc.nameservers.push_back(r.bytes(64));
    uint32_t search = r.count(16);
    for (uint32_t i = 0; i < search && r.ok(); ++i) rc.search.push_back(r.bytes(256));
    rc.ndots = static_cast<int>(r.u32());
    rc.timeoutSeconds = static_cast<int>(r.u32());
    rc.attempts = static_cast<int>(r.u32());
    if (rc.ndots > 15 || rc.timeoutSeconds < 1 || rc.timeoutSeconds > 30 || rc.attempts < 1 || rc.attempts > 5)
        r.fail();
    uint32_t trusted = r.count(4096);
    for (uint32_t i = 0; i < trusted && r.ok(); ++i) {
        auto c = parseCidr(r.bytes(64));
        if (!c) return Error{"settings snapshot: bad CIDR"};
        s->trustedSources.push_back(*c);
    }
    s->registered = r.boolean();
    s->caPem = r.bytes(1 << 20);
    s->debugLogging = r.boolean();
    s->organizationId = r.i64();
    s->tokenLifetime = std::chrono::seconds(r.u32());
    s->tokenClockSkew = std::chrono::seconds(r.u32());
    if (s->tokenLifetime.count() < 60 || s->tokenLifetime.count() > 24 * 3600 || s->tokenClockSkew.count() > 24 * 3600)
        r.fail();
    if (!r.finish()) return Error{"malformed settings snapshot"};
    return std::shared_ptr<const WorkerSettings>(std::move(s));
}

std::vector<SettingsChunk> chunkSnapshot(uint32_t snapshotId, const std::string& bytes) {
    std::vector<SettingsChunk> out;
    size_t count = std::max<size_t>(1, (bytes.size() + kMaxChunkBytes - 1) / kMaxChunkBytes);
    for (size_t i = 0; i < count; ++i) {
        SettingsChunk c;
        c.snapshotId = snapshotId;
        c.index = static_cast<uint16_t>(i);
        c.count = static_cast<uint16_t>(count);
        c.data = bytes.substr(i * kMaxChunkBytes, kMaxChunkBytes);
        out.push_back(std::move(c));
    }
    return out;
}

Status SnapshotAssembler::add(const SettingsChunk& c) {
    if (c.index == 0) {
        snapshotId_ = c.snapshotId;
        count_ = c.count;
        next_ = 0;
        data_.clear();
        complete_ = false;
    }
    if (c.snapshotId != snapshotId_ || c.index != next_ || c.count != count_)
        return Error{"settings chunks out of order"};
    if (data_.size() + c.data.size() > kMaxSnapshotBytes) return Error{"settings snapshot too large"};
    data_ += c.data;
    ++next_;
    complete_ = next_ == count_;
    return {};
}

std::string SnapshotAssembler::take() {
    complete_ = false;
    next_ = 0;
    return std::move(data_);
}

}  // namespace relaypro::ipc
