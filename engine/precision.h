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

// Channels-last (NDHWC) activations for tensor-core convolutions: the first convolution turns
// an NCDHW input into NDHWC and every op after keeps the layout tag it was given.
void set_channels_last(bool on);
bool channels_last();

// Deterministic mode: cuDNN algorithm choice is restricted to deterministic algorithms.
void set_deterministic(bool on);
bool deterministic();

// Sets a mode for a scope (tests, benchmarks) and restores the previous settings.
class PrecisionScope {
 public:
  explicit PrecisionScope(Precision p, bool channels_last = mc::channels_last());
  ~PrecisionScope();
  PrecisionScope(const PrecisionScope&) = delete;
  PrecisionScope& operator=(const PrecisionScope&) = delete;

 private:
  Precision prev_;
  bool prev_cl_;
};

}  // namespace mc
