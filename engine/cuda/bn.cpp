// Batch norm on the GPU through cuDNN (spatial mode: statistics per channel over N and space).
//
// Activations may be f32 or bf16, NCDHW or NDHWC; weight, bias, running and saved statistics are
// always f32 (cuDNN derives an f32 parameter descriptor for bf16 data), so statistics stay fp32
// in every precision. Running statistics follow PyTorch: r = (1 - m) r + m * batch, with the
// unbiased batch variance in running_var; cuDNN's exponentialAverageFactor is that m (PyTorch
// hands it its momentum the same way). Channels-last uses SPATIAL_PERSISTENT, cuDNN's fast NHWC
// path; NCDHW uses plain SPATIAL.
//
// Fallbacks: when cuDNN answers NOT_SUPPORTED for a configuration (persistent mode, or bf16 data,
// depending on the library version), that configuration (dtype, layout and shape) is redone the
// slower way (SPATIAL; or widened to f32) and remembered, and stderr says so once. Any other
// status, BAD_PARAM included, is an error: it means a descriptor bug, which a fallback would
// hide. The training backward runs the mode its forward ran (BNSaved::cudnn_mode).
#include <mutex>
#include <set>
#include <string>

#include "engine/cuda/dnn.h"
#include "engine/cuda/util.h"

namespace mc::cuda {
namespace {

using prims::BNSaved;
using prims::to_layout;

void check_activation(const Tensor& x, const char* op) {
  MC_CHECK(x.dim() >= 2 && x.dim() <= 5, op, ": input must be [N, C] to [N, C, D, H, W], got ",
           x.str());
  MC_CHECK(x.dtype() == DType::F32 || x.dtype() == DType::BF16, op,
           ": the CUDA path takes f32 or bf16 activations, got ", x.str());
}

// A per-channel f32 parameter on the op's device, or a constant stand-in when it is undefined
// (affine=False).
Tensor param(const OnDevice& d, const Tensor& t, int64_t C, double fill, const char* op,
             const char* what) {
  if (t.defined()) {
    same_device(d, t, op, what);
    MC_CHECK(t.dtype() == DType::F32 && t.numel() == C, op, ": ", what, " must be f32[", C,
             "], got ", t.str());
    return t;
  }
  return Tensor::full({C}, fill, DType::F32, d.device());
}

struct Descs {
  TensorDesc x, bn;
  Descs(const Tensor& x_, cudnnBatchNormMode_t mode) {
    describe(x, x_.dtype(), x_.shape(), x_.layout());
    MC_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(bn, x, mode));
  }
};

const float kOne = 1.f, kZero = 0.f;

// Configurations cuDNN answered NOT_SUPPORTED for, in this process.
class Refused {
 public:
  bool has(const std::string& k) {
    std::lock_guard<std::mutex> lk(mu_);
    return keys_.count(k) != 0;
  }
  void add(const std::string& k) {
    std::lock_guard<std::mutex> lk(mu_);
    keys_.insert(k);
  }

