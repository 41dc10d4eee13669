// Check macros for the CUDA libraries (DESIGN: "One error header"; engine/check.h is the rest of
// the family). Each throws mc::Error with the failing expression, file:line, the current device
// and the library's own message:
//
//   MC_CUDA_CHECK(cudaMemcpyAsync(...));
//   MC_CUDNN_CHECK(cudnnConvolutionForward(...));
//   MC_CUBLAS_CHECK(cublasGemmEx(...));
//   MC_NCCL_CHECK(ncclAllReduce(...));
//   MC_CUDA_LAUNCHED("relu");        // after a kernel launch: launch errors; with MC_SYNC_CHECK=1
//                                    // also waits for the device so async faults name this line
//   MC_CUDA_CHECK_NOTHROW(cudaFree(p));  // destructors: reports on stderr, never throws
//
// Header-only (kernels/*.cu use it without linking the engine). It pulls in the CUDA headers, so
// only CUDA sources include it: kernels/*.cu and engine/cuda/*.cpp.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <nccl.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "engine/check.h"

namespace mc::cuda {

inline int current_device_or(int fallback) noexcept {
  int d = fallback;
  if (cudaGetDevice(&d) != cudaSuccess) d = fallback;
  return d;
}

// "cuDNN call cudnnFoo(...) failed on cuda:0: CUDNN_STATUS_BAD_PARAM (why) [file:line]"
[[noreturn]] inline void throw_cuda_error(const char* lib, const char* expr, const char* file,
                                          int line, const std::string& what) {
  mc::throw_error(file, line,
                  detail::cat(lib, " call ", expr, " failed on cuda:", current_device_or(-1), ": ",
                              what));
}
inline void report_cuda_error(const char* lib, const char* expr, const char* file, int line,
                              const std::string& what) noexcept {
  std::fprintf(stderr, "MedConv: %s call %s failed on cuda:%d: %s [%s:%d]\n", lib, expr,
               current_device_or(-1), what.c_str(), file, line);
}

// MC_SYNC_CHECK=1 in the environment (read once per process).
inline bool sync_check_enabled() {
  static const bool on = [] {
    const char* v = std::getenv("MC_SYNC_CHECK");
    return v && v[0] && v[0] != '0';
  }();
  return on;
}

inline std::string message(cudaError_t e) {
  return std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e);
}
inline std::string message(cudnnStatus_t s) {
  char detail[512] = {0};
  cudnnGetLastErrorString(detail, sizeof(detail));  // cuDNN 9: why, not just what
  std::string m = cudnnGetErrorString(s);
  if (detail[0]) m += std::string(" (") + detail + ")";
  return m;
}
inline std::string message(cublasStatus_t s) {
  return std::string(cublasGetStatusName(s)) + ": " + cublasGetStatusString(s);
}
inline std::string message(ncclResult_t r) { return ncclGetErrorString(r); }

// The one post-launch check: cudaGetLastError, and with MC_SYNC_CHECK a device synchronise, so
// an asynchronous fault is reported at the launch that caused it. Throws naming `what`.
inline void check_launch(const char* what, const char* file, int line) {
  cudaError_t e = cudaGetLastError();
  if (e == cudaSuccess && sync_check_enabled()) e = cudaDeviceSynchronize();
  if (e != cudaSuccess)
    mc::throw_error(file, line,
                    detail::cat("CUDA error after ", what, " on cuda:", current_device_or(-1), ": ",
                                message(e)));
}

}  // namespace mc::cuda

#define MC_CUDA_LIB_CHECK_(lib, ok, expr)                            \
  do {                                                               \
    auto mc_status_ = (expr);                                        \
    if (mc_status_ != (ok))                                          \
      ::mc::cuda::throw_cuda_error(lib, #expr, __FILE__, __LINE__,   \
                                   ::mc::cuda::message(mc_status_)); \
  } while (0)

// A status already in hand (when a caller first looks at it, e.g. to fall back), with the call's
// name.
#define MC_CUDNN_CHECK_STATUS(status, call)                           \
  do {                                                                \
    if ((status) != CUDNN_STATUS_SUCCESS)                             \
      ::mc::cuda::throw_cuda_error("cuDNN", call, __FILE__, __LINE__, \
                                   ::mc::cuda::message(status));      \
  } while (0)

#define MC_CUDA_CHECK(expr) MC_CUDA_LIB_CHECK_("CUDA", cudaSuccess, expr)
#define MC_CUDNN_CHECK(expr) MC_CUDA_LIB_CHECK_("cuDNN", CUDNN_STATUS_SUCCESS, expr)
#define MC_CUBLAS_CHECK(expr) MC_CUDA_LIB_CHECK_("cuBLAS", CUBLAS_STATUS_SUCCESS, expr)
#define MC_NCCL_CHECK(expr) MC_CUDA_LIB_CHECK_("NCCL", ncclSuccess, expr)

#define MC_CUDA_CHECK_NOTHROW(expr)                                    \
  do {                                                                 \
    cudaError_t mc_status_ = (expr);                                   \
    if (mc_status_ != cudaSuccess)                                     \
      ::mc::cuda::report_cuda_error("CUDA", #expr, __FILE__, __LINE__, \
                                    ::mc::cuda::message(mc_status_));  \
  } while (0)
#define MC_CUDNN_CHECK_NOTHROW(expr)                                    \
  do {                                                                  \
    cudnnStatus_t mc_status_ = (expr);                                  \
    if (mc_status_ != CUDNN_STATUS_SUCCESS)                             \
      ::mc::cuda::report_cuda_error("cuDNN", #expr, __FILE__, __LINE__, \
                                    cudnnGetErrorString(mc_status_));   \
  } while (0)

#define MC_CUDA_LAUNCHED(what) ::mc::cuda::check_launch(what, __FILE__, __LINE__)
