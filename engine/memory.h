// Raw memory per device. CPU: 64-byte aligned heap. CUDA: the caching allocator
// (engine/cuda/runtime.h). Copies between any two devices, page-locked host buffers, and
// host-to-device uploads that never block the host.
#pragma once
#include <cstddef>
#include <memory>

#include "engine/dtype.h"

namespace mc {

void* device_alloc(size_t bytes, Device dev);
void device_free(void* p, size_t bytes, Device dev) noexcept;
// dst and src may live on different devices; on CUDA it is ordered on the device's stream and
// waits for completion when the host side is involved.
void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
void device_memset0(void* p, size_t bytes, Device dev);
bool cuda_available();  // a usable GPU (any error from the runtime means "no")
int cuda_device_count();

// Host memory to upload from: page-locked when `pinned` is asked and a GPU is usable (copies
// from it run asynchronously at full speed), else ordinary aligned memory.
class HostBuffer {
 public:
  HostBuffer(size_t bytes, bool pinned);
  ~HostBuffer();
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;
  void* data() const { return p_; }
  size_t bytes() const { return bytes_; }
  bool pinned() const { return pinned_; }

 private:
  void* p_ = nullptr;
  size_t bytes_ = 0;
  bool pinned_ = false;
};

// Copies `bytes` of host memory to device memory on `dev` without blocking the host: on CUDA
// through the device's copy stream, ordered by events before the device's later work (and after
// its earlier work). `keep` holds the source until the copy has finished. On the CPU a memcpy.
void device_upload(void* dst, Device dev, const void* src, size_t bytes, std::shared_ptr<void> keep);

}  // namespace mc
