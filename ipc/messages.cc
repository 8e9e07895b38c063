#include "ipc/messages.h"

#include <cstring>

namespace relaypro::ipc {

std::string_view messageName(MessageType t) {
    switch (t) {
        case MessageType::Hello:
            return "Hello";
        case MessageType::HelloAck:
            return "HelloAck";
        case MessageType::SettingsChunk:
            return "SettingsChunk";
        case MessageType::Secrets:
            return "Secrets";
        case MessageType::Listeners:
            return "Listeners";
        case MessageType::Start:
            return "Start";
        case MessageType::Ready:
            return "Ready";
        case MessageType::Ping:
            return "Ping";
        case MessageType::Pong:
            return "Pong";
        case MessageType::Drain:
            return "Drain";
        case MessageType::Stop:
            return "Stop";
        case MessageType::Log:
            return "Log";
        case MessageType::VerifyRequest:
            return "VerifyRequest";
        case MessageType::VerifyAnswer:
            return "VerifyAnswer";
        case MessageType::Unknown:
            return "Unknown";
        case MessageType::SelfTest:
            return "SelfTest";
        case MessageType::SelfTestResult:
            return "SelfTestResult";
        case MessageType::AuthFailure:
            return "AuthFailure";
        case MessageType::SourceBlocked:
            return "SourceBlocked";
        case MessageType::CountFailure:
            return "CountFailure";
        case MessageType::FailureCounted:
            return "FailureCounted";
        case MessageType::Balance:
            return "Balance";
        case MessageType::TunnelListRequest:
            return "TunnelListRequest";
        case MessageType::TunnelList:
            return "TunnelList";
        case MessageType::Counters:
            return "Counters";
        case MessageType::DrainGradually:
            return "DrainGradually";
        case MessageType::HandshakeBound:
            return "HandshakeBound";
        case MessageType::SourcePorts:
            return "SourcePorts";
    }
    return "unknown";
}

std::string encodeFrame(MessageType type, uint32_t generation, std::string_view body) {
    Writer w;
    w.u16(static_cast<uint16_t>(type));
    w.u16(0);
    w.u32(generation);
    w.u32(static_cast<uint32_t>(body.size()));
    std::string out = w.take();
    out.append(body);
    return out;
}

std::optional<FrameHeader> decodeFrameHeader(std::string_view datagram) {
    if (datagram.size() < kFrameHeaderBytes || datagram.size() > kMaxFrameBytes) return std::nullopt;
    Reader r(datagram.substr(0, kFrameHeaderBytes));
    FrameHeader h{};
    h.type = static_cast<MessageType>(r.u16());
    uint16_t reserved = r.u16();
    h.generation = r.u32();
    h.bodyLength = r.u32();
    if (!r.finish() || reserved != 0 || h.bodyLength != datagram.size() - kFrameHeaderBytes) return std::nullopt;
    return h;
}

namespace {
enum FieldKind : uint8_t { kString = 0, kSigned = 1, kUnsigned = 2, kDouble = 3, kBool = 4 };
}

void Log::encode(Writer& w) const {
    w.u8(static_cast<uint8_t>(record.level));
    w.i64(std::chrono::duration_cast<std::chrono::microseconds>(record.time.time_since_epoch()).count());
    w.bytes(std::string_view(record.msg).substr(0, 4096));
    w.bytes(std::string_view(record.component).substr(0, 32));
    w.u32(static_cast<uint32_t>(record.pid));
    size_t n = std::min<size_t>(record.fields.size(), kMaxFields);
    w.u32(static_cast<uint32_t>(n));
    for (size_t i = 0; i < n; ++i) {
        const LogField& f = record.fields[i];
        w.bytes(std::string_view(f.key).substr(0, 64));
        if (const auto* s = std::get_if<std::string>(&f.value)) {
            w.u8(kString);
            w.bytes(std::string_view(*s).substr(0, 4096));
        } else if (const auto* i64 = std::get_if<int64_t>(&f.value)) {
            w.u8(kSigned);
            w.i64(*i64);
        } else if (const auto* u64 = std::get_if<uint64_t>(&f.value)) {
            w.u8(kUnsigned);
            w.u64(*u64);
        } else if (const auto* d = std::get_if<double>(&f.value)) {
            uint64_t bits = 0;
            std::memcpy(&bits, d, sizeof bits);
            w.u8(kDouble);
            w.u64(bits);
        } else if (const auto* b = std::get_if<bool>(&f.value)) {
            w.u8(kBool);
            w.boolean(*b);
        }
    }
}

bool Log::decode(Reader& r, Log& m) {
    uint8_t level = r.u8();
    if (level > static_cast<uint8_t>(LogLevel::Error)) r.fail();
    m.record.level = static_cast<LogLevel>(level);
    int64_t micros = r.i64();
    constexpr int64_t kYear2200 = 7258118400LL * 1000000LL;  // the clock counts nanoseconds in 64 bits
    if (micros < 0 || micros >= kYear2200) r.fail();
    m.record.time = std::chrono::system_clock::time_point(std::chrono::microseconds(r.ok() ? micros : 0));
    m.record.msg = r.bytes(4096);
    m.record.component = r.bytes(32);
    m.record.pid = r.u32();
    uint32_t n = r.count(kMaxFields);
    m.record.fields.clear();
    for (uint32_t i = 0; i < n && r.ok(); ++i) {
        std::string key = r.bytes(64);
        switch (r.u8()) {
            case kString:
                m.record.fields.emplace_back(std::move(key), r.bytes(4096));
                break;
            case kSigned:
                m.record.fields.emplace_back(std::move(key), r.i64());
                break;
            case kUnsigned:
                m.record.fields.emplace_back(std::move(key), r.u64());
                break;
            case kDouble: {
                uint64_t bits = r.u64();
                double d = 0;
                std::memcpy(&d, &bits, sizeof d);
                m.record.fields.emplace_back(std::move(key), d);
                break;
            }
            case kBool:
                m.record.fields.emplace_back(std::move(key), r.boolean());
                break;
            default:
                r.fail();
        }
    }
    return r.finish();
}

}  // namespace relaypro::ipc