 private:
  std::mutex mu_;
  std::set<std::string> keys_;
};
Refused& refused() {
  static Refused* r = new Refused;  // never destroyed: used until exit
  return *r;
}

std::string config(const char* what, const Tensor& x) {
  return detail::cat(what, " ", dtype_name(x.dtype()), shape_str(x.shape()),
                     x.layout() == Layout::NDHWC ? " NDHWC" : " NCDHW");
}

cudnnBatchNormMode_t train_mode(const Tensor& x) {
  return x.layout() == Layout::NDHWC && x.dim() == 5 && !refused().has(config("persistent", x))
             ? CUDNN_BATCHNORM_SPATIAL_PERSISTENT
             : CUDNN_BATCHNORM_SPATIAL;
}

// Whether cuDNN runs batch norm on x's bf16 data itself (else: widen, normalise, narrow).
bool native(const Tensor& x) {
  return x.dtype() != DType::BF16 || !refused().has(config("bf16", x));
}

// After a call: true when it must be redone without what cuDNN refused (the persistent mode
// first, then bf16 data); false when it succeeded; throws for every other status.
bool refused_call(cudnnStatus_t st, const Tensor& x, cudnnBatchNormMode_t mode, const char* call) {
  if (st == CUDNN_STATUS_SUCCESS) return false;
  if (st == CUDNN_STATUS_NOT_SUPPORTED && mode == CUDNN_BATCHNORM_SPATIAL_PERSISTENT) {
    const std::string k = config("persistent", x);
    refused().add(k);
    note_once(k, detail::cat("cuDNN refused ", call, " in SPATIAL_PERSISTENT mode for ", k.substr(11),
                             "; running plain SPATIAL batch norm for that shape"));
    return true;
  }
  if (st == CUDNN_STATUS_NOT_SUPPORTED && x.dtype() == DType::BF16) {
    const std::string k = config("bf16", x);
    refused().add(k);
    note_once(k, detail::cat("cuDNN refused ", call, " on bf16 data for ", k.substr(5),
                             "; normalising in f32 for that shape"));
    return true;
  }
  MC_CUDNN_CHECK_STATUS(st, call);
  return false;
}

Tensor widen(const Tensor& t) { return to_layout(t, t.layout(), DType::F32); }
Tensor narrow(const Tensor& t, DType dt) { return to_layout(t, t.layout(), dt); }

}  // namespace

Tensor batchnorm_forward_train(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& rm,
                               Tensor& rv, double momentum, double eps, BNSaved& saved) {
  OnDevice d(x, "batch_norm");
  check_activation(x, "batch_norm");
  const int64_t C = x.size(1);
  MC_CHECK(x.numel() / C > 1, "batch_norm: training needs more than one value per channel, got ",
           x.str());
  MC_CHECK(rm.defined() == rv.defined(), "batch_norm: running mean and variance go together");
  if (rm.defined()) {
    param(d, rm, C, 0, "batch_norm", "running_mean");
    param(d, rv, C, 1, "batch_norm", "running_var");
  }
  if (!native(x))
    return narrow(cuda::batchnorm_forward_train(widen(x), w, b, rm, rv, momentum, eps, saved),
                  x.dtype());
  const Tensor wc = param(d, w, C, 1, "batch_norm", "weight");
  const Tensor bc = param(d, b, C, 0, "batch_norm", "bias");
  const cudnnBatchNormMode_t mode = train_mode(x);
  Descs ds(x, mode);
  Tensor y = d.empty(x.shape(), x.dtype(), x.layout());
  saved.mean = d.empty({C}, DType::F32);
  saved.invstd = d.empty({C}, DType::F32);
  saved.eps = eps;
  saved.cudnn_mode = int(mode);
  const cudnnStatus_t st = cudnnBatchNormalizationForwardTraining(
      cudnn(d.dev), mode, &kOne, &kZero, ds.x, x.raw(), ds.x, y.raw(), ds.bn, wc.raw(), bc.raw(),
      momentum, rm.defined() ? rm.raw() : nullptr, rv.defined() ? rv.raw() : nullptr, eps,
      saved.mean.raw(), saved.invstd.raw());
  if (refused_call(st, x, mode, "cudnnBatchNormalizationForwardTraining"))
    return cuda::batchnorm_forward_train(x, w, b, rm, rv, momentum, eps, saved);
  MC_CUDA_LAUNCHED("batch_norm forward");
  return y;
}

