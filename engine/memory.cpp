#include "engine/memory.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "engine/check.h"
#include "engine/dispatch.h"

namespace mc {

void* device_alloc(size_t bytes, Device dev) {
  if (bytes == 0) return nullptr;
  if (dev.is_cuda())
    return on_cuda(dev, "device_alloc", [&] { return cuda::allocator(dev.index).allocate(bytes); });
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  MC_CHECK(p, "out of host memory allocating ", bytes, " bytes");
  return p;
}

void device_free(void* p, size_t bytes, Device dev) noexcept {
  if (!p) return;
  if (dev.is_cpu()) {
    std::free(p);
    return;
  }
  if constexpr (kCudaBuilt) cuda::allocator(dev.index).release(p, bytes);
}

void device_copy(void* dst, Device dd, const void* src, Device sd, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  if (dd.is_cpu() && sd.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
  const Device at = dd.is_cuda() ? dd : sd;
  MC_CHECK(kCudaBuilt, "copy between ", sd.str(), " and ", dd.str(),
           " but this build has no CUDA backend");
  on_cuda(at, "device_copy",
          [&] { cuda::copy(dst, dd.is_cuda(), src, sd.is_cuda(), bytes, at.index); });
}

void device_memset0(void* p, size_t bytes, Device dev) {
  if (bytes == 0) return;
  if (dev.is_cpu()) {
    std::memset(p, 0, bytes);
    return;
  }
  on_cuda(dev, "device_memset0", [&] { cuda::memset0(p, bytes, dev.index); });
}

bool cuda_available() { return cuda_device_count() > 0; }

int cuda_device_count() {
  if constexpr (kCudaBuilt) return cuda::device_count();
  return 0;
}

HostBuffer::HostBuffer(size_t bytes, bool pinned) : bytes_(bytes) {
  if constexpr (kCudaBuilt) {
    if (pinned && bytes && cuda_available()) {
      p_ = cuda::host_alloc_pinned(bytes);
      pinned_ = p_ != nullptr;  // else pageable memory: slower copies, same results
    }
  }
  if (!p_) {
    p_ = std::aligned_alloc(64, (std::max<size_t>(bytes, 1) + 63) / 64 * 64);
    MC_CHECK(p_, "out of host memory allocating ", bytes, " bytes");
  }
}

HostBuffer::~HostBuffer() {
  if (!pinned_) {
    std::free(p_);
    return;
  }
  if constexpr (kCudaBuilt) cuda::host_free_pinned(p_);
}

void device_upload(void* dst, Device dev, const void* src, size_t bytes,
                   std::shared_ptr<void> keep) {
  if (dev.is_cpu()) {
    if (bytes) std::memcpy(dst, src, bytes);
    return;
  }
  on_cuda(dev, "upload", [&] { cuda::upload(dst, src, bytes, dev.index, std::move(keep)); });
}

}  // namespace mc
