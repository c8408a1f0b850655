// A caching allocator: freed blocks are kept by size and handed out again, so that buffers
// allocated and freed inside ops (scratch space) do not call the raw allocator each time. On the
// GPU this matters: cudaFree synchronises the device. Reuse is safe on one stream: work that used
// a block was queued before any work that uses it again.
#pragma once

#include <cstddef>
#include <functional>
#include <map>
#include <mutex>
#include <vector>

namespace am {

class CachingAllocator {
 public:
  using RawAlloc = std::function<void*(size_t)>;
  using RawFree = std::function<void(void*)>;
  CachingAllocator(RawAlloc raw_alloc, RawFree raw_free) : alloc_(std::move(raw_alloc)), free_(std::move(raw_free)) {}
  ~CachingAllocator() { empty_cache(); }
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  // Sizes are rounded up to a multiple of kGranule; a cached block of that size is reused.
  static constexpr size_t kGranule = 512;
  static size_t rounded(size_t bytes) { return (std::max<size_t>(bytes, 1) + kGranule - 1) / kGranule * kGranule; }

  void* allocate(size_t bytes) {
    const size_t size = rounded(bytes);
    {
      std::lock_guard<std::mutex> lock(mu_);
      auto it = free_blocks_.find(size);
      if (it != free_blocks_.end() && !it->second.empty()) {
        void* p = it->second.back();
        it->second.pop_back();
        cached_ -= size;
        return p;
      }
    }
    void* p = alloc_(size);
    if (!p) {  // out of memory: give the cache back and try once more
      empty_cache();
      p = alloc_(size);
    }
    return p;
  }
  void release(void* p, size_t bytes) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu_);
    free_blocks_[rounded(bytes)].push_back(p);
    cached_ += rounded(bytes);
  }
  // Returns every cached block to the raw allocator.
  void empty_cache() {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& [size, blocks] : free_blocks_) {
      for (void* p : blocks) free_(p);
    }
    free_blocks_.clear();
    cached_ = 0;
  }
  size_t cached_bytes() const { return cached_; }

 private:
  RawAlloc alloc_;
  RawFree free_;
  std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_blocks_;
  size_t cached_ = 0;
};

}  // namespace am
