// CUDA prims: elementwise ops, reductions, softmax, the fused cross-entropy and layout changes.
// Our own kernels (kernels/elementwise.cu, softmax.cu, loss.cu), launched on the device stream.
#include "engine/cuda_prims.h"
#include "engine/cuda_util.h"
#include "kernels/elementwise.h"
#include "kernels/loss.h"
#include "kernels/softmax.h"


namespace mc::cuda_prims {
namespace kc = kernels::cuda;
using cuda::kdt;
using cuda::OnDevice;

namespace {

void f32_or_bf16(const Tensor& t, const char* op) {
  MC_CHECK(t.dtype() == DType::F32 || t.dtype() == DType::BF16, op,
           ": the CUDA path takes f32 or bf16, got ", t.str());
}

// b in a's layout (elementwise ops pair up memory positions, so the layouts must agree).
Tensor like(const Tensor& a, const Tensor& b) {
  return b.layout() == a.layout() || b.dim() != 5 ? b : to_layout(b, a.layout());
}

void after_launch(const char* what) { MC_CUDA_LAUNCHED(what); }

}  // namespace

Tensor to_layout(const Tensor& x, Layout layout, DType dt) {
  if (x.layout() == layout && x.dtype() == dt) return x;
  OnDevice d(x, "to_layout");
  f32_or_bf16(x, "to_layout");
  MC_CHECK(dt == DType::F32 || dt == DType::BF16, "to_layout: target dtype must be f32 or bf16");
  Tensor y = d.empty(x.shape(), dt, layout);
  if (x.layout() == layout || x.dim() < 3) {
    kc::cast(x.raw(), kdt(x.dtype()), y.raw(), kdt(dt), x.numel(), d.stream);
  } else {
    const int64_t N = x.size(0), C = x.size(1), S = x.numel() / std::max<int64_t>(N * C, 1);
    if (layout == Layout::NDHWC)  // [N, C, S] -> [N, S, C]
      kc::transpose(x.raw(), kdt(x.dtype()), y.raw(), kdt(dt), N, C, S, d.stream);
    else  // [N, S, C] -> [N, C, S]
      kc::transpose(x.raw(), kdt(x.dtype()), y.raw(), kdt(dt), N, S, C, d.stream);
  }
  after_launch("to_layout");
  return y;
}

// ---------------- elementwise ----------------

Tensor relu_forward(const Tensor& x) {
  OnDevice d(x, "relu");
  f32_or_bf16(x, "relu");
  Tensor y = d.empty(x.shape(), x.dtype(), x.layout());
  kc::relu_forward(x.raw(), y.raw(), kdt(x.dtype()), x.numel(), d.stream);
  after_launch("relu");
  return y;
}

Tensor relu_backward(const Tensor& y, const Tensor& dy_in) {
  OnDevice d(y, "relu backward");
  f32_or_bf16(y, "relu backward");
  const Tensor dy = like(y, dy_in);
  Tensor dx = d.empty(y.shape(), y.dtype(), y.layout());
  kc::relu_backward(y.raw(), dy.raw(), dx.raw(), kdt(y.dtype()), y.numel(), d.stream);
  after_launch("relu backward");
  return dx;
}

Tensor add(const Tensor& a, const Tensor& b_in) {
  OnDevice d(a, "add");
  cuda::same_device(d, b_in, "add", "second operand");
  f32_or_bf16(a, "add");
  const Tensor b = like(a, b_in);
  Tensor y = d.empty(a.shape(), a.dtype(), a.layout());
  kc::add(a.raw(), b.raw(), y.raw(), kdt(a.dtype()), a.numel(), d.stream);
  after_launch("add");
  return y;
}

void add_(Tensor& y, const Tensor& x_in) {
  OnDevice d(y, "add_");
  cuda::same_device(d, x_in, "add_", "addend");
  f32_or_bf16(y, "add_");
  const Tensor x = y.shape() == x_in.shape() ? like(y, x_in) : x_in;
  kc::axpy(1.0f, x.raw(), y.raw(), kdt(y.dtype()), y.numel(), d.stream);
  after_launch("add_");
}

Tensor mul(const Tensor& a, const Tensor& b_in) {
  OnDevice d(a, "mul");
  cuda::same_device(d, b_in, "mul", "second operand");
  f32_or_bf16(a, "mul");
  const Tensor b = like(a, b_in);
  Tensor y = d.empty(a.shape(), a.dtype(), a.layout());
  kc::mul(a.raw(), b.raw(), y.raw(), kdt(a.dtype()), a.numel(), d.stream);
  after_launch("mul");
  return y;
}

Tensor scale(const Tensor& x, double alpha) {
  OnDevice d(x, "scale");
  f32_or_bf16(x, "scale");
  Tensor y = d.empty(x.shape(), x.dtype(), x.layout());
  kc::scale(x.raw(), float(alpha), y.raw(), kdt(x.dtype()), x.numel(), d.stream);
  after_launch("scale");
  return y;
}

Tensor sum_all(const Tensor& x) {
  OnDevice d(x, "sum");
  f32_or_bf16(x, "sum");
  Tensor y = d.empty({}, x.dtype());
  kc::sum(x.raw(), kdt(x.dtype()), x.numel(), 1.0, y.raw(), kdt(y.dtype()), d.stream);
  after_launch("sum");
  return y;
}

Tensor broadcast_scalar(const Tensor& s, const Shape& shape, double alpha) {
  OnDevice d(s, "broadcast_scalar");
  f32_or_bf16(s, "broadcast_scalar");
  MC_CHECK(s.numel() == 1, "broadcast_scalar: needs a one-element tensor, got ", s.str());
  Tensor y = d.empty(shape, s.dtype());
  kc::broadcast_scalar(s.raw(), kdt(s.dtype()), float(alpha), y.raw(), kdt(y.dtype()), y.numel(),
                       d.stream);
  after_launch("broadcast_scalar");
  return y;
}

// ---------------- softmax ----------------

Tensor softmax_forward(const Tensor& x, bool log) {
  OnDevice d(x, "softmax");
  MC_CHECK(x.dtype() == DType::F32, "softmax: the CUDA path computes in f32, got ", x.str());
  MC_CHECK(x.dim() >= 1, "softmax: needs at least one dimension");
  const int64_t C = x.size(-1), R = C ? x.numel() / C : 0;
  Tensor y = d.empty(x.shape(), x.dtype());
  kc::softmax_forward(static_cast<const float*>(x.raw()), static_cast<float*>(y.raw()), R, C, log,
                      d.stream);
  after_launch("softmax");
  return y;
}

Tensor softmax_backward(const Tensor& y, const Tensor& dy, bool log) {
  OnDevice d(y, "softmax backward");
  MC_CHECK(y.dtype() == DType::F32, "softmax backward: the CUDA path computes in f32, got ",
           y.str());
  const int64_t C = y.size(-1), R = C ? y.numel() / C : 0;
  Tensor dx = d.empty(y.shape(), y.dtype());
  kc::softmax_backward(static_cast<const float*>(y.raw()), static_cast<const float*>(dy.raw()),
                       static_cast<float*>(dx.raw()), R, C, log, d.stream);
  after_launch("softmax backward");
  return dx;
}

// ---------------- cross-entropy ----------------

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& offset,
                     const Tensor& weight, bool mean, Tensor* dlogits, const Tensor& dloss) {
  OnDevice d(logits, "cross_entropy");
  MC_CHECK(logits.dtype() == DType::F32,
           "cross_entropy: logits must be f32 on the GPU (the loss "
           "is computed in f32 in every precision), got ",
           logits.str());
  cuda::same_device(d, labels, "cross_entropy", "labels");
  cuda::same_device(d, offset, "cross_entropy", "offset");
  cuda::same_device(d, weight, "cross_entropy", "weight");
  MC_CHECK(!dlogits || (dloss.defined() && dloss.numel() == 1 && dloss.dtype() == DType::F32),
           "cross_entropy: the gradient needs d(loss) as a one-element f32 tensor, got ",
           dloss.str());
  cuda::same_device(d, dloss, "cross_entropy", "d(loss)");
  const int64_t N = logits.size(0), C = logits.size(1);
  Tensor loss = d.empty({}, DType::F32);
  if (dlogits) *dlogits = d.empty(logits.shape(), DType::F32);
  auto f = [](const Tensor& t) {
    return t.defined() ? static_cast<const float*>(t.raw()) : nullptr;
  };
  kc::cross_entropy_fused(
      f(logits), static_cast<const int64_t*>(labels.raw()), f(offset), f(weight), N, C, mean,
      static_cast<float*>(loss.raw()), dlogits ? static_cast<float*>(dlogits->raw()) : nullptr,
      dlogits ? f(dloss) : nullptr, cuda::device_flag(d.dev, cuda::DeviceFlag::BadLabel), d.stream);
  after_launch("cross_entropy");
  if (cuda::sync_check_enabled()) cuda::check_device_flags(d.dev);
  return loss;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& offset,
                     const Tensor& weight, bool mean, Tensor* dlogits, double dloss) {
  Tensor dl;
  if (dlogits) {  // a kernel argument, not a copy: no host sync
    OnDevice d(logits, "cross_entropy");
    dl = d.empty({}, DType::F32);
    kc::fill(dl.raw(), kdt(DType::F32), dloss, 1, d.stream);
  }
  return cross_entropy(logits, labels, offset, weight, mean, dlogits, dl);
}

}  // namespace mc::cuda_prims
