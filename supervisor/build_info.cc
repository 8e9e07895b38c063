#include "supervisor/build_info.h"

#include <curl/curl.h>
#include <event2/event.h>
#include <gnu/libc-version.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <seccomp.h>
#include <sodium.h>
#include <yaml.h>
#include <zlib.h>

#include <algorithm>
#include <map>
#include <string_view>

// RELAYPRO_BUNDLED_FROM: "name=debian-version/patch+patch,…" from the bundle's manifest
// (supervisor/CMakeLists.txt; the patches are packaging/patches/), empty in a developer build.
#ifndef RELAYPRO_BUNDLED_FROM
#define RELAYPRO_BUNDLED_FROM ""
#endif

namespace relaypro {
namespace {

// Debian source package -> version, from RELAYPRO_BUNDLED_FROM.
std::map<std::string, std::string> bundledFrom() {
    std::map<std::string, std::string> out;
    std::string_view all(RELAYPRO_BUNDLED_FROM);
    while (!all.empty()) {
        size_t end = all.find(',');
        std::string_view item = all.substr(0, end);
        size_t eq = item.find('=');
        if (eq != std::string_view::npos) out[std::string(item.substr(0, eq))] = std::string(item.substr(eq + 1));
        all = end == std::string_view::npos ? std::string_view() : all.substr(end + 1);
    }
    return out;
}

}  // namespace

std::vector<ComponentVersion> componentVersions() {
    const auto from = bundledFrom();
    auto origin = [&](const char* source) -> std::string {
        auto it = from.find(source);
        if (it == from.end()) return "shared library of the build machine";
        const std::string& v = it->second;
        size_t slash = v.find('/');
        std::string text =
            std::string("linked statically, from Debian source package ") + source + " " + v.substr(0, slash);
        if (slash != std::string::npos && slash + 1 < v.size()) {
            std::string patches = v.substr(slash + 1);
            bool several = patches.find('+') != std::string::npos;
            std::replace(patches.begin(), patches.end(), '+', ' ');
            text += std::string(", with RelayPro's ") + (several ? "patches " : "patch ") + patches;
        }
        return text;
    };
    const curl_version_info_data* curl = curl_version_info(CURLVERSION_NOW);
    const scmp_version* seccomp = seccomp_version();
    std::vector<ComponentVersion> out = {
        {"OpenSSL", OpenSSL_version(OPENSSL_VERSION_STRING), origin("openssl")},
        {"libcurl", curl->version, origin("curl")},
        {"libevent", event_get_version(), origin("libevent")},
        {"libsodium", sodium_version_string(), origin("libsodium")},
        {"libyaml", yaml_get_version_string(), origin("libyaml")},
        {"jansson", jansson_version_str(), origin("jansson")},
        {"libseccomp",
         std::to_string(seccomp->major) + "." + std::to_string(seccomp->minor) + "." + std::to_string(seccomp->micro),
         origin("libseccomp")},
        {"zlib", zlibVersion(), origin("zlib")},
    };
#ifdef RELAYPRO_BUNDLED
    out.push_back({"libstdc++", "GCC " + std::to_string(_GLIBCXX_RELEASE), "linked statically"});
#endif
    out.push_back({"glibc", gnu_get_libc_version(), "the system's, found at run time"});
    return out;
}

std::string describeComponents() {
    std::string text;
    for (const auto& c : componentVersions()) text += "  " + c.name + " " + c.version + " (" + c.origin + ")\n";
    return text;
}

}  // namespace relaypro
