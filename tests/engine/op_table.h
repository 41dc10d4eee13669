// The backend-ops table (ggml's test-backend-ops): one row per op and shape set, the single
// source of
//   * the float64 gradient checks on the CPU (rows with `gradcheck`),
//   * the CPU layout checks: NDHWC computes exactly what NCDHW does (rows with `layouts`),
//   * the CPU-vs-CUDA parity checks per precision and layout (rows with `precisions`; they skip
//     without a GPU), and
//   * mc_bench --case op:NAME, which times a row's forward and backward (--list names them).
// tests/engine/backend_ops_test.cpp runs the loops. Depends on the engine only (no gtest), so
// mc_bench compiles it too.
//
// A new op is a row here plus its code: nothing else in the tests changes.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/precision.h"
#include "engine/tensor.h"

namespace mc::optable {

// The comparison rule (DESIGN: "One test compares backends"): elementwise
// |got - ref| <= atol * max|ref| + rtol * |ref|, and max|got - ref| / max|ref| <= whole.
struct Tol {
  double rtol = 0, atol = 0, whole = 0;
};
// Tolerance classes: what an op's numerics allow, per precision (tol() says the numbers).
enum class TolClass {
  Exact,        // one rounding per element: bit-equal (a bf16 result against the rounded ref)
  Sum,          // a long reduction in double
  Softmax,      // softmax / log-softmax forward, statistics in double
  SoftmaxGrad,  // their backward, and the loss gradient
  Loss,         // the fused cross-entropy's value
  Linear,       // cuBLAS (fp32 pedantic, tf32 tensor cores, bf16 input widened)
  Conv,         // cuDNN convolution
  BnOut,        // batch norm's output and input gradient
  BnStats,      // batch-norm statistics and parameter gradients (f32 in every precision)
  BnEval,       // eval-mode batch norm's output and input gradient
  Gap,          // global average pool forward (float accumulation on the GPU)
  GapGrad,      // its backward
  Step,         // a whole training step: every layer rounds its activations
};
Tol tol(TolClass c, Precision p);

// How the loops prepare an input.
enum class Role {
  Activation,  // the op's data: on the GPU in the precision's activation dtype (bf16 in bf16)
               // and the run's layout (5-D); rounded to bf16 for the bf16 reference
  Weight,      // f32 on every device; rounded to bf16 for the bf16 reference (the GPU casts it)
  Param,       // f32 on every device, never rounded (biases, statistics, moments)
  Index,       // integer data (labels), as it is
};

struct Input {
  Tensor value;  // on the CPU, NCDHW, in the dtype make() was asked for (integers as they are)
  Role role = Role::Activation;
  bool grad = true;                      // check d(out0)/d(this input)
  TolClass grad_tol = TolClass::Exact;   // for that gradient, in parity runs
};

struct Row {
  std::string name;    // unique; mc_bench --case op:NAME
  std::string family;  // the kernel family: GPU tests are named Cuda<family>/... (e.g. CudaConv)
  // The inputs, on the CPU in `dt` (F64 for gradient checks, F32 otherwise), from fixed seeds.
  std::function<std::vector<Input>(DType dt)> make;
  // Runs the op through the engine on the given tensors (any device). outputs[0] is the
  // differentiable result when `backward`; later outputs (running statistics, argmax, ...) are
  // compared too.
  std::function<std::vector<Tensor>(const std::vector<Tensor>&)> run;
  bool backward = true;     // outputs[0] is differentiable: gradients are checked
  bool gradcheck = false;   // float64 finite differences on the CPU
  double grad_tol = 1e-6;   //   with this tolerance
  uint64_t grad_seed = 0;   //   the projection R = randn(out.shape, grad_seed + 99)
  uint64_t dy_seed = 0;     // parity: d(out0) = randn(out.shape, dy_seed)
  bool layouts = false;     // 5-D activations: also NDHWC (CPU layout check, parity)
  std::vector<Precision> precisions;  // parity runs on the GPU ({}: none)
  TolClass fwd = TolClass::Exact, extra = TolClass::Exact;
  bool deterministic = false;  // the GPU forward repeats bit for bit
  // Inputs too big for a CPU reference of the whole batch: outputs[0] and the activation's
  // gradient are checked on the first and last sample against the CPU, the other gradients
  // against the GPU's own fp32 NCDHW result (batch-separable ops only).
  bool sampled = false;
};

const std::vector<Row>& rows();
const Row& row(const std::string& name);  // throws naming the rows

}  // namespace mc::optable
