#include "worker/router.h"

namespace relaypro {
namespace {

Route error(int status, std::string_view code, std::string_view allow = {}) {
    return Route{Route::Kind::Error, status, code, allow};
}

Route ok(Route::Kind kind) {
    return Route{kind, 0, {}, {}};
}

std::string_view pathOnly(std::string_view target) {
    return target.substr(0, target.find('?'));
}

bool isGetOrHead(std::string_view method) {
    return method == "GET" || method == "HEAD";
}

}  // namespace

Route routeRequest(ListenerKind listener, const RequestHead& h) {
    if (listener == ListenerKind::Http) {
        // Credentials never travel in clear text: anything that carries them, and everything but
        // health and console reachability checks, must use TLS.
        if (h.proxyAuthorization) return error(403, "tls_required");
        if (h.form == TargetForm::Origin && pathOnly(h.path) == kHealthPath && isGetOrHead(h.method)) {
            return ok(Route::Kind::Health);
        }
        if (h.form == TargetForm::Absolute && isGetOrHead(h.method) && h.scheme.size() == 4)
            return ok(Route::Kind::Forward);
        return error(403, "tls_required");
    }
    switch (h.form) {
        case TargetForm::Authority:
            return ok(Route::Kind::Connect);
        case TargetForm::Absolute:
            return error(405, "method_not_allowed", "CONNECT");
        case TargetForm::Asterisk:
            return error(404, "not_found");
        case TargetForm::Origin:
            break;
    }
    std::string_view path = pathOnly(h.path);
    if (path == kTokenPath)
        return h.method == "POST" ? ok(Route::Kind::Token) : error(405, "method_not_allowed", "POST");
    if (path == kCaPemPath) {
        return isGetOrHead(h.method) ? ok(Route::Kind::CaPem) : error(405, "method_not_allowed", "GET, HEAD");
    }
    if (path == kHealthPath) {
        return isGetOrHead(h.method) ? ok(Route::Kind::Health) : error(405, "method_not_allowed", "GET, HEAD");
    }
    return error(404, "not_found");
}

}  // namespace relaypro
