// IPC frames from arbitrary bytes, as the supervisor would receive them from a compromised
// worker (and the other way round): the header check and every typed decoder must reject or
// accept without crashing, and whatever decodes must re-encode to the same bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "ipc/messages.h"
#include "ipc/snapshot.h"
#include "ipc/tunnel_list.h"

using namespace relaypro::ipc;

namespace {

template <typename M>
void check(std::string_view body) {
    M m;
    if (!decodeBody(body, m)) return;
    Writer w;
    m.encode(w);
    // Log records are cut to their limits on encode; everything else is a bijection.
    if (M::kType != MessageType::Log && w.data() != body) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    auto header = decodeFrameHeader(in);
    std::string_view body = header ? in.substr(kFrameHeaderBytes) : in;
    switch (header ? header->type : static_cast<MessageType>(size % (kLastMessageType + 1))) {
        case MessageType::Hello:
            check<Hello>(body);
            break;
        case MessageType::HelloAck:
            check<HelloAck>(body);
            break;
        case MessageType::SettingsChunk:
            check<SettingsChunk>(body);
            break;
        case MessageType::Secrets:
            check<Secrets>(body);
            break;
        case MessageType::Listeners:
            check<Listeners>(body);
            break;
        case MessageType::Start:
            check<Start>(body);
            break;
        case MessageType::Ready:
            check<Ready>(body);
            break;
        case MessageType::Ping:
            check<Ping>(body);
            break;
        case MessageType::Pong:
            check<Pong>(body);
            break;
        case MessageType::Drain:
            check<Drain>(body);
            break;
        case MessageType::Stop:
            check<Stop>(body);
            break;
        case MessageType::Log:
            check<Log>(body);
            break;
        case MessageType::VerifyRequest:
            check<VerifyRequest>(body);
            break;
        case MessageType::VerifyAnswer:
            check<VerifyAnswer>(body);
            break;
        case MessageType::Unknown:
            check<Unknown>(body);
            break;
        case MessageType::SelfTest:
            check<SelfTest>(body);
            break;
        case MessageType::SelfTestResult:
            check<SelfTestResult>(body);
            break;
        case MessageType::AuthFailure:
            check<AuthFailure>(body);
            break;
        case MessageType::SourceBlocked:
            check<SourceBlocked>(body);
            break;
        case MessageType::CountFailure:
            check<CountFailure>(body);
            break;
        case MessageType::FailureCounted:
            check<FailureCounted>(body);
            break;
        case MessageType::Balance:
            check<Balance>(body);
            break;
        case MessageType::TunnelListRequest:
            check<TunnelListRequest>(body);
            break;
        case MessageType::TunnelList:
            check<TunnelList>(body);
            break;
        case MessageType::Counters:
            check<Counters>(body);
            break;
        case MessageType::DrainGradually:
            check<DrainGradually>(body);
            break;
        case MessageType::HandshakeBound:
            check<HandshakeBound>(body);
            break;
        case MessageType::SourcePorts:
            check<SourcePorts>(body);
            break;
        default:
            break;
    }
    if (auto s = decodeSettings(in); s.ok() && encodeSettings(**s) != in) std::abort();
    return 0;
}
