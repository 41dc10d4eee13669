// CUDA runtime services (engine/cuda/runtime.h).
#include <algorithm>
#include <cstdio>
#include <deque>
#include <memory>

#include "engine/cuda/check.h"
#include "engine/cuda/runtime.h"

namespace mc::cuda {

// ---------------- allocator ----------------

size_t round_size(size_t bytes) {
  constexpr size_t kMin = 512;
  if (bytes <= kMin) return kMin;
  // p < bytes <= 2p; classes p + k p/8 (never finer than 512 bytes).
  const size_t p = size_t(1) << (63 - __builtin_clzll(uint64_t(bytes - 1)));
  const size_t step = p / 8 > kMin ? p / 8 : kMin;
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(size_t bytes) {
  const size_t size = round_size(bytes);
  auto note = [&] {
    current_bytes += size;
    if (current_bytes > peak_bytes) peak_bytes = current_bytes;
  };
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = free_.find(size);
    if (it != free_.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      cached_ -= size;
      note();
      return p;
    }
  }
  DeviceGuard guard(device_);
  void* p = nullptr;
  cudaError_t e = cudaMalloc(&p, size);
  if (e == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    empty_cache();  // blocks of other size classes may be what stands in the way
    e = cudaMalloc(&p, size);
  }
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    if (e == cudaErrorMemoryAllocation) out_of_memory(bytes, size);
    throw_cuda_error("CUDA", "cudaMalloc", __FILE__, __LINE__, message(e));
  }
  std::lock_guard<std::mutex> lk(mu_);
  reserved_ += size;
  ++mallocs_;
  note();
  return p;
}

void CachingAllocator::release(void* p, size_t bytes) noexcept {
  if (!p) return;
  const size_t size = round_size(bytes);
  std::lock_guard<std::mutex> lk(mu_);
  try {
    free_[size].push_back(p);
  } catch (...) {  // no host memory for the bookkeeping: give the block back instead
    MC_CUDA_CHECK_NOTHROW(cudaFree(p));
    reserved_ -= size;
    current_bytes -= size;
    return;
  }
  cached_ += size;
  current_bytes -= size;
}

void CachingAllocator::empty_cache() {
  std::map<size_t, std::vector<void*>> blocks;
  {
    std::lock_guard<std::mutex> lk(mu_);
    blocks.swap(free_);
    reserved_ -= cached_;
    cached_ = 0;
  }
  DeviceGuard guard(device_);
  for (auto& [size, list] : blocks)
    for (void* p : list) MC_CUDA_CHECK(cudaFree(p));  // cudaFree waits for the device
}

size_t CachingAllocator::cached_bytes() const {
  std::lock_guard<std::mutex> lk(mu_);
  return cached_;
}
size_t CachingAllocator::reserved_bytes() const {
  std::lock_guard<std::mutex> lk(mu_);
  return reserved_;
}
size_t CachingAllocator::device_allocations() const {
  std::lock_guard<std::mutex> lk(mu_);
  return mallocs_;
}
void CachingAllocator::reset_peak() {
  std::lock_guard<std::mutex> lk(mu_);
  peak_bytes = current_bytes;
}

void CachingAllocator::out_of_memory(size_t asked, size_t rounded) {
  size_t free_b = 0, total_b = 0;
  if (cudaMemGetInfo(&free_b, &total_b) != cudaSuccess) (void)cudaGetLastError();
  auto gib = [](size_t b) { return double(b) / double(1ull << 30); };
  char buf[512];
  std::snprintf(buf, sizeof(buf),
                "CUDA out of memory on cuda:%d: asked for %.3f GiB (%zu bytes, size class %zu); "
                "%.3f GiB free of %.3f GiB; MedConv tensors hold %.3f GiB (peak %.3f GiB). "
                "Try a smaller batch size or volume, or precision bf16.",
                device_, gib(asked), asked, rounded, gib(free_b), gib(total_b), gib(current_bytes),
                gib(peak_bytes));
  MC_FAIL(buf);
}

// ---------------- per-device state ----------------

