#include "supervisor/control_socket.h"

#include <event2/event.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <thread>

#include "test/support/test_files.h"

namespace relaypro {
namespace {

class Sink : public LogOutput {
public:
    void write(const LogRecord& r) override { records.push_back(r); }
    std::vector<LogRecord> records;
};

// Runs the loop on this thread while `client` runs on another.
std::string exchange(event_base* base, const std::string& path, const std::string& request) {
    Result<std::string> answer = Error{"not run"};
    bool done = false;
    std::thread t([&] {
        answer = controlRequest(path, request, 5);
        done = true;
    });
    for (int i = 0; i < 5000 && !done; ++i) {
        event_base_loop(base, EVLOOP_NONBLOCK);
        ::usleep(1000);
    }
    t.join();
    return answer.ok() ? *answer : "ERROR: " + answer.error().message;
}

TEST(ControlSocket, AnswersAllowedPeersRefusesWorkersAndMalformedRequests) {
    RELAYPRO_SKIP_UNDER_QEMU();  // its client runs on a thread
    testing::TempDir dir;
    std::string path = (dir / "control.sock").string();
    event_base* base = event_base_new();
    Sink sink;
    Logger log(&sink, "supervisor");
    pid_t forbidden = -1;
    auto control = ControlSocket::open(
        base, path, log,
        [](const std::string& command, json_t*, ControlSocket::Respond respond) {
            respond(command == "status" ? json_pack("{s:s}", "state", "serving")
                                        : json_pack("{s:s}", "error", "unknown command"));
        },
        [&](pid_t pid) { return pid == forbidden; });
    ASSERT_TRUE(control.ok()) << control.error().message;
    struct stat st {};
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u);

    EXPECT_EQ(exchange(base, path, R"({"command":"status"})"), R"({"state":"serving"})");
    EXPECT_EQ(exchange(base, path, R"({"command":"reboot"})"), R"({"error":"unknown command"})");
    EXPECT_EQ(exchange(base, path, "not json"), R"({"error":"malformed request"})");
    EXPECT_EQ(exchange(base, path, R"({"no":"command"})"), R"({"error":"malformed request"})");
    // A peer whose pid is a worker's gets nothing at all.
    forbidden = ::getpid();
    EXPECT_EQ(exchange(base, path, R"({"command":"status"})"),
              "ERROR: the service closed the control connection without an answer");
    bool refused = false;
    for (const auto& r : sink.records) refused = refused || r.msg == "control socket peer refused";
    EXPECT_TRUE(refused);
    control->reset();
    EXPECT_NE(::access(path.c_str(), F_OK), 0);  // the socket file goes with it
    event_base_free(base);
}

// An upgrade gives the waiting client's connection to the next supervisor image, which answers
// on it with answerOn().
TEST(ControlSocket, AReleasedConnectionIsAnsweredFromItsDescriptor) {
    RELAYPRO_SKIP_UNDER_QEMU();  // its client runs on a thread
    testing::TempDir dir;
    std::string path = (dir / "control.sock").string();
    event_base* base = event_base_new();
    Sink sink;
    Logger log(&sink, "supervisor");
    int released = -1;
    auto control = ControlSocket::open(
        base, path, log,
        [&](const std::string&, json_t*, ControlSocket::Respond respond) {
            released = respond.release();
            EXPECT_FALSE(respond) << "empty once released";
            respond(json_pack("{s:s}", "ignored", "yes"));  // an empty Respond drops its answer
            ControlSocket::answerOn(released, json_pack("{s:b,s:I}", "ok", 1, "generation", 2));
        },
        [](pid_t) { return false; });
    ASSERT_TRUE(control.ok()) << control.error().message;
    EXPECT_EQ(exchange(base, path, R"({"command":"upgrade"})"), R"({"ok":true,"generation":2})");
    EXPECT_GE(released, 0);
    EXPECT_EQ(::fcntl(released, F_GETFD), -1) << "closed by answerOn";
    control->reset();
    event_base_free(base);
}

TEST(ControlSocket, RefusesToReplaceSomethingThatIsNotItsSocket) {
    testing::TempDir dir;
    std::string path = (dir / "control.sock").string();
    testing::writeText(path, "a regular file");
    event_base* base = event_base_new();
    Sink sink;
    Logger log(&sink, "supervisor");
    auto control = ControlSocket::open(
        base, path, log, [](const std::string&, json_t*, ControlSocket::Respond) {}, [](pid_t) { return false; });
    EXPECT_FALSE(control.ok());
    event_base_free(base);
}

}  // namespace
}  // namespace relaypro
