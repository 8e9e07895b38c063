// Fixed-size I/O buffers for tunnels, recycled: an idle tunnel holds none, a busy one at most
// one per direction, and the allocator is not asked on every burst.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace relaypro {

class BufferPool {
public:
    // Four TLS records: a bulk tunnel moves 64 KiB per send() (a quarter of the system calls and
    // of the peer's wake-ups of one record per send). Idle tunnels hold none.
    static constexpr size_t kBufferSize = 64 * 1024;
    explicit BufferPool(size_t keepFree = 64) : keepFree_(keepFree) {}
    ~BufferPool() {
        for (char* b : free_) delete[] b;
    }
    BufferPool(const BufferPool&) = delete;
    BufferPool& operator=(const BufferPool&) = delete;

    char* get() {
        ++inUse_;
        if (free_.empty()) return new char[kBufferSize];
        char* b = free_.back();
        free_.pop_back();
        return b;
    }
    void put(char* b) {
        if (b == nullptr) return;
        --inUse_;
        if (free_.size() < keepFree_) {
            free_.push_back(b);
        } else {
            delete[] b;
        }
    }
    [[nodiscard]] size_t inUse() const { return inUse_; }

private:
    std::vector<char*> free_;
    size_t keepFree_;
    size_t inUse_ = 0;
};

}  // namespace relaypro
