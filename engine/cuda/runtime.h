// CUDA runtime services, one set per device: the caching allocator, the stream every op runs on,
// a copy stream for uploads, cuDNN and cuBLAS handles bound to the compute stream, copies,
// page-locked host memory, timing, and flags that kernels raise on device (checked later, so a
// step needs no host sync). engine/memory.cpp and engine/device.cpp route CUDA work here.
// The handle types are declared opaquely so this header does not pull in the CUDA headers; it
// is declared in every build, defined (engine/cuda/runtime.cpp, allocator.cpp) only with CUDA.
#pragma once
#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
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
// Between two GPUs (`device` holds dst) the copy waits for the source GPU's stream, and that
// stream then waits for the copy, so the source's block is not reused before it is read.
void copy(void* dst, bool dst_cuda, const void* src, bool src_cuda, size_t bytes, int device);
void memset0(void* p, size_t bytes, int device);
int device_count();  // 0 on any error (no driver, no device)
// The stream all of MedConv's work on `device` runs on. It is a blocking stream, so launches on
// the legacy default stream (stream argument nullptr) are still ordered with it.
cudaStream_t stream(int device);
cudnnHandle_t cudnn(int device);    // bound to stream(device)
cublasHandle_t cublas(int device);  // bound to stream(device), with a fixed workspace
// Waits for stream(device); also releases the sources of finished uploads.
void synchronize(int device);

// Page-locked host memory (cudaHostAlloc, portable): uploads from it run asynchronously at full
// speed. Returns null when the driver refuses (the caller falls back to pageable memory).
void* host_alloc_pinned(size_t bytes) noexcept;
void host_free_pinned(void* p) noexcept;
// Host -> device without a host sync, on the device's copy stream: the copy first waits for the
// work enqueued so far on stream(device) (dst may be a block that work just released), and
// stream(device) then waits for the copy (events both ways). `keep` holds the source until the
// copy has finished; it is released by a later upload or synchronize(device).
void upload(void* dst, const void* src, size_t bytes, int device, std::shared_ptr<void> keep);
size_t pending_uploads(int device);  // uploads whose sources are still held (tests)

// Median milliseconds of f() over `repeats` runs after `warmup`, timed with events on
// stream(device).
double time_ms(int device, int warmup, int repeats, const std::function<void()>& f);
// "NVIDIA H100 80GB HBM3 (132 SMs, 79.1 GiB), cuDNN 91400, cuBLAS 130100"
std::string device_description(int device);
size_t l2_cache_bytes(int device);

// Errors that kernels detect on the device (e.g. a label outside [0, C)) raise a flag instead of
// forcing a host sync; check_device_flags() reads them (one sync) and throws naming the fault.
// With MC_SYNC_CHECK=1 the ops check right after their launch.
enum class DeviceFlag : int { BadLabel = 0, Count };
int* device_flag(int device, DeviceFlag f);  // device int, 0 = fine
void check_device_flags(int device);         // throws mc::Error if any flag is set (then clears)
void sync_check_flags(int device);           // check_device_flags now when MC_SYNC_CHECK=1

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
