// The PROXY protocol header (HAProxy's v1 text and v2 binary forms) that load balancers in
// proxyProtocol.trustedSources put before a connection's first byte (spec/protocol.md).
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <string_view>

namespace relaypro {

inline constexpr size_t kMaxProxyHeaderBytes = 16 + 2048;  // v2 with modest TLVs; v1 is <= 107

struct ProxyHeader {
    enum class Status { Complete, Incomplete, Invalid };
    Status status = Status::Incomplete;
    size_t length = 0;          // bytes of the header (Complete)
    bool hasAddress = false;    // false: LOCAL / UNKNOWN / another family: keep the peer's address
    sockaddr_storage source{};  // the client as the balancer saw it
    std::string_view reason;    // Invalid: why
};

// Parses a header at the start of `data`.
ProxyHeader parseProxyHeader(std::string_view data);

// Whether `data` starts like a PROXY header (v1 "PROXY " or the v2 signature), as far as it goes.
bool startsLikeProxyHeader(std::string_view data);

}  // namespace relaypro