Tensor batchnorm_forward_eval(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm,
                              const Tensor& rv, double eps) {
  OnDevice d(x, "batch_norm");
  check_activation(x, "batch_norm");
  const int64_t C = x.size(1);
  param(d, rm, C, 0, "batch_norm", "running_mean");
  param(d, rv, C, 1, "batch_norm", "running_var");
  if (!native(x))
    return narrow(cuda::batchnorm_forward_eval(widen(x), w, b, rm, rv, eps), x.dtype());
  const Tensor wc = param(d, w, C, 1, "batch_norm", "weight");
  const Tensor bc = param(d, b, C, 0, "batch_norm", "bias");
  Descs ds(x, CUDNN_BATCHNORM_SPATIAL);
  Tensor y = d.empty(x.shape(), x.dtype(), x.layout());
  const cudnnStatus_t st = cudnnBatchNormalizationForwardInference(
      cudnn(d.dev), CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, ds.x, x.raw(), ds.x, y.raw(), ds.bn,
      wc.raw(), bc.raw(), rm.raw(), rv.raw(), eps);
  if (refused_call(st, x, CUDNN_BATCHNORM_SPATIAL, "cudnnBatchNormalizationForwardInference"))
    return cuda::batchnorm_forward_eval(x, w, b, rm, rv, eps);
  MC_CUDA_LAUNCHED("batch_norm forward (eval)");
  return y;
}

Tensor batchnorm_backward_train(const Tensor& x, const Tensor& dy_in, const Tensor& w,
                                const BNSaved& saved, Tensor& dw, Tensor& db) {
  OnDevice d(x, "batch_norm backward");
  check_activation(x, "batch_norm backward");
  const int64_t C = x.size(1);
  if (!native(x))
    return narrow(cuda::batchnorm_backward_train(widen(x), widen(dy_in), w, saved, dw, db),
                  x.dtype());
  const Tensor dy = to_layout(dy_in, x.layout(), x.dtype());  // cuDNN: one descriptor for x, dy, dx
  const Tensor wc = param(d, w, C, 1, "batch_norm backward", "weight");
  param(d, saved.mean, C, 0, "batch_norm backward", "saved mean");
  param(d, saved.invstd, C, 0, "batch_norm backward", "saved inverse std");
  // The forward's mode (its saved statistics are for that mode); one cuDNN later refused for
  // this configuration falls back to SPATIAL, which recomputes the statistics from x.
  cudnnBatchNormMode_t mode =
      saved.cudnn_mode >= 0 ? cudnnBatchNormMode_t(saved.cudnn_mode) : train_mode(x);
  if (mode == CUDNN_BATCHNORM_SPATIAL_PERSISTENT && train_mode(x) != mode)
    mode = CUDNN_BATCHNORM_SPATIAL;
  const bool use_saved = mode == cudnnBatchNormMode_t(saved.cudnn_mode);
  Descs ds(x, mode);
  Tensor dx = d.empty(x.shape(), x.dtype(), x.layout());
  dw = d.empty({C}, DType::F32);
  db = d.empty({C}, DType::F32);
  const cudnnStatus_t st = cudnnBatchNormalizationBackward(
      cudnn(d.dev), mode, &kOne, &kZero, &kOne, &kZero, ds.x, x.raw(), ds.x, dy.raw(), ds.x,
      dx.raw(), ds.bn, wc.raw(), dw.raw(), db.raw(), saved.eps,
      use_saved ? saved.mean.raw() : nullptr, use_saved ? saved.invstd.raw() : nullptr);
  if (refused_call(st, x, mode, "cudnnBatchNormalizationBackward"))
    return cuda::batchnorm_backward_train(x, dy_in, w, saved, dw, db);
  MC_CUDA_LAUNCHED("batch_norm backward");
  return dx;
}

