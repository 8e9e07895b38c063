#include "supervisor/status_tunnels.h"

#include <gtest/gtest.h>

#include <algorithm>

#include "supervisor/cli.h"
#include "supervisor/tunnel_listing.h"

namespace relaypro {
namespace {

TunnelEntry entry(uint64_t order, uint64_t ageMs, uint64_t up, uint64_t down) {
    TunnelEntry e;
    e.responder = "resp-" + std::to_string(order);
    e.source = "127.0.0.1:" + std::to_string(40000 + order);
    e.targetPort = 443;
    e.workerPid = 4250;
    e.generation = 1;
    e.workerState = "serving";
    e.ageMs = ageMs;
    e.bytesUp = up;
    e.bytesDown = down;
    e.order = order;
    return e;
}

std::vector<uint64_t> orders(TunnelCollector& c) {
    std::vector<uint64_t> out;
    for (const auto& e : c.take()) out.push_back(e.order);
    return out;
}

TEST(StatusTunnels, SortsByAgeOrBytesAndKeepsTheBestN) {
    // order, age, up, down
    const std::vector<TunnelEntry> rows{entry(0, 500, 10, 10), entry(1, 9000, 0, 1), entry(2, 500, 5000, 0),
                                        entry(3, 7000, UINT64_MAX, 5), entry(4, 100, 30, 30)};
    TunnelOptions byAge{TunnelSort::Age, std::nullopt, false};
    TunnelCollector all(byAge);
    for (const auto& r : rows) ASSERT_TRUE(all.add(r));
    EXPECT_EQ(orders(all), (std::vector<uint64_t>{1, 3, 0, 2, 4}));  // oldest first; ties in listing order

    TunnelOptions topAge{TunnelSort::Age, 2, false};
    TunnelCollector two(topAge);
    for (const auto& r : rows) two.add(r);
    EXPECT_EQ(orders(two), (std::vector<uint64_t>{1, 3}));

    TunnelOptions topBytes{TunnelSort::Bytes, 3, false};
    TunnelCollector bytes(topBytes);
    for (const auto& r : rows) bytes.add(r);
    EXPECT_EQ(orders(bytes), (std::vector<uint64_t>{3, 2, 4}));  // a saturated sum does not wrap

    TunnelOptions one{TunnelSort::Bytes, 1, false};
    TunnelCollector first(one);
    first.add(entry(0, 1, 7, 0));
    first.add(entry(1, 1, 7, 0));  // a tie keeps the earlier one
    EXPECT_EQ(orders(first), (std::vector<uint64_t>{0}));
    EXPECT_FALSE(TunnelCollector(byAge).streams());
    EXPECT_TRUE(TunnelCollector(TunnelOptions{}).streams());
}

TEST(StatusTunnels, FormatsAgesAndEscapesWhatTheServiceSays) {
    EXPECT_EQ(formatAge(0), "0s");
    EXPECT_EQ(formatAge(59999), "59s");
    EXPECT_EQ(formatAge(61000), "1m01s");
    EXPECT_EQ(formatAge(3723000), "1h02m03s");
    EXPECT_EQ(formatAge((3 * 86400 + 4 * 3600 + 5 * 60 + 6) * 1000ULL), "3d04h05m06s");
    EXPECT_EQ(terminalSafe("resp-A ünï"), "resp-A ünï");
    EXPECT_EQ(terminalSafe("a\x1b]0;owned\x07"), "a\\x1b]0;owned\\x07");
    EXPECT_EQ(terminalSafe("\xc2\x9b"
                           "2J"),
              "\\xc2\\x9b2J");
    EXPECT_EQ(terminalSafe("\xff\\"), "\\xff\\x5c");
    EXPECT_EQ(terminalSafe("\r\n\x7f"), "\\x0d\\x0a\\x7f");
    // Bidirectional overrides and zero-width characters cannot reorder or hide columns (review).
    EXPECT_EQ(terminalSafe("a\u202eb\u2066c\u200bd"), "a\\xe2\\x80\\xaeb\\xe2\\x81\\xa6c\\xe2\\x80\\x8bd");

    TunnelEntry e = entry(0, 3723000, 12, 34);
    e.responder = "evil\x1b[2J";
    std::string line = tunnelTableLine(e);
    EXPECT_EQ(line.find('\x1b'), std::string::npos) << line;
    EXPECT_NE(line.find("evil\\x1b[2J"), std::string::npos) << line;
    EXPECT_NE(line.find("1h02m03s"), std::string::npos) << line;
    EXPECT_EQ(line.back(), '\n');
    EXPECT_EQ(std::count(line.begin(), line.end(), '\n'), 1);
    e.responder.clear();
    EXPECT_EQ(tunnelTableLine(e).rfind("- ", 0), 0U) << "no identity is a dash";
    e.responder = std::string(256, '\x01');  // escaped four times as long: not cut
    EXPECT_NE(tunnelTableLine(e).find("34\n"), std::string::npos);
    EXPECT_EQ(tunnelTableHeader().rfind("RESPONDER", 0), 0U);
}

TEST(StatusTunnels, RowsAreReadBackExactlyAndMalformedOnesRefused) {
    ipc::TunnelRow row;
    row.auth = ipc::TunnelRow::Auth::Basic;
    row.identity = "alice";
    row.source = "[::1]:5000";
    row.targetPort = 8443;
    row.ageMs = 1500;
    row.bytesUp = 3;
    row.bytesDown = 4;
    json_t* j = TunnelListings::rowJson(row, WorkerView{4251, 2, "draining", 0, 0});
    auto e = tunnelEntryFromJson(j);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->responder, "basic:alice");
    EXPECT_EQ(e->source, "[::1]:5000");
    EXPECT_EQ(e->targetPort, 8443);
    EXPECT_EQ(e->workerPid, 4251);
    EXPECT_EQ(e->generation, 2);
    EXPECT_EQ(e->workerState, "draining");
    EXPECT_EQ(e->ageMs, 1500U);
    EXPECT_EQ(e->bytesUp, 3U);
    EXPECT_EQ(e->bytesDown, 4U);
    json_t* back = tunnelEntryToJson(*e);
    EXPECT_TRUE(json_equal(j, back));
    json_decref(back);
    // Given as of the listing's start: taken back by the time the listing has run, never below 0.
    for (auto [since, age] : {std::pair<uint64_t, json_int_t>{500, 1000}, {1500, 0}, {9000, 0}}) {
        json_t* later = TunnelListings::rowJson(row, WorkerView{4251, 2, "draining", 0, 0}, since);
        EXPECT_EQ(json_integer_value(json_object_get(later, "ageMs")), age) << since;
        json_decref(later);
    }
    row.auth = ipc::TunnelRow::Auth::None;
    json_t* anonymous = TunnelListings::rowJson(row, WorkerView{4251, 2, "serving", 0, 0});
    EXPECT_TRUE(json_is_null(json_object_get(anonymous, "responder")));
    EXPECT_EQ(tunnelEntryFromJson(anonymous)->responder, "");
    json_decref(anonymous);
    for (const char* key : {"source", "targetPort", "workerPid", "generation", "workerState", "ageMs", "bytesUp"}) {
        json_t* copy = json_deep_copy(j);
        json_object_del(copy, key);
        EXPECT_FALSE(tunnelEntryFromJson(copy).has_value()) << key;
        json_object_set_new(copy, key, json_integer(-1));
        EXPECT_FALSE(tunnelEntryFromJson(copy).has_value()) << key;
        json_decref(copy);
    }
    json_object_set_new(j, "targetPort", json_integer(65536));
    EXPECT_FALSE(tunnelEntryFromJson(j).has_value());
    json_decref(j);
}

TEST(StatusTunnels, TheFlagsAndTheirUsageErrors) {
    auto p = parseCommandLine({"status", "--tunnels", "--sort", "bytes", "--limit=10", "--json"});
    ASSERT_TRUE(p.command.has_value()) << p.error;
    EXPECT_TRUE(p.command->tunnels);
    EXPECT_EQ(p.command->sort, "bytes");
    EXPECT_EQ(p.command->limit, 10U);
    EXPECT_TRUE(p.command->json);
    EXPECT_FALSE(parseCommandLine({"status"}).command->tunnels);
    auto error = [](std::vector<std::string> args) {
        auto q = parseCommandLine(args);
        EXPECT_FALSE(q.command.has_value());
        return q.error;
    };
    EXPECT_EQ(error({"status", "--tunnels", "--sort", "name"}), "--sort needs age or bytes, not \"name\"");
    EXPECT_EQ(error({"status", "--tunnels", "--sort"}), "--sort needs a value");
    EXPECT_EQ(error({"status", "--tunnels", "--limit", "0"}),
              "--limit needs a number of rows (1 to 1000000), not \"0\"");
    EXPECT_EQ(error({"status", "--tunnels", "--limit", "-1"}),
              "--limit needs a number of rows (1 to 1000000), not \"-1\"");
    EXPECT_EQ(error({"status", "--tunnels", "--limit", "1000001"}),
              "--limit needs a number of rows (1 to 1000000), not \"1000001\"");
    EXPECT_EQ(error({"status", "--tunnels", "--limit", "5x"}),
              "--limit needs a number of rows (1 to 1000000), not \"5x\"");
    EXPECT_EQ(error({"status", "--sort", "age"}), "--sort and --limit go with --tunnels");
    EXPECT_EQ(error({"status", "--limit", "3"}), "--sort and --limit go with --tunnels");
    EXPECT_EQ(error({"status", "--tunnels=yes"}), "--tunnels takes no value");
    EXPECT_EQ(error({"upgrade", "--tunnels"}), "unknown option \"--tunnels\" for upgrade");
}

}  // namespace
}  // namespace relaypro
