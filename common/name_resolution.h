// Name-resolution data the supervisor reads (workers open no files): the hosts file
// (RELAYPRO_HOSTS_FILE, consulted first) and /etc/resolv.conf (nameservers for DNS).
#pragma once

#include <sys/socket.h>

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.h"

namespace relaypro {

struct HostsTable {
    // Lower-case name without a trailing dot -> addresses in file order (IP literals as text).
    std::map<std::string, std::vector<std::string>, std::less<>> names;
    // The addresses for `name` (any case, one trailing dot ignored), empty when not listed.
    [[nodiscard]] const std::vector<std::string>* find(std::string_view name) const;
};

// Parses hosts-file text: "address name [alias…]" lines, '#' comments. Malformed lines are
// skipped (as the C library does), so a stray line never stops the service.
HostsTable parseHosts(std::string_view text);

struct ResolverConfig {
    std::vector<std::string> nameservers;  // IP literals
    std::vector<std::string> search;
    int ndots = 1;
    int timeoutSeconds = 5;
    int attempts = 2;
};

// Parses resolv.conf text: nameserver, search, domain and options ndots/timeout/attempts.
ResolverConfig parseResolvConf(std::string_view text);

struct NameResolutionData {
    HostsTable hosts;
    ResolverConfig resolver;
};

// Reads both files; a missing file is empty (a machine may have no /etc/hosts in a container).
Result<NameResolutionData> loadNameResolution(const std::string& hostsPath, const std::string& resolvConfPath);

}  // namespace relaypro
