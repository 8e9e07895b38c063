// What is inside this binary (`relaypro version --verbose`): the version of every third-party
// library as the library itself reports it at run time, and where it comes from — in the
// packaged build the Debian source package it was built from (packaging/bundle.lock), linked
// statically; in a developer build the build machine's shared library. Also the C library the
// binary runs on now, the one part that is the host's.
#pragma once

#include <string>
#include <vector>

namespace relaypro {

struct ComponentVersion {
    std::string name;     // "OpenSSL", "libcurl", ...
    std::string version;  // as the library reports it: "3.5.7"
    // "linked statically, from Debian source package openssl 3.5.7-1~deb13u2[, with RelayPro's
    // patch …]", or "shared library of the build machine"
    std::string origin;
};

// Every library, in a fixed order; the C library (the host's, at run time) last.
std::vector<ComponentVersion> componentVersions();

// The lines `relaypro version --verbose` prints after the first.
std::string describeComponents();

}  // namespace relaypro