namespace {

// An upload whose source is held until its copy has finished.
struct Pending {
  cudaEvent_t done;
  std::shared_ptr<void> keep;
};

struct DeviceState {
  explicit DeviceState(int d) : device(d), alloc(d) {}
  int device;
  CachingAllocator alloc;
  std::mutex mu;  // guards the lazy creation below
  cudaStream_t stream = nullptr;
  cudaStream_t copy_stream = nullptr;
  cudnnHandle_t cudnn = nullptr;
  cublasHandle_t cublas = nullptr;
  int* flags = nullptr;
  std::mutex upload_mu;  // guards pending and spare
  std::deque<Pending> pending;
  std::vector<cudaEvent_t> spare;  // finished events, reused
};

// Process-lifetime registry, deliberately never destroyed: destroying streams and handles from
// static destructors can run after the driver has shut down. The OS reclaims everything at exit.
struct Registry {
  std::mutex mu;
  std::vector<std::unique_ptr<DeviceState>> devices;
};
Registry& registry() {
  static Registry* r = new Registry;
  return *r;
}

DeviceState& state(int device) {
  Registry& r = registry();
  std::lock_guard<std::mutex> lk(r.mu);
  if (r.devices.empty()) {
    const int n = device_count();
    MC_CHECK(n > 0, "CUDA: no usable GPU (a tensor on cuda:", device, " was asked for)");
    r.devices.resize(size_t(n));
  }
  MC_CHECK(device >= 0 && device < int(r.devices.size()), "CUDA: device cuda:", device,
           " does not exist (", r.devices.size(), " GPU(s) visible)");
  auto& s = r.devices[size_t(device)];
  if (!s) s = std::make_unique<DeviceState>(device);
  return *s;
}

constexpr size_t kCublasWorkspace =
    32ull << 20;  // NVIDIA's advice for Hopper; fixed, so graphs can hold it

}  // namespace

CachingAllocator& allocator(int device) { return state(device).alloc; }

DeviceGuard::DeviceGuard(int device) {
  MC_CUDA_CHECK(cudaGetDevice(&prev_));
  if (prev_ != device)
    MC_CUDA_CHECK(cudaSetDevice(device));
  else
    prev_ = -1;
}
DeviceGuard::~DeviceGuard() {
  if (prev_ >= 0) MC_CUDA_CHECK_NOTHROW(cudaSetDevice(prev_));
}

int device_count() {
  static const int n = [] {
    int c = 0;
    if (cudaGetDeviceCount(&c) != cudaSuccess) {
      (void)cudaGetLastError();  // error 35 (no driver) and friends mean "no GPU"
      return 0;
    }
    return c;
  }();
  return n;
}

cudaStream_t stream(int device) {
  DeviceState& s = state(device);
  std::lock_guard<std::mutex> lk(s.mu);
  if (!s.stream) {
    DeviceGuard g(device);
    // Blocking (not cudaStreamNonBlocking): kernels that callers launch on the legacy default
    // stream (stream argument nullptr) stay ordered with everything on this stream.
    MC_CUDA_CHECK(cudaStreamCreateWithFlags(&s.stream, cudaStreamDefault));
  }
  return s.stream;
}

cudnnHandle_t cudnn(int device) {
  cudaStream_t st = stream(device);
  DeviceState& s = state(device);
  std::lock_guard<std::mutex> lk(s.mu);
  if (!s.cudnn) {
    DeviceGuard g(device);
    MC_CUDNN_CHECK(cudnnCreate(&s.cudnn));
    MC_CUDNN_CHECK(cudnnSetStream(s.cudnn, st));
  }
  return s.cudnn;
}

cublasHandle_t cublas(int device) {
  cudaStream_t st = stream(device);
  DeviceState& s = state(device);
  void* ws = nullptr;
  {
    std::lock_guard<std::mutex> lk(s.mu);
    if (s.cublas) return s.cublas;
  }
  ws = s.alloc.allocate(kCublasWorkspace);  // held for the process: never released
  std::lock_guard<std::mutex> lk(s.mu);
  if (!s.cublas) {
    DeviceGuard g(device);
    MC_CUBLAS_CHECK(cublasCreate(&s.cublas));
    MC_CUBLAS_CHECK(cublasSetStream(s.cublas, st));
    // A fixed workspace: cuBLAS then never allocates on its own (CUDA-graph safe).
    MC_CUBLAS_CHECK(cublasSetWorkspace(s.cublas, ws, kCublasWorkspace));
  } else {
    s.alloc.release(ws, kCublasWorkspace);
  }
  return s.cublas;
}

