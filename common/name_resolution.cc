#include "common/name_resolution.h"

#include <algorithm>
#include <cerrno>

#include "common/config_values.h"
#include "common/file_io.h"
#include "common/text.h"

namespace relaypro {
namespace {

constexpr size_t kMaxFileBytes = 4 << 20;

std::vector<std::string_view> words(std::string_view line) {
    std::vector<std::string_view> out;
    size_t hash = line.find('#');
    line = line.substr(0, hash);
    size_t pos = 0;
    while (pos < line.size()) {
        while (pos < line.size() && (line[pos] == ' ' || line[pos] == '\t' || line[pos] == '\r')) ++pos;
        size_t end = pos;
        while (end < line.size() && line[end] != ' ' && line[end] != '\t' && line[end] != '\r') ++end;
        if (end > pos) out.push_back(line.substr(pos, end - pos));
        pos = end;
    }
    return out;
}

template <typename F>
void forEachLine(std::string_view text, F f) {
    size_t pos = 0;
    while (pos < text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string_view::npos) eol = text.size();
        f(text.substr(pos, eol - pos));
        pos = eol + 1;
    }
}

std::string normalName(std::string_view name) {
    std::string n = toLower(name);
    if (!n.empty() && n.back() == '.') n.pop_back();
    return n;
}

int optionValue(std::string_view option, std::string_view prefix, int fallback, int max) {
    std::string_view v = option.substr(prefix.size());
    if (v.empty() || v.size() > 3) return fallback;
    int n = 0;
    for (char c : v) {
        if (c < '0' || c > '9') return fallback;
        n = n * 10 + (c - '0');
    }
    return std::min(n, max);
}

}  // namespace

const std::vector<std::string>* HostsTable::find(std::string_view name) const {
    auto it = names.find(normalName(name));
    return it == names.end() ? nullptr : &it->second;
}

HostsTable parseHosts(std::string_view text) {
    HostsTable t;
    forEachLine(text, [&](std::string_view line) {
        auto w = words(line);
        if (w.size() < 2) return;
        std::string address(w[0]);
        size_t zone = address.find('%');
        if (zone != std::string::npos) return;  // link-local with a zone id: not usable here
        if (!isIpLiteral(address)) return;
        for (size_t i = 1; i < w.size(); ++i) {
            if (!isHostName(w[i])) continue;
            auto& list = t.names[normalName(w[i])];
            if (std::find(list.begin(), list.end(), address) == list.end()) list.push_back(address);
        }
    });
    return t;
}

ResolverConfig parseResolvConf(std::string_view text) {
    ResolverConfig r;
    forEachLine(text, [&](std::string_view line) {
        auto w = words(line);
        if (w.empty() || w[0].front() == ';') return;
        if (w[0] == "nameserver" && w.size() >= 2 && isIpLiteral(w[1]) && r.nameservers.size() < 3) {
            r.nameservers.emplace_back(w[1]);
        } else if (w[0] == "search" || w[0] == "domain") {
            r.search.clear();
            for (size_t i = 1; i < w.size() && r.search.size() < 6; ++i) r.search.emplace_back(w[i]);
        } else if (w[0] == "options") {
            for (size_t i = 1; i < w.size(); ++i) {
                if (w[i].starts_with("ndots:")) r.ndots = optionValue(w[i], "ndots:", r.ndots, 15);
                if (w[i].starts_with("timeout:"))
                    r.timeoutSeconds = std::max(1, optionValue(w[i], "timeout:", r.timeoutSeconds, 30));
                if (w[i].starts_with("attempts:"))
                    r.attempts = std::max(1, optionValue(w[i], "attempts:", r.attempts, 5));
            }
        }
    });
    return r;
}

Result<NameResolutionData> loadNameResolution(const std::string& hostsPath, const std::string& resolvConfPath) {
    NameResolutionData d;
    auto hosts = readFile(hostsPath, kMaxFileBytes);
    if (hosts) {
        d.hosts = parseHosts(*hosts);
    } else if (hosts.error().sysErrno != ENOENT) {
        return Error{"hosts file: " + hosts.error().describe()};
    }
    auto resolv = readFile(resolvConfPath, kMaxFileBytes);
    if (resolv) {
        d.resolver = parseResolvConf(*resolv);
    } else if (resolv.error().sysErrno != ENOENT) {
        return Error{"resolver file: " + resolv.error().describe()};
    }
    return d;
}

}  // namespace relaypro
