#include "core/caching_allocator.h"

#include <catch2/catch.hpp>

#include <cstdlib>
#include <set>

using namespace am;

TEST_CASE("caching allocator reuses freed blocks of the same rounded size", "[core]") {
  int raw_allocs = 0, raw_frees = 0;
  std::set<void*> live;
  {
    CachingAllocator a(
        [&](size_t n) {
          ++raw_allocs;
          void* p = std::malloc(n);
          live.insert(p);
          return p;
        },
        [&](void* p) {
          ++raw_frees;
          live.erase(p);
          std::free(p);
        });
    void* p = a.allocate(1000);
    a.release(p, 1000);
    CHECK(a.cached_bytes() == 1024);
    void* q = a.allocate(1020);  // same 512-byte granule count: the cached block comes back
    CHECK(q == p);
    CHECK(raw_allocs == 1);
    CHECK(a.cached_bytes() == 0);
    void* r = a.allocate(5000);  // another size: a new raw allocation
    CHECK(r != q);
    CHECK(raw_allocs == 2);
    a.release(q, 1020);
    a.release(r, 5000);
    CHECK(raw_frees == 0);  // cached, not freed
    a.empty_cache();
    CHECK(raw_frees == 2);
    CHECK(live.empty());
    void* s = a.allocate(0);  // zero bytes still gives a usable, distinct block
    CHECK(s != nullptr);
    a.release(s, 0);
  }
  CHECK(live.empty());  // the destructor frees what is cached
}

TEST_CASE("caching allocator empties its cache and retries when the raw allocator fails", "[core]") {
  int budget = 2;  // the raw allocator can hold two blocks at a time
  CachingAllocator a([&](size_t n) -> void* { return budget > 0 ? (--budget, std::malloc(n)) : nullptr; },
                     [&](void* p) {
                       ++budget;
                       std::free(p);
                     });
  void* p = a.allocate(100);
  void* q = a.allocate(2000);
  a.release(p, 100);           // cached (512 bytes), still counted against the budget
  void* r = a.allocate(9000);  // fails once, frees the cache, succeeds
  CHECK(r != nullptr);
  a.release(q, 2000);
  a.release(r, 9000);
}
