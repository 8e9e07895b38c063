// Responses RelayPro writes itself: status lines with RFC 9110 reason phrases (Go reports a
// refused CONNECT by the phrase alone), JSON error bodies {"error","message"}, and the
// Proxy-Authenticate challenges of spec/protocol.md.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace relaypro {

std::string_view reasonPhrase(int status);

// The short, fixed text for an error code (never echoes input, addresses or versions).
std::string_view errorMessage(std::string_view code);

struct Response {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
    std::string contentType = "application/json";
    bool close = false;     // add Connection: close (and close after sending)
    bool headOnly = false;  // a HEAD request: headers (with the body's length) but no body
};

// {"error":"<code>","message":"<text>"} with the status of the error.
Response errorResponse(int status, std::string_view code);

// Serialises status line, headers, Content-Length and body.
std::string serialize(const Response& r);

}  // namespace relaypro
