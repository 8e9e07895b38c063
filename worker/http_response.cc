#include "worker/http_response.h"

namespace relaypro {

std::string_view reasonPhrase(int status) {
    switch (status) {
        case 200:
            return "OK";
        case 400:
            return "Bad Request";
        case 401:
            return "Unauthorized";
        case 403:
            return "Forbidden";
        case 404:
            return "Not Found";
        case 405:
            return "Method Not Allowed";
        case 407:
            return "Proxy Authentication Required";
        case 408:
            return "Request Timeout";
        case 429:
            return "Too Many Requests";
        case 431:
            return "Request Header Fields Too Large";
        case 500:
            return "Internal Server Error";
        case 502:
            return "Bad Gateway";
        case 503:
            return "Service Unavailable";
        case 504:
            return "Gateway Timeout";
        case 505:
            return "HTTP Version Not Supported";
        default:
            return "Unknown";
    }
}

std::string_view errorMessage(std::string_view code) {
    if (code == "bad_request") return "the request is malformed";
    if (code == "target_not_allowed") return "this relay does not forward to that target";
    if (code == "tls_required") return "use the HTTPS listener for this request";
    if (code == "not_found") return "no such path";
    if (code == "method_not_allowed") return "method not allowed for this path";
    if (code == "proxy_auth_required") return "proxy authentication required";
    if (code == "invalid_token") return "the token is invalid or expired; request a new one";
    if (code == "request_timeout") return "the request head did not arrive in time";
    if (code == "rate_limited") return "too many requests; retry later";
    if (code == "header_too_large") return "the request head is too large";
    if (code == "upstream_unreachable") return "the target could not be reached";
    if (code == "not_registered") return "this relay is not registered with its console";
    if (code == "console_unavailable") return "the console is unavailable; retry later";
    if (code == "upstream_timeout") return "the target did not answer in time";
    if (code == "version_not_supported") return "only HTTP/1.0 and HTTP/1.1 are supported";
    if (code == "invalid_credentials") return "the credential was not accepted";
    return "error";
}

Response errorResponse(int status, std::string_view code) {
    Response r;
    r.status = status;
    r.body = "{\"error\":\"" + std::string(code) + "\",\"message\":\"" + std::string(errorMessage(code)) + "\"}";
    return r;
}

std::string serialize(const Response& r) {
    std::string out;
    out.reserve(160 + r.body.size());
    out += "HTTP/1.1 ";
    out += std::to_string(r.status);
    out += ' ';
    out += reasonPhrase(r.status);
    out += "\r\n";
    for (const auto& [name, value] : r.headers) {
        out += name;
        out += ": ";
        out += value;
        out += "\r\n";
    }
    if (!r.body.empty() || r.status != 200 || !r.contentType.empty()) {
        out += "Content-Type: ";
        out += r.contentType;
        out += "\r\n";
    }
    out += "Content-Length: ";
    out += std::to_string(r.body.size());
    out += "\r\n";
    if (r.close) out += "Connection: close\r\n";
    out += "\r\n";
    if (!r.headOnly) out += r.body;
    return out;
}

}  // namespace relaypro
