// The supervisor's side of `status --tunnels` (supervisor/tunnel_listing.h) over a real control
// socket on a real loop, with the workers played by the test: chunks are asked for one at a time
// and only while the client takes them; a worker of an earlier build, one that does not answer and
// one still starting are named as not listed; a client that leaves ends the listing; at most
// kMaxListings run at once.
#include "supervisor/tunnel_listing.h"

#include <event2/event.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <jansson.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>

#include "test/support/test_files.h"

namespace relaypro {
namespace {

class NullLog : public LogOutput {
public:
    void write(const LogRecord&) override {}
};

struct Asked {
    pid_t pid;
    ipc::TunnelListRequest request;
};

class TunnelListingTest : public ::testing::Test {
protected:
    void SetUp() override {
        base_ = event_base_new();
        listings_ = std::make_unique<TunnelListings>(base_, [this](pid_t pid, const ipc::TunnelListRequest& r) {
            asked_.push_back({pid, r});
            return pid != kGone;
        });
        auto control = ControlSocket::open(
            base_, path_, log_,
            [this](const std::string&, json_t*, ControlSocket::Respond respond) {
                EXPECT_TRUE(listings_->start(workers_, respond.stream()));
            },
            [](pid_t) { return false; });
        ASSERT_TRUE(control.ok()) << control.error().message;
        control_ = std::move(*control);
    }
    void TearDown() override {
        if (client_ >= 0) ::close(client_);
        control_.reset();
        listings_.reset();
        event_base_free(base_);
    }
    // A client that asks and then reads only when told to.
    void connectClient() {
        client_ = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, path_.c_str(), sizeof a.sun_path - 1);
        ASSERT_EQ(::connect(client_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
        ASSERT_EQ(::send(client_, "{\"command\":\"tunnels\"}\n", 22, 0), 22);
    }
    void spin(int turns = 50) {
        for (int i = 0; i < turns; ++i) event_base_loop(base_, EVLOOP_NONBLOCK);
    }
    // Runs the loop until `ready` or 10 s.
    template <typename F>
    bool until(F ready) {
        auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        while (!ready() && std::chrono::steady_clock::now() < end) {
            event_base_loop(base_, EVLOOP_NONBLOCK);
            ::usleep(200);
        }
        return ready();
    }
    // What the client can read now; sets closed_ at the end of the stream.
    void drain() {
        char buf[65536];
        for (;;) {
            ssize_t n = ::recv(client_, buf, sizeof buf, 0);
            if (n > 0) {
                received_.append(buf, static_cast<size_t>(n));
                continue;
            }
            if (n == 0) closed_ = true;
            return;
        }
    }
    static ipc::TunnelList chunk(const Asked& a, size_t rows, bool done) {
        ipc::TunnelList list{a.request.requestId, a.request.after, a.request.after + rows + 1, done, {}};
        ipc::TunnelRow row;
        row.auth = ipc::TunnelRow::Auth::Bearer;
        row.identity = std::string(200, 'r');
        row.source = "127.0.0.1:40000";
        row.targetPort = 443;
        list.rows.assign(rows, row);
        return list;
    }
    [[nodiscard]] size_t lines() const {
        return static_cast<size_t>(std::count(received_.begin(), received_.end(), '\n'));
    }
    json_t* lastLine() const {
        size_t end = received_.rfind('\n');
        size_t start = received_.rfind('\n', end - 1);
        start = start == std::string::npos ? 0 : start + 1;
        json_error_t err;
        return json_loadb(received_.data() + start, end - start, 0, &err);
    }

    static constexpr pid_t kGone = 999;
    testing::TempDir dir_;
    std::string path_ = (dir_ / "control.sock").string();
    event_base* base_ = nullptr;
    NullLog sink_;
    Logger log_{&sink_, "supervisor"};
    std::unique_ptr<TunnelListings> listings_;
    std::unique_ptr<ControlSocket> control_;
    std::vector<WorkerView> workers_;
    std::vector<Asked> asked_;
    int client_ = -1;
    std::string received_;
    bool closed_ = false;
};

TEST_F(TunnelListingTest, ChunksAreAskedForOnlyWhileTheClientTakesThem) {
    RELAYPRO_SKIP_UNDER_QEMU();
    workers_ = {
        {101, 1, "draining", 0, 0}, {102, 2, "serving", 0, 0}, {103, 2, "starting", 0, 0}, {kGone, 2, "serving", 0, 0}};
    connectClient();
    ASSERT_TRUE(until([&] { return asked_.size() == 1; }));
    EXPECT_EQ(asked_[0].pid, 101);
    EXPECT_EQ(asked_[0].request.after, 0U);
    EXPECT_EQ(asked_[0].request.maxRows, TunnelListings::kRowsPerChunk);
    // The client reads nothing: after the socket's buffer and one chunk, no more is asked for.
    size_t answered = 0;
    while (answered < 200 && asked_.size() == answered + 1) {
        ipc::TunnelList more = chunk(asked_.back(), 200, false);
        listings_->answered(101, &more);
        ++answered;
        spin();
    }
    ASSERT_LT(answered, 200U) << "it kept asking although the client took nothing";
    EXPECT_EQ(asked_.size(), answered);
    EXPECT_EQ(asked_.back().request.after, asked_[asked_.size() - 2].request.after + 201);
    // An answer to another request, or from another worker, is not taken for it.
    ipc::TunnelList stale = chunk(asked_.back(), 1, true);
    stale.requestId ^= 1;
    listings_->answered(101, &stale);
    listings_->answered(102, nullptr);
    spin();
    EXPECT_EQ(asked_.size(), answered);
    // The client reads: the listing goes on.
    ASSERT_TRUE(until([&] {
        drain();
        return asked_.size() > answered;
    }));
    ipc::TunnelList last = chunk(asked_.back(), 1, true);
    listings_->answered(101, &last);
    ASSERT_TRUE(until([&] {
        drain();
        return asked_.back().pid == 102;
    }));
    listings_->answered(102, nullptr);  // an earlier build: Unknown
    ASSERT_TRUE(until([&] {
        drain();
        return closed_;
    }));
    // 103 is starting and kGone cannot be asked: the listing ended without waiting for them.
    EXPECT_EQ(asked_.back().pid, kGone);
    EXPECT_EQ(lines(), answered * 200 + 1 + 1);
    json_t* end = lastLine();
    ASSERT_NE(end, nullptr);
    EXPECT_TRUE(json_is_true(json_object_get(end, "end")));
    EXPECT_EQ(json_integer_value(json_object_get(end, "tunnels")), static_cast<json_int_t>(answered * 200 + 1));
    json_t* w = json_object_get(end, "workers");
    ASSERT_EQ(json_array_size(w), 4U);
    EXPECT_TRUE(json_is_true(json_object_get(json_array_get(w, 0), "listed")));
    EXPECT_STREQ(json_string_value(json_object_get(json_array_get(w, 1), "reason")),
                 "does not list tunnels (an earlier build)");
    EXPECT_STREQ(json_string_value(json_object_get(json_array_get(w, 2), "reason")), "starting");
    EXPECT_STREQ(json_string_value(json_object_get(json_array_get(w, 3), "reason")), "ended or cannot be reached");
    json_decref(end);
    EXPECT_EQ(listings_->running(), 0U);
}

// Workers are asked one after the other, and each measures its tunnels' ages when it answers:
// the lines give every age as of the listing's start, so that `--sort age` compares like with
// like. (CI saw a tunnel opened later listed as older: its worker was asked later.)
TEST_F(TunnelListingTest, AgesFromWorkersAskedLaterAreTakenBackToTheListingsStart) {
    RELAYPRO_SKIP_UNDER_QEMU();
    workers_ = {{101, 1, "draining", 0, 0}, {102, 2, "serving", 0, 0}};
    const auto before = std::chrono::steady_clock::now();
    connectClient();
    ASSERT_TRUE(until([&] { return asked_.size() == 1; }));
    ipc::TunnelList first = chunk(asked_[0], 1, true);
    first.rows[0].ageMs = 5000;
    listings_->answered(101, &first);
    ASSERT_TRUE(until([&] { return asked_.size() == 2; }));
    const auto held = std::chrono::milliseconds(300);
    ::usleep(static_cast<useconds_t>(std::chrono::microseconds(held).count()));
    ipc::TunnelList second = chunk(asked_[1], 2, true);
    second.rows[0].ageMs = 5000;
    second.rows[1].ageMs = 100;  // opened after the listing started
    listings_->answered(102, &second);
    const auto bound = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - before);
    ASSERT_TRUE(until([&] {
        drain();
        return closed_;
    }));
    std::vector<json_int_t> ages;
    for (size_t at = 0, nl; (nl = received_.find('\n', at)) != std::string::npos; at = nl + 1) {
        json_error_t err;
        json_t* line = json_loadb(received_.data() + at, nl - at, 0, &err);
        ASSERT_NE(line, nullptr) << received_;
        if (json_t* age = json_object_get(line, "ageMs")) ages.push_back(json_integer_value(age));
        json_decref(line);
    }
    ASSERT_EQ(ages.size(), 3U) << received_;
    EXPECT_LE(ages[0], 5000);
    EXPECT_GE(ages[0], 5000 - bound.count());
    EXPECT_LE(ages[1], 5000 - held.count()) << "the second worker's age is not taken back";
    EXPECT_GE(ages[1], 5000 - bound.count());
    EXPECT_LT(ages[1], ages[0]);
    EXPECT_EQ(ages[2], 0);
}

TEST_F(TunnelListingTest, AWorkerThatDoesNotAnswerIsSkippedAfterFiveSeconds) {
    RELAYPRO_SKIP_UNDER_QEMU();
    workers_ = {{101, 1, "serving", 0, 0}, {102, 1, "serving", 0, 0}};
    connectClient();
    ASSERT_TRUE(until([&] { return asked_.size() == 1; }));
    auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(until([&] { return asked_.size() == 2; }));
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(4900));
    ipc::TunnelList late = chunk(asked_[0], 1, true);
    listings_->answered(101, &late);  // too late: ignored
    ipc::TunnelList done = chunk(asked_[1], 2, true);
    listings_->answered(102, &done);
    ASSERT_TRUE(until([&] {
        drain();
        return closed_;
    }));
    EXPECT_EQ(lines(), 3U);
    json_t* end = lastLine();
    EXPECT_STREQ(json_string_value(json_object_get(json_array_get(json_object_get(end, "workers"), 0), "reason")),
                 "did not answer within 5 s");
    json_decref(end);
}

TEST_F(TunnelListingTest, AClientThatLeavesEndsItsListingAndAtMostFourRunAtOnce) {
    RELAYPRO_SKIP_UNDER_QEMU();
    workers_ = {{101, 1, "serving", 0, 0}};
    connectClient();
    ASSERT_TRUE(until([&] { return asked_.size() == 1; }));
    EXPECT_EQ(listings_->running(), 1U);
    ::close(client_);
    client_ = -1;
    ASSERT_TRUE(until([&] { return listings_->running() == 0; }));
    ipc::TunnelList late = chunk(asked_[0], 1, true);
    listings_->answered(101, &late);  // nobody waits for it
    spin();
    EXPECT_EQ(asked_.size(), 1U);

    for (size_t i = 0; i < TunnelListings::kMaxListings; ++i) {
        EXPECT_TRUE(listings_->start(workers_, std::make_shared<ControlSocket::Stream>()));
    }
    EXPECT_FALSE(listings_->start(workers_, std::make_shared<ControlSocket::Stream>()));
    EXPECT_EQ(listings_->running(), TunnelListings::kMaxListings);
}

}  // namespace
}  // namespace relaypro
