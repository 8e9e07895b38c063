// The secrets integration tests use: passwords, Responder credentials, deployment and security
// tokens, issued Bearer tokens. Each is distinctive, so finding one in what a relay wrote means
// it leaked: every Relay checks its log, stdout and stderr for all of them when it is destroyed
// (issue 9: no secret in a log line of any suite).
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace relaypro::testing {

inline const std::string kPassword = "pw-K7q2xZ9m";
inline const std::string kUserPass = "u:" + kPassword;
inline const std::string kPasswordLine = kUserPass + "\n";  // a password file with user "u"
// "basic:u:<password>" for the load generator's --auth.
inline const std::string kLoadgenBasic = "basic:" + kUserPass;

// "Basic <base64(u:password)>", the Proxy-Authorization value for user "u".
std::string basicCredential();

// Adds a secret this test used (an issued token, a generated credential) to the checked set.
void noteSecret(const std::string& secret);

// The checked secrets that appear in `text` (none: empty).
std::vector<std::string> secretsIn(std::string_view text);

}  // namespace relaypro::testing
