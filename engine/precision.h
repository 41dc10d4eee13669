// Process-wide numeric settings of the CUDA backend (config key `precision`). Master weights,
// batch-norm statistics and the loss stay fp32 in every mode; the mode picks how convolutions
// and matrix products compute:
//   fp32  plain fp32 FMA kernels, no TF32 (cuDNN CUDNN_FMA_MATH, cuBLAS pedantic fp32)
//   tf32  fp32 tensors, tensor-core TF32 products (cuDNN tensor-op math, cuBLAS fast TF32)
//   bf16  bf16 activations and convolutions (weights cast on the fly), fp32 accumulation
// The CPU backend ignores these (it always computes in the tensors' own dtype).
#pragma once
#include <string>

#include "engine/dtype.h"

namespace mc {

enum class Precision : uint8_t { FP32, TF32, BF16 };

void set_precision(Precision p);
Precision precision();
const char* precision_name(Precision p);          // "fp32", "tf32", "bf16"
Precision parse_precision(const std::string& s);  // throws naming the allowed values
// The dtype activations take on the GPU in the current mode (BF16 in bf16, else F32).
DType activation_dtype();

// What a program computes in, chosen once from its precision config (compute_mode_for): the
// process-wide precision above, and the memory layout of the model's input. The layout is not a
// process-wide setting: the program converts its input once with to_layout(x, mode.layout)
// (engine/ops.h) before the first op, and every op keeps the layout tag its input carries.
//   CUDA, tf32 or bf16  NDHWC: tensor-core convolutions and cuDNN's persistent batch norm want
//                       channels last
//   CUDA, fp32          NCDHW: FMA convolutions gain nothing from NDHWC, and cuDNN's NCDHW
//                       kernels are its most tested
//   CPU                 NCDHW (the CPU computes NDHWC exactly as NCDHW, only slower)
struct ComputeMode {
  Precision precision = Precision::FP32;
  Layout layout = Layout::NCDHW;
};
ComputeMode compute_mode_for(Precision p, Device d);
// Sets the precision of `m` process-wide (the layout is applied to tensors, not set).
void apply(const ComputeMode& m);

// Deterministic mode: cuDNN algorithm choice is restricted to deterministic algorithms.
void set_deterministic(bool on);
bool deterministic();

// Sets a precision for a scope (tests, benchmarks) and restores the previous one.
class PrecisionScope {
 public:
  explicit PrecisionScope(Precision p);
  ~PrecisionScope();
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  Precision prev_;
};

}  // namespace mc
