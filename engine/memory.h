// Raw memory per device. CPU: 64-byte aligned heap. CUDA: the caching allocator
// (engine/cuda_runtime.h). Copies between any two devices.
#pragma once
#include <cstddef>

#include "engine/dtype.h"

namespace mc {

void* device_alloc(size_t bytes, Device dev);
void device_free(void* p, size_t bytes, Device dev) noexcept;
// dst and src may live on different devices; on CUDA it is ordered on the current stream and
// waits for completion when the host side is involved.
void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
void device_memset0(void* p, size_t bytes, Device dev);
bool cuda_available();  // a usable GPU (any error from the runtime means "no")
int cuda_device_count();

}  // namespace mc