// Eval mode normalises with fixed statistics, so the op is per-channel affine:
//   dx = dy * w * invstd,  db = sum(dy),  dw = sum(dy * (x - rm) * invstd),
// invstd = 1 / sqrt(rv + eps). cuDNN's inference batch norm computes both affine maps (dx with
// mean 0, and x_hat with scale 1); its reduction sums over N and space. Rare (frozen BN
// fine-tuning), so it favours few moving parts over speed.
Tensor batchnorm_backward_eval(const Tensor& x, const Tensor& dy_in, const Tensor& w,
                               const Tensor& rm, const Tensor& rv, double eps, Tensor& dw,
                               Tensor& db) {
  OnDevice d(x, "batch_norm backward");
  check_activation(x, "batch_norm backward");
  const int64_t C = x.size(1);
  param(d, rm, C, 0, "batch_norm backward", "running_mean");
  param(d, rv, C, 1, "batch_norm backward", "running_var");
  const Tensor wc = param(d, w, C, 1, "batch_norm backward", "weight");
  const Tensor zeros = param(d, Tensor(), C, 0, "", ""), ones = param(d, Tensor(), C, 1, "", "");
  cudnnHandle_t h = cudnn(d.dev);
  // In f32 throughout: cuDNN's tensor reduction and op-tensor want one dtype everywhere.
  const Tensor xf = to_layout(x, x.layout(), DType::F32);
  const Tensor dyf = to_layout(dy_in, x.layout(), DType::F32);
  Descs ds(xf, CUDNN_BATCHNORM_SPATIAL);

  Tensor dxf = d.empty(x.shape(), DType::F32, x.layout());
  MC_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      h, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, ds.x, dyf.raw(), ds.x, dxf.raw(), ds.bn, wc.raw(),
      zeros.raw(), zeros.raw(), rv.raw(), eps));
  Tensor prod = d.empty(x.shape(), DType::F32, x.layout());  // x_hat, then dy * x_hat
  MC_CUDNN_CHECK(cudnnBatchNormalizationForwardInference(
      h, CUDNN_BATCHNORM_SPATIAL, &kOne, &kZero, ds.x, xf.raw(), ds.x, prod.raw(), ds.bn,
      ones.raw(), zeros.raw(), rm.raw(), rv.raw(), eps));
  OpTensorDesc mul;
  MC_CUDNN_CHECK(
      cudnnSetOpTensorDescriptor(mul, CUDNN_OP_TENSOR_MUL, CUDNN_DATA_FLOAT, CUDNN_PROPAGATE_NAN));
  MC_CUDNN_CHECK(cudnnOpTensor(h, mul, &kOne, ds.x, prod.raw(), &kOne, ds.x, dyf.raw(), &kZero,
                               ds.x, prod.raw()));

  ReduceDesc sum;
  MC_CUDNN_CHECK(cudnnSetReduceTensorDescriptor(sum, CUDNN_REDUCE_TENSOR_ADD, CUDNN_DATA_FLOAT,
                                                CUDNN_PROPAGATE_NAN, CUDNN_REDUCE_TENSOR_NO_INDICES,
                                                CUDNN_32BIT_INDICES));
  TensorDesc per_channel;
  describe_channels(per_channel, DType::F32, C, size_t(x.dim()));
  size_t ws_bytes = 0;
  MC_CUDNN_CHECK(cudnnGetReductionWorkspaceSize(h, sum, ds.x, per_channel, &ws_bytes));
  Tensor ws = ws_bytes ? d.empty({int64_t(ws_bytes)}, DType::U8) : Tensor();
  void* wsp = ws.defined() ? ws.raw() : nullptr;
  dw = d.empty({C}, DType::F32);
  db = d.empty({C}, DType::F32);
  MC_CUDNN_CHECK(cudnnReduceTensor(h, sum, nullptr, 0, wsp, ws_bytes, &kOne, ds.x, prod.raw(),
                                   &kZero, per_channel, dw.raw()));
  MC_CUDNN_CHECK(cudnnReduceTensor(h, sum, nullptr, 0, wsp, ws_bytes, &kOne, ds.x, dyf.raw(),
                                   &kZero, per_channel, db.raw()));
  MC_CUDA_LAUNCHED("batch_norm backward (eval)");
  return to_layout(dxf, x.layout(), x.dtype());
}

}  // namespace mc::cuda