namespace {

cudaStream_t copy_stream(int device) {
  DeviceState& s = state(device);
  std::lock_guard<std::mutex> lk(s.mu);
  if (!s.copy_stream) {
    DeviceGuard g(device);
    MC_CUDA_CHECK(cudaStreamCreateWithFlags(&s.copy_stream, cudaStreamNonBlocking));
  }
  return s.copy_stream;
}

// `waiter` waits for the work enqueued so far on `signaller`, a stream of device `signal_dev`
// (no host sync). The event belongs to the signaller's device; a stream may wait on an event of
// another device.
void order_after(cudaStream_t waiter, cudaStream_t signaller, int signal_dev) {
  cudaEvent_t e;
  {
    DeviceGuard g(signal_dev);
    MC_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
    MC_CUDA_CHECK(cudaEventRecord(e, signaller));
  }
  MC_CUDA_CHECK(cudaStreamWaitEvent(waiter, e, 0));
  MC_CUDA_CHECK(cudaEventDestroy(e));  // released once the wait has been satisfied
}

// Drops the sources of finished uploads, oldest first (all of them when `all`: after a sync).
void release_uploads(DeviceState& s, bool all) {
  std::vector<std::shared_ptr<void>> done;  // destroyed outside the lock
  {
    std::lock_guard<std::mutex> lk(s.upload_mu);
    while (!s.pending.empty()) {
      const cudaError_t e = all ? cudaSuccess : cudaEventQuery(s.pending.front().done);
      if (e == cudaErrorNotReady) break;
      MC_CUDA_CHECK(e);
      done.push_back(std::move(s.pending.front().keep));
      s.spare.push_back(s.pending.front().done);
      s.pending.pop_front();
    }
  }
}

}  // namespace

void synchronize(int device) {
  MC_CUDA_CHECK(cudaStreamSynchronize(stream(device)));
  DeviceState& s = state(device);
  if (s.copy_stream) {
    MC_CUDA_CHECK(cudaStreamSynchronize(s.copy_stream));
    release_uploads(s, true);
  }
}

// ---------------- copies ----------------

void copy(void* dst, bool dst_cuda, const void* src, bool src_cuda, size_t bytes, int device) {
  if (bytes == 0) return;
  int src_device = device;
  if (dst_cuda && src_cuda) {
    cudaPointerAttributes a{};
    MC_CUDA_CHECK(cudaPointerGetAttributes(&a, src));
    if (a.type == cudaMemoryTypeDevice) src_device = a.device;
  }
  DeviceGuard g(device);
  cudaStream_t s = stream(device);
  const bool peer = src_device != device;
  // The source's writes run on its own device's stream; its allocator may hand the block out
  // again as soon as the source tensor is released, so that stream must also wait for the copy.
  if (peer) order_after(s, stream(src_device), src_device);
  MC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s));
  if (peer) order_after(stream(src_device), s, device);
  if (!dst_cuda || !src_cuda) MC_CUDA_CHECK(cudaStreamSynchronize(s));
}

void* host_alloc_pinned(size_t bytes) noexcept {
  void* p = nullptr;
  if (cudaHostAlloc(&p, bytes, cudaHostAllocPortable) == cudaSuccess) return p;
  (void)cudaGetLastError();
  return nullptr;
}

void host_free_pinned(void* p) noexcept {
  if (p) MC_CUDA_CHECK_NOTHROW(cudaFreeHost(p));
}

void upload(void* dst, const void* src, size_t bytes, int device, std::shared_ptr<void> keep) {
  DeviceState& s = state(device);
  release_uploads(s, false);
  if (bytes == 0) return;
  DeviceGuard g(device);
  cudaStream_t compute = stream(device), copy = copy_stream(device);
  order_after(copy, compute, device);
  MC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, copy));
  cudaEvent_t done = nullptr;
  {
    std::lock_guard<std::mutex> lk(s.upload_mu);
    if (!s.spare.empty()) {
      done = s.spare.back();
      s.spare.pop_back();
    }
  }
  if (!done) MC_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
  MC_CUDA_CHECK(cudaEventRecord(done, copy));
  MC_CUDA_CHECK(cudaStreamWaitEvent(compute, done, 0));
  std::lock_guard<std::mutex> lk(s.upload_mu);
  s.pending.push_back({done, std::move(keep)});
}

