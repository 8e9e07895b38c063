// Bounded binary reading and writing for IPC messages (OpenSSH sshbuf-style): fixed-width
// little-endian integers and length-prefixed byte strings. A Reader fails — and stays failed —
// on any short read or over-long string, and `finish()` fails on extra bytes, so a decoder built
// from it accepts exactly one encoding of each message.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace relaypro::ipc {

class Writer {
public:
    void u8(uint8_t v) { out_.push_back(static_cast<char>(v)); }
    void u16(uint16_t v) { le(v, 2); }
    void u32(uint32_t v) { le(v, 4); }
    void u64(uint64_t v) { le(v, 8); }
    void i64(int64_t v) { le(static_cast<uint64_t>(v), 8); }
    void boolean(bool v) { u8(v ? 1 : 0); }
    void bytes(std::string_view s) {
        u32(static_cast<uint32_t>(s.size()));
        out_.append(s);
    }
    [[nodiscard]] const std::string& data() const { return out_; }
    std::string take() { return std::move(out_); }
    [[nodiscard]] size_t size() const { return out_.size(); }

private:
    void le(uint64_t v, int n) {
        for (int i = 0; i < n; ++i) out_.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
    }
    std::string out_;
};

class Reader {
public:
    explicit Reader(std::string_view data) : data_(data) {}

    uint8_t u8() { return static_cast<uint8_t>(le(1)); }
    uint16_t u16() { return static_cast<uint16_t>(le(2)); }
    uint32_t u32() { return static_cast<uint32_t>(le(4)); }
    uint64_t u64() { return le(8); }
    int64_t i64() { return static_cast<int64_t>(le(8)); }
    bool boolean() {
        uint8_t v = u8();
        if (v > 1) ok_ = false;
        return v == 1;
    }
    // A length-prefixed string of at most `max` bytes.
    std::string bytes(size_t max) {
        uint32_t n = u32();
        if (!ok_ || n > max || n > data_.size()) {
            ok_ = false;
            return {};
        }
        std::string s(data_.substr(0, n));
        data_.remove_prefix(n);
        return s;
    }
    // A count of following items, refused above `max` (before anything is allocated for them).
    uint32_t count(uint32_t max) {
        uint32_t n = u32();
        if (n > max) ok_ = false;
        return ok_ ? n : 0;
    }
    void fail() { ok_ = false; }
    [[nodiscard]] bool ok() const { return ok_; }
    // Everything was read, nothing is left over.
    [[nodiscard]] bool finish() const { return ok_ && data_.empty(); }

private:
    uint64_t le(size_t n) {
        if (!ok_ || data_.size() < n) {
            ok_ = false;
            return 0;
        }
        uint64_t v = 0;
        for (size_t i = 0; i < n; ++i) v |= static_cast<uint64_t>(static_cast<unsigned char>(data_[i])) << (8 * i);
        data_.remove_prefix(n);
        return v;
    }
    std::string_view data_;
    bool ok_ = true;
};

}  // namespace relaypro::ipc
