// The password file and the Basic credential from arbitrary bytes. The first byte picks the
// parser. Properties checked: a parsed file's users are non-empty, unique and found by find();
// an error message stays short (it names a line and a user; unit tests check that it carries no
// password or hash); a decoded credential has a non-empty user without a colon.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <set>
#include <string>

#include "common/password_file.h"

using namespace relaypro;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    std::string text(reinterpret_cast<const char*>(data) + 1, size - 1);
    if ((data[0] & 1) == 0) {
        auto file = PasswordFile::parse(text, "/fuzz/passwords.txt");
        if (!file) {
            // Errors name a line and a user, never echo a whole line: bounded whatever the input.
            if (file.error().message.size() > 1024) std::abort();
            return 0;
        }
        std::set<std::string> users;
        for (const PasswordEntry& e : file->entries()) {
            if (e.user.empty() || !users.insert(e.user).second || file->find(e.user) != &e) std::abort();
        }
        return 0;
    }
    std::string user, password;
    if (decodeBasicCredential(text, user, password)) {
        if (user.empty() || user.find(':') != std::string::npos) std::abort();
    }
    return 0;
}
