// The worker's event loop (Server::newEventBase): a TLS connection's first flight waits at a lower
// priority than everything else, and a run of first flights hands the loop back every
// Server::kNewHandshakeSlice, so that what became due meanwhile (a handshake's next step, a
// tunnel's bytes) runs before the next ClientHello (issue 19: overload).
#include <event2/event.h>
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "worker/server.h"

namespace relaypro {
namespace {

using Clock = std::chrono::steady_clock;

struct Order {
    event_base* base = nullptr;
    event* normal = nullptr;  // made due by the first slow callback
    std::string order;
};

// A first flight's work: longer than the slice.
void onSlow(int, short, void* arg) {
    auto* run = static_cast<Order*>(arg);
    run->order += 'h';
    const auto until = Clock::now() + Server::kNewHandshakeSlice + std::chrono::milliseconds(2);
    while (Clock::now() < until) {
    }
    if (run->order.size() == 1) event_active(run->normal, EV_READ, 0);
}

void onNormal(int, short, void* arg) {
    static_cast<Order*>(arg)->order += 'n';
}

TEST(EventPriority, WorkDueDuringAFirstFlightRunsBeforeTheNextOne) {
    Order run;
    run.base = Server::newEventBase();
    ASSERT_NE(run.base, nullptr);
    EXPECT_EQ(event_base_get_npriorities(run.base), Server::kPriorities);
    run.normal = event_new(run.base, -1, 0, &onNormal, &run);
    ASSERT_EQ(event_get_priority(run.normal), Server::kPriorityNormal) << "libevent's default is the normal one";
    event* slow[3];
    for (auto*& e : slow) {
        e = event_new(run.base, -1, 0, &onSlow, &run);
        ASSERT_EQ(event_priority_set(e, Server::kPriorityNewHandshake), 0);
        event_active(e, EV_READ, 0);
    }
    event_base_loop(run.base, EVLOOP_NONBLOCK);  // until nothing is due
    // Without the slice, libevent would run the three first flights and then the normal event.
    EXPECT_EQ(run.order, "hnhh");
    for (auto* e : slow) event_free(e);
    event_free(run.normal);
    event_base_free(run.base);
}

TEST(EventPriority, ANormalEventDueTogetherWithFirstFlightsRunsFirst) {
    Order run;
    run.base = Server::newEventBase();
    ASSERT_NE(run.base, nullptr);
    event* slow = event_new(run.base, -1, 0, &onSlow, &run);
    ASSERT_EQ(event_priority_set(slow, Server::kPriorityNewHandshake), 0);
    run.normal = event_new(run.base, -1, 0, &onNormal, &run);
    event_active(slow, EV_READ, 0);
    event_active(run.normal, EV_READ, 0);
    event_base_loop(run.base, EVLOOP_NONBLOCK);
    EXPECT_EQ(run.order, "nh");
    event_free(slow);
    event_free(run.normal);
    event_base_free(run.base);
}

}  // namespace
}  // namespace relaypro
