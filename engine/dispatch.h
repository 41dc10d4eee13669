// The one dispatch point between the engine and its two backends (DESIGN: "One op table").
//
//   MC_DISPATCH(t.device(), relu_forward, args...)
//
// calls kernels::cpu::relu_forward(args..., nullptr) for a CPU device, and
// kernels::cuda::relu_forward(args..., stream) with the device made current and `stream` the
// engine's stream on it for a CUDA device. A kernel family declares both with one signature
// (kernels/common.h), so this is all the routing an op needs. Work that is not a kernel (cuDNN,
// cuBLAS, runtime services) goes through on_device() / on_cuda() with lambdas.
//
// A CUDA device in a build without CUDA is an mc::Error, never a no-op. This header holds the
// build's only MC_HAVE_CUDA test for engine code: everything else asks kCudaBuilt with
// `if constexpr`, whose discarded branch may name CUDA-only functions without linking them.
#pragma once
#include <type_traits>

#include "engine/check.h"
#include "engine/cuda/runtime.h"  // declarations only: no CUDA headers
#include "engine/dtype.h"
#include "kernels/common.h"

namespace mc {

#ifdef MC_HAVE_CUDA
inline constexpr bool kCudaBuilt = true;
#else
inline constexpr bool kCudaBuilt = false;
#endif

// Kernels' dtype and layout codes (kernels/common.h) equal mc::DType's and mc::Layout's.
inline int kdt(DType dt) { return int(dt); }
inline int klayout(Layout l) { return int(l); }
static_assert(int(DType::F32) == kernels::F32 && int(DType::U8) == kernels::U8);
static_assert(int(Layout::NCDHW) == kernels::NCDHW && int(Layout::NDHWC) == kernels::NDHWC);

[[noreturn]] inline void no_cuda(const char* op, Device d) {
  MC_FAIL(op, ": tensor on ", d.str(), " but this build has no CUDA backend");
}

// Runs f() for a CUDA device with that device current; an error on a build without CUDA.
template <class F>
std::invoke_result_t<F&> on_cuda(Device d, const char* op, F&& f) {
  MC_CHECK(d.is_cuda(), op, ": expected a CUDA device, got ", d.str());
  if constexpr (kCudaBuilt) {
    cuda::DeviceGuard guard(d.index);
    return f();
  } else {
    no_cuda(op, d);
  }
}

// cpu(nullptr) on the CPU; gpu(stream) on a CUDA device (made current), `stream` being the
// engine's stream on it.
template <class Cpu, class Gpu>
std::invoke_result_t<Cpu&, kernels::Stream> on_device(Device d, const char* op, Cpu&& cpu,
                                                      Gpu&& gpu) {
  if (d.is_cpu()) return cpu(kernels::Stream{});
  if constexpr (kCudaBuilt) {
    cuda::DeviceGuard guard(d.index);
    return gpu(cuda::stream(d.index));
  } else {
    no_cuda(op, d);
  }
}

}  // namespace mc

#define MC_DISPATCH(device, fn, ...)                                                          \
  ::mc::on_device(                                                                            \
      (device), #fn,                                                                          \
      [&](::mc::kernels::Stream mc_s_) { return ::mc::kernels::cpu::fn(__VA_ARGS__, mc_s_); }, \
      [&](::mc::kernels::Stream mc_s_) { return ::mc::kernels::cuda::fn(__VA_ARGS__, mc_s_); })
// The same for entry points without a stream (workspace sizes).
#define MC_DISPATCH_SIZE(device, fn, ...)                                                  \
  ::mc::on_device(                                                                         \
      (device), #fn, [&](::mc::kernels::Stream) { return ::mc::kernels::cpu::fn(__VA_ARGS__); }, \
      [&](::mc::kernels::Stream) { return ::mc::kernels::cuda::fn(__VA_ARGS__); })
