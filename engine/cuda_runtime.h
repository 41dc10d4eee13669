// CUDA runtime services, one set per device: the caching allocator, the stream every op runs on,
// cuDNN and cuBLAS handles bound to that stream, copies, and flags that kernels raise on device
// (checked later, so a step needs no host sync). engine/memory.cpp routes CUDA memory here.
// The handle types are declared opaquely so this header does not pull in the CUDA headers.
#pragma once
#include <cstddef>
#include <map>
#include <mutex>
#include <vector>

typedef struct CUstream_st* cudaStream_t;
typedef struct cudnnContext* cudnnHandle_t;
typedef struct cublasContext* cublasHandle_t;

namespace mc::cuda {

// The allocator's size classes (a pure function, tested without a GPU): at least 512 bytes;
// above, 8 classes per power of two (under 12.5% waste), always a multiple of 512 bytes.
size_t round_size(size_t bytes);

// Caching device allocator. Blocks are binned by size class and reused in stream order: every
// op runs on stream(device), so a block released after its last use was enqueued can be handed
// to the next op without waiting. Work on any other stream must be joined to stream(device)
// before the tensors it touched are released. Once a step has run, the next identical step
// finds every block it needs in the cache: no cudaMalloc, nothing a CUDA graph could not hold.
// When cudaMalloc fails the cache is emptied and the call retried before reporting OOM.
class CachingAllocator {
 public:
  explicit CachingAllocator(int device) : device_(device) {}
  void* allocate(size_t bytes);
  void release(void* p, size_t bytes) noexcept;
  void empty_cache();  // returns cached blocks to the driver (cudaFree synchronises the device)
  size_t cached_bytes() const;
  size_t reserved_bytes() const;      // everything obtained from cudaMalloc and not yet freed
  size_t device_allocations() const;  // cudaMalloc calls so far (a warm step must add none)
  void reset_peak();

  // Bytes handed out to tensors (rounded to size classes), now and at most. Updated under the
  // allocator's lock; read them from the thread that drives the device.
  size_t current_bytes = 0, peak_bytes = 0;

 private:
  [[noreturn]] void out_of_memory(size_t asked, size_t rounded);
  int device_;
  mutable std::mutex mu_;
  std::map<size_t, std::vector<void*>> free_;  // size class -> cached blocks
  size_t cached_ = 0, reserved_ = 0, mallocs_ = 0;
};

CachingAllocator& allocator(int device);
// Copies between host and device memory or two device buffers, ordered on stream(device);
// waits for completion when host memory is involved (the host buffer may be reused at once).
void copy(void* dst, bool dst_cuda, const void* src, bool src_cuda, size_t bytes, int device);
void memset0(void* p, size_t bytes, int device);
int device_count();  // 0 on any error (no driver, no device)
// The stream all of MedConv's work on `device` runs on. It is a blocking stream, so launches on
// the legacy default stream (stream argument nullptr) are still ordered with it.
cudaStream_t stream(int device);
cudnnHandle_t cudnn(int device);    // bound to stream(device)
cublasHandle_t cublas(int device);  // bound to stream(device), with a fixed workspace
void synchronize(int device);

// Errors that kernels detect on the device (e.g. a label outside [0, C)) raise a flag instead of
// forcing a host sync; check_device_flags() reads them (one sync) and throws naming the fault.
// With MC_SYNC_CHECK=1 the ops check right after their launch.
enum class DeviceFlag : int { BadLabel = 0, Count };
int* device_flag(int device, DeviceFlag f);  // device int, 0 = fine
void check_device_flags(int device);         // throws mc::Error if any flag is set (then clears)

// Sets the current device for a scope and restores the previous one.
class DeviceGuard {
 public:
  explicit DeviceGuard(int device);
  ~DeviceGuard();
  DeviceGuard(const DeviceGuard&) = delete;
  DeviceGuard& operator=(const DeviceGuard&) = delete;

 private:
  int prev_ = -1;
};

}  // namespace mc::cuda
