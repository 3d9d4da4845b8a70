// src_cpu_buffers.cpp — see src_cpu_buffers.h.
#include "src_cpu_buffers.h"

#include <ATen/EmptyTensor.h>
#include <c10/core/impl/alloc_cpu.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <list>
#include <mutex>
#include <string>

namespace srcext {
namespace cpu {
namespace {

// Below this, the default allocator's heap already reuses memory without new page faults.
constexpr size_t kMinCachedBytes = size_t(256) << 10;
// A request is served from a kept buffer of up to this many times its size (best fit).
constexpr size_t kMaxFitRatio = 2;

size_t cache_limit_bytes() {
  static const size_t limit = [] {
    const char* env = std::getenv("SRCEXT_CPU_BUFFER_CACHE_MB");
    const long long mb = env ? std::atoll(env) : 2048;
    return mb > 0 ? size_t(mb) << 20 : size_t(0);
  }();
  return limit;
}

struct Block {
  void* data;
  size_t bytes;
};

class BufferCache final : public c10::Allocator {
 public:
  c10::DataPtr allocate(size_t bytes) override {
    Block block{nullptr, bytes};
    {
      std::lock_guard<std::mutex> lock(mutex_);
      // Best fit among the kept buffers of at least `bytes` and at most kMaxFitRatio times
      // that: a sequence shorter than the last still reuses its (already faulted-in) pages.
      auto best = free_.end();
      for (auto it = free_.begin(); it != free_.end(); ++it) {
        if (it->bytes >= bytes && it->bytes / kMaxFitRatio <= bytes &&
            (best == free_.end() || it->bytes < best->bytes)) {
          best = it;
        }
      }
      if (best != free_.end()) {
        block = *best;
        free_bytes_ -= block.bytes;
        free_.erase(best);
      }
      live_bytes_ += block.bytes;
      peak_live_bytes_ = std::max(peak_live_bytes_, live_bytes_);
    }
    if (block.data == nullptr) block.data = c10::alloc_cpu(bytes);
    return {block.data, new Block(block), &BufferCache::release, c10::Device(c10::kCPU)};
  }

  void copy_data(void* dest, const void* src, size_t count) const override {
    default_copy_data(dest, src, count);
  }

  // Frees every cached buffer; returns the bytes released.
  int64_t release_all() {
    std::list<Block> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      dropped.swap(free_);
      free_bytes_ = 0;
    }
    int64_t bytes = 0;
    for (const Block& b : dropped) {
      bytes += int64_t(b.bytes);
      c10::free_cpu(b.data);
    }
    return bytes;
  }

  static BufferCache& instance() {
    static BufferCache* cache = new BufferCache();  // never destroyed: buffers may outlive exit
    return *cache;
  }

 private:
  static void release(void* ctx) {
    Block* block = static_cast<Block*>(ctx);
    instance().keep(*block);
    delete block;
  }

  void keep(const Block& block) {
    std::list<Block> dropped;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      live_bytes_ -= block.bytes;
      // Kept: at most what was ever in use at once (the working set of a step), and at most
      // the configured limit; the oldest go first.
      const size_t limit = std::min(cache_limit_bytes(), peak_live_bytes_);
      if (block.bytes > limit) {
        dropped.push_back(block);
      } else {
        free_.push_back(block);
        free_bytes_ += block.bytes;
        while (free_bytes_ > limit) {
          free_bytes_ -= free_.front().bytes;
          dropped.splice(dropped.end(), free_, free_.begin());
        }
      }
    }
    for (const Block& b : dropped) c10::free_cpu(b.data);
  }

  std::mutex mutex_;
  std::list<Block> free_;  // oldest first
  size_t free_bytes_ = 0;
  size_t live_bytes_ = 0;       // handed out and not yet returned
  size_t peak_live_bytes_ = 0;  // the most ever handed out at once
};

}  // namespace

at::Tensor empty_cached(at::IntArrayRef sizes, const at::TensorOptions& options) {
  const size_t bytes =
      size_t(c10::multiply_integers(sizes)) * c10::elementSize(options.dtype().toScalarType());
  if (bytes < kMinCachedBytes || cache_limit_bytes() == 0) return at::empty(sizes, options);
  return at::detail::empty_generic(sizes, &BufferCache::instance(),
                                   c10::DispatchKeySet(c10::DispatchKey::CPU),
                                   options.dtype().toScalarType(), c10::MemoryFormat::Contiguous);
}

TORCH_LIBRARY_FRAGMENT(srcext, m) {
  // Frees the CPU output buffers kept for reuse (src_cpu_buffers.h); returns the bytes freed.
  m.def("release_cpu_buffers() -> int", [] { return BufferCache::instance().release_all(); });
}

}  // namespace cpu
}  // namespace srcext
