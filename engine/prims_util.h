// Checks and helpers shared by engine/prims.cpp and engine/prims_pointwise.cpp. Private to them.
#pragma once
#include "engine/dispatch.h"
#include "engine/tensor.h"

namespace mc::prims::detail {

// The layout a kernel sees: the tag of a 5-D tensor; NCDHW for every other rank.
inline Layout layout_of(const Tensor& t) { return t.dim() == 5 ? t.layout() : Layout::NCDHW; }
inline int klay(const Tensor& t) { return klayout(layout_of(t)); }

inline const void* opt(const Tensor& t) { return t.defined() ? t.raw() : nullptr; }
inline void* opt_mut(const Tensor& t) { return t.defined() ? t.raw() : nullptr; }

// A new tensor on t's device (and in `layout`).
inline Tensor empty_like_device(const Tensor& t, const Shape& s, DType dt,
                                Layout layout = Layout::NCDHW) {
  Tensor y = Tensor::empty(s, dt, t.device());
  y.set_layout(layout);
  return y;
}

// Scratch bytes on `d` (undefined when none are needed).
inline Tensor workspace(size_t bytes, Device d) {
  return bytes ? Tensor::empty({int64_t(bytes)}, DType::U8, d) : Tensor();
}

// An optional tensor argument lives on x's device.
inline void same_device(const Tensor& x, const Tensor& t, const char* op, const char* what) {
  if (!t.defined()) return;
  MC_CHECK(t.device() == x.device(), op, ": ", what, " is on ", t.device().str(), ", input on ",
           x.device().str());
}

// The CPU kernels read every floating operand in the input's dtype (raw pointers: a mismatch
// would be reinterpreted, so it is an error here).
inline void cpu_same_dtype(const Tensor& x, std::initializer_list<const Tensor*> ts, const char* op,
                           const char* what) {
  if (!x.device().is_cpu()) return;
  for (const Tensor* t : ts)
    MC_CHECK(!t->defined() || t->dtype() == x.dtype(), op, ": ", what, " ", t->str(),
             " must have the input's dtype (", dtype_name(x.dtype()), ") on the CPU");
}

inline void same_shape(const Tensor& a, const Tensor& b, const char* op) {
  MC_CHECK(a.shape() == b.shape(), op, ": shapes ", shape_str(a.shape()), " and ",
           shape_str(b.shape()), " differ");
  MC_CHECK(a.dtype() == b.dtype() && a.device() == b.device(), op, ": ", a.str(), " and ",
           b.str(), " differ in dtype or device");
}

}  // namespace mc::prims::detail
