#include "engine/memory.h"

#include <cstdlib>
#include <cstring>

#include "engine/check.h"
#ifdef MC_HAVE_CUDA
#include "engine/cuda_runtime.h"
#endif

namespace mc {

void* device_alloc(size_t bytes, Device dev) {
  if (bytes == 0) return nullptr;
  if (dev.is_cuda()) {
#ifdef MC_HAVE_CUDA
    return cuda::allocator(dev.index).allocate(bytes);
#else
    MC_FAIL("tensor on ", dev.str(), " but this build has no CUDA");
#endif
  }
  void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
  MC_CHECK(p, "out of host memory allocating ", bytes, " bytes");
  return p;
}

void device_free(void* p, size_t bytes, Device dev) noexcept {
  if (!p) return;
  if (dev.is_cuda()) {
#ifdef MC_HAVE_CUDA
    cuda::allocator(dev.index).release(p, bytes);
#endif
    return;
  }
  std::free(p);
}

void device_copy(void* dst, Device dd, const void* src, Device sd, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  if (dd.is_cpu() && sd.is_cpu()) {
    std::memcpy(dst, src, bytes);
    return;
  }
#ifdef MC_HAVE_CUDA
  cuda::copy(dst, dd.is_cuda(), src, sd.is_cuda(), bytes, dd.is_cuda() ? dd.index : sd.index);
#else
  MC_FAIL("copy between ", sd.str(), " and ", dd.str(), " but this build has no CUDA");
#endif
}

void device_memset0(void* p, size_t bytes, Device dev) {
  if (bytes == 0) return;
  if (dev.is_cpu()) {
    std::memset(p, 0, bytes);
    return;
  }
#ifdef MC_HAVE_CUDA
  cuda::memset0(p, bytes, dev.index);
#endif
}

bool cuda_available() { return cuda_device_count() > 0; }

int cuda_device_count() {
#ifdef MC_HAVE_CUDA
  return cuda::device_count();
#else
  return 0;
#endif
}

}  // namespace mc
