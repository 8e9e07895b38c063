// 1 GiB through one tunnel in each direction arrives intact (SHA-256), and while the receiver
// reads slowly the relay's memory stays bounded (back-pressure, not buffering).
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <sodium.h>

#include <cstring>
#include <thread>

#include "test/support/net.h"
#include "test/support/relay.h"
#include "test/support/secrets.h"
#include "test/support/test_files.h"

namespace relaypro::testing {
namespace {

using namespace std::chrono_literals;

constexpr size_t kBlock = 1 << 20;
constexpr size_t kBlocks = 1024;  // 1 GiB

// Block i: a fixed random MiB with its index in the first 8 bytes, so order matters to the hash.
class Blocks {
public:
    Blocks() : data_(kBlock, '\0') {
        unsigned char seed[randombytes_SEEDBYTES] = {42};
        randombytes_buf_deterministic(data_.data(), data_.size(), seed);
    }
    std::string_view block(uint64_t i) {
        std::memcpy(data_.data(), &i, sizeof i);
        return data_;
    }

private:
    std::string data_;
};

class Sha256 {
public:
    Sha256() : ctx_(EVP_MD_CTX_new()) { EVP_DigestInit_ex(ctx_, EVP_sha256(), nullptr); }
    ~Sha256() { EVP_MD_CTX_free(ctx_); }
    void update(std::string_view d) { EVP_DigestUpdate(ctx_, d.data(), d.size()); }
    std::string hex() {
        unsigned char md[32];
        unsigned len = 0;
        EVP_DigestFinal_ex(ctx_, md, &len);
        char out[65];
        for (unsigned i = 0; i < 32; ++i) std::snprintf(out + 2 * i, 3, "%02x", md[i]);
        return out;
    }

private:
    EVP_MD_CTX* ctx_;
};

class TunnelBulk : public ::testing::Test {
protected:
    void SetUp() override {
        ASSERT_GE(sodium_init(), 0);
        writeText(dir_ / "passwords.txt", kPasswordLine);
        writeText(dir_ / "hosts", "127.0.0.1 localhost\n");
    }
    std::unique_ptr<Relay> start(uint16_t port) {
        auto r = std::make_unique<Relay>(
            dir_,
            "consoleAddress: \"localhost:" + std::to_string(port) +
                "\"\norganizationId: 1\nhttpsProxy:\n  listen: \"127.0.0.1:0\"\npasswordFile: passwords.txt\n",
            std::map<std::string, std::string>{{"RELAYPRO_HOSTS_FILE", (dir_ / "hosts").string()}});
        EXPECT_TRUE(r->ready()) << r->stderrText();
        return r;
    }
    void open(Client& c, const Relay& r, uint16_t port) {
        ASSERT_TRUE(c.connect("127.0.0.1", r.httpsPort(), true));
        ASSERT_TRUE(c.send("CONNECT localhost:" + std::to_string(port) +
                           " HTTP/1.1\r\nProxy-Authorization: " + basicCredential() + "\r\n\r\n"));
        ASSERT_EQ(statusOf(c.readHead()), 200);
    }
    TempDir dir_;
};

TEST_F(TunnelBulk, OneGibUpstreamArrivesIntact) {
    // The upstream hashes what it receives and, at the end of the stream, answers with the hash.
    TestServer sink(false, [](int fd, SSL*) {
        Sha256 h;
        uint64_t total = 0;
        std::string buf(1 << 16, '\0');
        while (true) {
            ssize_t n = ::recv(fd, buf.data(), buf.size(), 0);
            if (n <= 0) break;
            h.update(std::string_view(buf.data(), static_cast<size_t>(n)));
            total += static_cast<uint64_t>(n);
        }
        writeAll(fd, nullptr, std::to_string(total) + " " + h.hex() + "\n");
    });
    auto relay = start(sink.port());
    Client c;
    open(c, *relay, sink.port());
    Blocks blocks;
    Sha256 sent;
    for (uint64_t i = 0; i < kBlocks; ++i) {
        auto b = blocks.block(i);
        sent.update(b);
        ASSERT_TRUE(c.send(b)) << "block " << i;
    }
    c.shutdownWrite();  // close_notify: the relay half-closes toward the upstream
    std::string answer = c.readAll(120s);
    EXPECT_EQ(answer, std::to_string(kBlock * kBlocks) + " " + sent.hex() + "\n");
    ASSERT_TRUE(relay->waitForLog("tunnel closed", {{"bytesUp", std::to_string(kBlock * kBlocks)}}));
}

TEST_F(TunnelBulk, OneGibDownstreamArrivesIntactWithBoundedMemoryForASlowReader) {
    TestServer source(false, [](int fd, SSL*) {
        Blocks blocks;
        for (uint64_t i = 0; i < kBlocks; ++i) {
            if (!writeAll(fd, nullptr, blocks.block(i))) return;
        }
    });
    auto relay = start(source.port());
    long baseline = relay->rssKiB();
    Client c;
    open(c, *relay, source.port());
    Sha256 got;
    uint64_t total = 0;
    long peak = 0;
    // Slow phase: a trickle for a second while the source pushes as fast as it can.
    auto slowUntil = std::chrono::steady_clock::now() + 1s;
    while (std::chrono::steady_clock::now() < slowUntil) {
        std::string part = c.recv(16384, 10s);
        ASSERT_FALSE(part.empty());
        got.update(part);
        total += part.size();
        peak = std::max(peak, relay->rssKiB());
        std::this_thread::sleep_for(10ms);
    }
    // Then read the rest at full speed.
    while (total < kBlock * kBlocks) {
        std::string part = c.recv(1 << 20, 60s);
        if (part.empty()) break;
        got.update(part);
        total += part.size();
    }
    EXPECT_EQ(total, kBlock * kBlocks);
    Blocks blocks;
    Sha256 want;
    for (uint64_t i = 0; i < kBlocks; ++i) want.update(blocks.block(i));
    EXPECT_EQ(got.hex(), want.hex());
    // Back-pressure holds the data in the sockets, not in the relay: a few MiB over baseline at
    // most (without it the relay would hold most of the GiB).
    EXPECT_LT(peak - baseline, 32 * 1024) << "baseline " << baseline << " KiB, peak " << peak << " KiB";
    std::printf("relay RSS: baseline %ld KiB, peak during slow read %ld KiB\n", baseline, peak);
}

}  // namespace
}  // namespace relaypro::testing
