// Shared by the cuDNN / cuBLAS prims (engine/cuda/conv.cpp, bn.cpp, linear.cpp): RAII cuDNN
// descriptors, dtype mapping, tensor descriptors in either memory layout, and the per-op device
// scope. Private to them.
#pragma once
#include <array>
#include <cstdio>
#include <mutex>
#include <set>
#include <string>

#include "engine/cuda/check.h"
#include "engine/cuda/runtime.h"
#include "engine/tensor.h"

namespace mc::cuda {

// A cuDNN descriptor owned for a scope (or cached in a plan); movable, not copyable.
template <class H, cudnnStatus_t (*Create)(H*), cudnnStatus_t (*Destroy)(H)> class Desc {
 public:
  Desc() { MC_CUDNN_CHECK(Create(&h_)); }
  ~Desc() {
    if (h_) MC_CUDNN_CHECK_NOTHROW(Destroy(h_));
  }
  Desc(Desc&& o) noexcept : h_(o.h_) { o.h_ = nullptr; }
  Desc& operator=(Desc&& o) noexcept {
    std::swap(h_, o.h_);
    return *this;
  }
  Desc(const Desc&) = delete;
  Desc& operator=(const Desc&) = delete;
  operator H() const { return h_; }

 private:
  H h_ = nullptr;
};
using TensorDesc =
    Desc<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using FilterDesc =
    Desc<cudnnFilterDescriptor_t, cudnnCreateFilterDescriptor, cudnnDestroyFilterDescriptor>;
using ConvDesc = Desc<cudnnConvolutionDescriptor_t, cudnnCreateConvolutionDescriptor,
                      cudnnDestroyConvolutionDescriptor>;
using OpTensorDesc =
    Desc<cudnnOpTensorDescriptor_t, cudnnCreateOpTensorDescriptor, cudnnDestroyOpTensorDescriptor>;
using ReduceDesc = Desc<cudnnReduceTensorDescriptor_t, cudnnCreateReduceTensorDescriptor,
                        cudnnDestroyReduceTensorDescriptor>;

inline cudnnDataType_t cudnn_dtype(DType dt) {
  switch (dt) {
    case DType::F32: return CUDNN_DATA_FLOAT;
    case DType::F64: return CUDNN_DATA_DOUBLE;
    case DType::BF16: return CUDNN_DATA_BFLOAT16;
    case DType::F16: return CUDNN_DATA_HALF;
    case DType::I32: return CUDNN_DATA_INT32;
    case DType::I64: return CUDNN_DATA_INT64;
    case DType::U8: return CUDNN_DATA_UINT8;
  }
  MC_FAIL("cudnn: unknown dtype");
}

// Dims in logical order [N, C, spatial...] (what Tensor::shape holds); strides for the layout.
// Fewer than 4 dims are padded with trailing 1s (cuDNN wants 4-D or 5-D).
inline void describe(cudnnTensorDescriptor_t d, DType dt, const Shape& shape, Layout layout) {
  MC_CHECK(shape.size() >= 2 && shape.size() <= 5, "cudnn: tensors must have 2 to 5 dims, got ",
           shape_str(shape));
  const int nd = shape.size() <= 4 ? 4 : 5;
  std::array<int, 5> dim{1, 1, 1, 1, 1}, str{};
  for (size_t i = 0; i < shape.size(); ++i) {
    MC_CHECK(shape[i] <= 0x7fffffff, "cudnn: dimension ", shape[i], " exceeds int range");
    dim[i] = int(shape[i]);
  }
  MC_CHECK(numel_of(shape) <= 0x7fffffffLL, "cudnn: tensor ", shape_str(shape),
           " has more than 2^31 elements; the legacy cuDNN API indexes with int (split the batch)");
  if (layout == Layout::NDHWC && shape.size() == 5) {  // memory order N, D, H, W, C
    str[1] = 1;
    str[4] = dim[1];
    str[3] = dim[4] * str[4];
    str[2] = dim[3] * str[3];
    str[0] = dim[2] * str[2];
  } else {
    str[nd - 1] = 1;
    for (int i = nd - 2; i >= 0; --i) str[i] = str[i + 1] * dim[i + 1];
  }
  MC_CUDNN_CHECK(cudnnSetTensorNdDescriptor(d, cudnn_dtype(dt), nd, dim.data(), str.data()));
}

// Per-channel [1, C, 1, 1(, 1)] descriptor matching an activation of `rank` dims.
inline void describe_channels(cudnnTensorDescriptor_t d, DType dt, int64_t C, size_t rank) {
  Shape s(rank <= 4 ? 4 : 5, 1);
  s[1] = C;
  describe(d, dt, s, Layout::NCDHW);
}

// Reports a fallback on stderr the first time `key` is seen in this process, so a slower path
// is never silent and never floods the log.
inline void note_once(const std::string& key, const std::string& message) {
  static std::mutex mu;
  static std::set<std::string> seen;
  std::lock_guard<std::mutex> lk(mu);
  if (seen.insert(key).second) std::fprintf(stderr, "MedConv: %s\n", message.c_str());
}

// What one op on one GPU needs: the device made current for the op's scope, and its stream.
struct OnDevice {
  explicit OnDevice(const Tensor& t, const char* op)
      : dev((check_cuda(t, op), t.device().index)), guard(dev), stream(cuda::stream(dev)) {}
  Device device() const { return Device::cuda(dev); }
  Tensor empty(const Shape& s, DType dt, Layout l = Layout::NCDHW) const {
    Tensor t = Tensor::empty(s, dt, device());
    t.set_layout(l);
    return t;
  }
  int dev;
  DeviceGuard guard;
  cudaStream_t stream;

 private:
  static int check_cuda(const Tensor& t, const char* op) {
    MC_CHECK(t.defined() && t.is_cuda(), op, ": expected a CUDA tensor, got ", t.str());
    return 0;
  }
};

// Every tensor an op takes must live on the op's device.
inline void same_device(const OnDevice& d, const Tensor& t, const char* op, const char* what) {
  if (!t.defined()) return;
  MC_CHECK(t.device() == d.device(), op, ": ", what, " is on ", t.device().str(), ", expected ",
           d.device().str());
}

}  // namespace mc::cuda
