// The dense layer on the GPU through cuBLAS (row-major tensors as column-major transposes).
//
//   y [N, out] = x [N, in] w[out, in]^T + b   ->  column-major  y^T = w^T' x^T : gemm(T, N)
//   dx [N, in] = dy w                          ->  dx^T = w^T dy^T            : gemm(N, N)
//   dw [out, in] = dy^T x                      ->  dw^T = x^T dy              : gemm(N, T)
//   db [out] = sum over rows of dy             ->  dy^T ones                  : gemm(N, N), n = 1
//
// The head of a classifier is small (batch x 2048 x classes) and feeds the loss, so it computes
// in f32 in every precision: a bf16 input is widened and its gradient narrowed back. fp32 mode is
// strict (CUBLAS_COMPUTE_32F_PEDANTIC: no TF32, no reduced-precision reductions); tf32 mode
// allows TF32 tensor cores.
#include <algorithm>

#include "engine/cuda/dnn.h"
#include "engine/cuda/util.h"
#include "engine/precision.h"

namespace mc::cuda {
namespace {

using prims::to_layout;

cublasComputeType_t compute_type() {
  return precision() == Precision::TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                                        : CUBLAS_COMPUTE_32F_PEDANTIC;
}

// C (m x n, ld ldc) = op(A) op(B), column-major, all f32.
void gemm(const OnDevice& d, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void* A,
          int64_t lda, const void* B, int64_t ldb, void* C, int64_t ldc) {
  MC_CHECK(m <= 0x7fffffff && n <= 0x7fffffff && k <= 0x7fffffff,
           "linear: matrix too large for cuBLAS");
  const float one = 1.f, zero = 0.f;
  MC_CUBLAS_CHECK(cublasGemmEx(cublas(d.dev), ta ? CUBLAS_OP_T : CUBLAS_OP_N,
                               tb ? CUBLAS_OP_T : CUBLAS_OP_N, int(m), int(n), int(k), &one, A,
                               CUDA_R_32F, int(lda), B, CUDA_R_32F, int(ldb), &zero, C, CUDA_R_32F,
                               int(ldc), compute_type(), CUBLAS_GEMM_DEFAULT));
}

Tensor as_f32(const Tensor& t) { return to_layout(t, t.layout(), DType::F32); }

void check_weight(const OnDevice& d, const Tensor& w, const char* op) {
  same_device(d, w, op, "weight");
  MC_CHECK(w.dtype() == DType::F32, op, ": weights are f32 masters, got ", w.str());
}

}  // namespace

Tensor linear_forward(const Tensor& x_in, const Tensor& w, const Tensor& b) {
  OnDevice d(x_in, "linear");
  check_weight(d, w, "linear");
  same_device(d, b, "linear", "bias");
  const int64_t N = x_in.size(0), In = x_in.size(1), Out = w.size(0);
  const Tensor x = as_f32(x_in);
  Tensor y = d.empty({N, Out}, DType::F32);
  if (N == 0 || Out == 0) return y;
  gemm(d, true, false, Out, N, In, w.raw(), In, x.raw(), In, y.raw(), Out);
  if (b.defined()) {
    MC_CHECK(b.dtype() == DType::F32, "linear: bias must be f32, got ", b.str());
    TensorDesc bd, yd;
    describe(bd, DType::F32, {1, Out}, Layout::NCDHW);
    describe(yd, DType::F32, {N, Out}, Layout::NCDHW);
    const float one = 1.f;
    MC_CUDNN_CHECK(cudnnAddTensor(cudnn(d.dev), &one, bd, b.raw(), &one, yd, y.raw()));
  }
  MC_CUDA_LAUNCHED("linear");
  return y;
}

void linear_backward(const Tensor& x_in, const Tensor& w, const Tensor& dy_in, Tensor* dx,
                     Tensor* dw, Tensor* db) {
  OnDevice d(x_in, "linear backward");
  check_weight(d, w, "linear backward");
  same_device(d, dy_in, "linear backward", "output gradient");
  const int64_t N = x_in.size(0), In = x_in.size(1), Out = w.size(0);
  const Tensor dy = as_f32(dy_in);
  if (dx) {
    Tensor g = d.empty({N, In}, DType::F32);
    if (g.numel()) gemm(d, false, false, In, N, Out, w.raw(), In, dy.raw(), Out, g.raw(), In);
    *dx = to_layout(g, Layout::NCDHW, x_in.dtype());  // the input's dtype (bf16 in bf16 mode)
  }
  if (dw) {
    const Tensor x = as_f32(x_in);
    *dw = d.empty({Out, In}, DType::F32);
    if (dw->numel()) gemm(d, false, true, In, Out, N, x.raw(), In, dy.raw(), Out, dw->raw(), In);
  }
  if (db) {
    *db = d.empty({Out}, DType::F32);
    const Tensor ones = Tensor::full({N}, 1.0, DType::F32, d.device());
    if (Out)
      gemm(d, false, false, Out, 1, N, dy.raw(), Out, ones.raw(), std::max<int64_t>(N, 1),
           db->raw(), Out);
  }
  MC_CUDA_LAUNCHED("linear backward");
}

}  // namespace mc::cuda