size_t pending_uploads(int device) {
  DeviceState& s = state(device);
  release_uploads(s, false);
  std::lock_guard<std::mutex> lk(s.upload_mu);
  return s.pending.size();
}

// ---------------- timing and description ----------------

double time_ms(int device, int warmup, int repeats, const std::function<void()>& f) {
  MC_CHECK(repeats >= 1, "time_ms: repeats must be at least 1, got ", repeats);
  DeviceGuard g(device);
  cudaStream_t s = stream(device);
  for (int i = 0; i < warmup; ++i) f();
  MC_CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<cudaEvent_t> ev(size_t(2 * repeats));
  for (auto& e : ev) MC_CUDA_CHECK(cudaEventCreate(&e));
  struct Destroy {  // the events go whatever f throws
    std::vector<cudaEvent_t>& ev;
    ~Destroy() {
      for (auto& e : ev) MC_CUDA_CHECK_NOTHROW(cudaEventDestroy(e));
    }
  } destroy{ev};
  for (int i = 0; i < repeats; ++i) {
    MC_CUDA_CHECK(cudaEventRecord(ev[size_t(2 * i)], s));
    f();
    MC_CUDA_CHECK(cudaEventRecord(ev[size_t(2 * i + 1)], s));
  }
  MC_CUDA_CHECK(cudaStreamSynchronize(s));
  std::vector<double> t;
  for (int i = 0; i < repeats; ++i) {
    float ms = 0;
    MC_CUDA_CHECK(cudaEventElapsedTime(&ms, ev[size_t(2 * i)], ev[size_t(2 * i + 1)]));
    t.push_back(ms);
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

size_t l2_cache_bytes(int device) {
  int l2 = 0;
  MC_CUDA_CHECK(cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, device));
  return size_t(l2);
}

std::string device_description(int device) {
  cudaDeviceProp prop{};
  MC_CUDA_CHECK(cudaGetDeviceProperties(&prop, device));
  int cublas_v = 0;
  MC_CUBLAS_CHECK(cublasGetVersion(cublas(device), &cublas_v));
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s (%d SMs, %.1f GiB), cuDNN %zu, cuBLAS %d", prop.name,
                prop.multiProcessorCount, double(prop.totalGlobalMem) / double(1ull << 30),
                cudnnGetVersion(), cublas_v);
  return buf;
}

void memset0(void* p, size_t bytes, int device) {
  if (bytes == 0) return;
  DeviceGuard g(device);
  MC_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream(device)));
}

// ---------------- device flags ----------------

int* device_flag(int device, DeviceFlag f) {
  cudaStream_t st = stream(device);
  DeviceState& s = state(device);
  std::lock_guard<std::mutex> lk(s.mu);
  if (!s.flags) {
    DeviceGuard g(device);
    MC_CUDA_CHECK(cudaMalloc(&s.flags, sizeof(int) * size_t(DeviceFlag::Count)));
    MC_CUDA_CHECK(cudaMemsetAsync(s.flags, 0, sizeof(int) * size_t(DeviceFlag::Count), st));
  }
  return s.flags + int(f);
}

void check_device_flags(int device) {
  constexpr int n = int(DeviceFlag::Count);
  int* flags = device_flag(device, DeviceFlag(0));
  int host[n] = {};
  DeviceGuard g(device);
  cudaStream_t st = stream(device);
  MC_CUDA_CHECK(cudaMemcpyAsync(host, flags, sizeof(host), cudaMemcpyDeviceToHost, st));
  MC_CUDA_CHECK(cudaStreamSynchronize(st));
  bool any = false;
  for (int v : host) any |= v != 0;
  if (!any) return;
  MC_CUDA_CHECK(cudaMemsetAsync(flags, 0, sizeof(host), st));
  MC_CHECK(!host[int(DeviceFlag::BadLabel)],
           "cross_entropy: a label outside [0, num_classes) reached the GPU loss (cuda:", device,
           "); such rows were left out of the loss and its gradient");
}

void sync_check_flags(int device) {
  if (sync_check_enabled()) check_device_flags(device);
}

}  // namespace mc::cuda
