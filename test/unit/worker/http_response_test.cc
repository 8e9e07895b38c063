// Every status the worker can put on a status line has its RFC 9110 reason phrase (protocol.md:
// Go reports a refused CONNECT by the phrase alone). The statuses are found in the worker's own
// sources, so a new one cannot slip past the table (issue 18: the token endpoint's 401 went out
// as "401 Unknown").
#include "worker/http_response.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

namespace relaypro {
namespace {

// RFC 9110 section 15, the phrases of every status a relay could plausibly send.
const std::map<int, std::string>& rfc9110() {
    static const std::map<int, std::string> table{
        {200, "OK"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {407, "Proxy Authentication Required"},
        {408, "Request Timeout"},
        {429, "Too Many Requests"},                // RFC 6585
        {431, "Request Header Fields Too Large"},  // RFC 6585
        {500, "Internal Server Error"},
        {502, "Bad Gateway"},
        {503, "Service Unavailable"},
        {504, "Gateway Timeout"},
        {505, "HTTP Version Not Supported"},
    };
    return table;
}

// The status codes written in worker/*.cc where a status is chosen: the first argument of the
// calls that refuse or answer (errorResponse, refuse, refuseWithRetry, fail, invalid, error), and
// every number in an assignment to a `status`.
std::set<int> statusesInWorkerSources() {
    const std::regex call(R"(\b(?:errorResponse|refuse|refuseWithRetry|fail|invalid|error)\(\s*([1-5][0-9][0-9])\s*,)");
    const std::regex assignment(R"(\bstatus\s*=\s*([^;]*);)");
    const std::regex number(R"(\b([1-5][0-9][0-9])\b)");
    std::set<int> found;
    for (const auto& entry :
         std::filesystem::directory_iterator(std::filesystem::path(RELAYPRO_SOURCE_DIR) / "worker")) {
        if (entry.path().extension() != ".cc") continue;
        std::ifstream in(entry.path());
        std::stringstream text;
        text << in.rdbuf();
        const std::string s = text.str();
        for (std::sregex_iterator it(s.begin(), s.end(), call), end; it != end; ++it) found.insert(std::stoi((*it)[1]));
        for (std::sregex_iterator it(s.begin(), s.end(), assignment), end; it != end; ++it) {
            const std::string rhs = (*it)[1];
            for (std::sregex_iterator n(rhs.begin(), rhs.end(), number), e; n != e; ++n)
                found.insert(std::stoi((*n)[1]));
        }
    }
    return found;
}

TEST(HttpResponse, EveryStatusTheWorkerEmitsHasItsReasonPhrase) {
    std::set<int> statuses = statusesInWorkerSources();
    // The scan finds what protocol.md lists (else it proves nothing): the error table, the token
    // endpoint's 401, health's 200 and 503.
    for (int s : {200, 400, 401, 403, 404, 405, 407, 408, 429, 431, 502, 503, 504, 505}) {
        EXPECT_TRUE(statuses.contains(s)) << s << " is not found in worker/*.cc any more: update this test";
    }
    for (int s : statuses) {
        auto it = rfc9110().find(s);
        ASSERT_NE(it, rfc9110().end()) << "worker/*.cc emits " << s
                                       << ": add its RFC 9110 phrase here and to reasonPhrase";
        EXPECT_EQ(reasonPhrase(s), it->second) << s;
    }
}

TEST(HttpResponse, TheStatusLineCarriesThePhrase) {
    EXPECT_EQ(serialize(errorResponse(401, "invalid_credentials")).substr(0, 26), "HTTP/1.1 401 Unauthorized\r");
    EXPECT_EQ(reasonPhrase(499), "Unknown");  // no status of ours: the table has no entry
}

}  // namespace
}  // namespace relaypro
