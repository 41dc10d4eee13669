// CUDA prims: 3-D convolution through cuDNN's convolution API (N-d descriptors).
//
// Each (direction, shape, dtype, layout, math mode, operand alignment) gets a plan once:
// descriptors plus the algorithm cudnnFind*AlgorithmEx measured fastest (deterministic ones only
// in deterministic mode). Plans are cached per device (key: engine/cuda/conv_plan.h), so a warm
// step only looks up and launches. Workspaces come from the caching allocator and go back to it
// after the launch (stream order keeps that safe).
//
// Precision: fp32 runs FMA kernels only (CUDNN_FMA_MATH: on Ampere and later DEFAULT_MATH would
// let cuDNN use TF32); tf32 and bf16 run tensor-op math. We never take an algorithm whose math
// type is TENSOR_OP_MATH_ALLOW_CONVERSION: that one may round fp32 data down to fp16.
// Layout: the activation input's layout tag (NDHWC activations take cuDNN's NHWC filter
// format); the program picks it once (engine/precision.h's ComputeMode).
#include <algorithm>
#include <unordered_map>

#include "engine/cuda/conv_plan.h"
#include "engine/cuda/dnn.h"
#include "engine/cuda/util.h"
#include "engine/precision.h"

namespace mc::cuda {
namespace {

using Dir = ConvDir;
using Key = ConvPlanKey;
using KeyHash = ConvPlanKeyHash;
using prims::to_layout;

struct Plan {
  TensorDesc x, y, bias;  // y: the output of the forward conv (dy in backward)
  FilterDesc w;
  ConvDesc conv;
  int algo = 0;
  size_t workspace = 0;
};

// Plans per device; a plan, once made, is never removed (a model has a few dozen shapes).
std::mutex g_plans_mu;
std::unordered_map<int, std::unordered_map<Key, std::unique_ptr<Plan>, KeyHash>> g_plans;

cudnnMathType_t math_for(DType dt) {
  if (dt == DType::F32 && precision() == Precision::FP32) return CUDNN_FMA_MATH;
  return CUDNN_TENSOR_OP_MATH;
}

// The dtype and layout a convolution computes in, given its activation input.
DType compute_dtype(const Tensor& t) {
  return t.dtype() == DType::BF16 || precision() == Precision::BF16 ? DType::BF16 : DType::F32;
}
Layout compute_layout(const Tensor& t) { return t.dim() == 5 ? t.layout() : Layout::NCDHW; }

Key make_key(Dir dir, DType dt, Layout l, const ConvGeom& g, const Tensor& a, const Tensor& b,
             const Tensor& c) {
  return conv_plan_key(dir, dt, l, int(math_for(dt)), deterministic(), g, a.raw(), b.raw(),
                       c.raw());
}

void describe_plan(Plan& p, const Key& k, const ConvGeom& g) {
  describe(p.x, k.dt, {g.N, g.C, g.D, g.H, g.W}, k.layout);
  describe(p.y, k.dt, {g.N, g.O, g.oD(), g.oH(), g.oW()}, k.layout);
  describe_channels(p.bias, k.dt, g.O, 5);
  const int wdim[5] = {int(g.O), int(g.C / g.groups), int(g.k[0]), int(g.k[1]), int(g.k[2])};
  MC_CUDNN_CHECK(cudnnSetFilterNdDescriptor(
      p.w, cudnn_dtype(k.dt),
      k.layout == Layout::NDHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW, 5, wdim));
  const int pad[3] = {int(g.pad[0]), int(g.pad[1]), int(g.pad[2])};
  const int str[3] = {int(g.stride[0]), int(g.stride[1]), int(g.stride[2])};
  const int dil[3] = {int(g.dil[0]), int(g.dil[1]), int(g.dil[2])};
  MC_CUDNN_CHECK(cudnnSetConvolutionNdDescriptor(p.conv, 3, pad, str, dil, CUDNN_CROSS_CORRELATION,
                                                 CUDNN_DATA_FLOAT));  // accumulate in fp32
  MC_CUDNN_CHECK(cudnnSetConvolutionGroupCount(p.conv, int(g.groups)));
  MC_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, cudnnMathType_t(k.math)));
  int out[5];
  MC_CUDNN_CHECK(cudnnGetConvolutionNdForwardOutputDim(p.conv, p.x, p.w, 5, out));
  MC_CHECK(out[2] == g.oD() && out[3] == g.oH() && out[4] == g.oW(),
           "conv3d: cuDNN's output extent differs from ours");
}

// Picks from cudnnFind*'s results (fastest first): status OK, an allowed math type, and a
// deterministic algorithm when asked for.
template <class Perf> const Perf* choose(const Perf* r, int n, const Key& k) {
  for (int i = 0; i < n; ++i) {
    if (r[i].status != CUDNN_STATUS_SUCCESS) continue;
    if (r[i].mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    if (k.math == int(CUDNN_FMA_MATH) && r[i].mathType == CUDNN_TENSOR_OP_MATH) continue;
    if (k.det && r[i].determinism != CUDNN_DETERMINISTIC) continue;
    return &r[i];
  }
  MC_FAIL("conv3d: cuDNN has no usable algorithm for this convolution (",
          k.det ? "deterministic, " : "", "math type ", int(k.math), ")");
}

// Workspace for the search: the largest any algorithm asks for, within a budget (FFT variants
// can ask for many GiB on 3-D volumes; they are never the ones we want).
template <class SizeOf> size_t search_workspace(int count, SizeOf&& size_of) {
  size_t want = 0;
  for (int a = 0; a < count; ++a) {
    size_t s = 0;
    if (size_of(a, &s) == CUDNN_STATUS_SUCCESS) want = std::max(want, s);
  }
  size_t free_b = 0, total_b = 0;
  MC_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  const size_t budget = std::min<size_t>(free_b / 4, size_t(4) << 30);
  return std::min(want, budget);
}

// Finds or makes the plan; `run_search` runs cudnnFind* with the plan and a workspace.
template <class Search>
Plan& plan_for(const OnDevice& d, const Key& k, const ConvGeom& g, Search&& run_search) {
  {
    std::lock_guard<std::mutex> lk(g_plans_mu);
    auto& m = g_plans[d.dev];
    auto it = m.find(k);
    if (it != m.end()) return *it->second;
  }
  auto p = std::make_unique<Plan>();
  describe_plan(*p, k, g);
  run_search(*p);  // sets algo and workspace
  // The search's workspace (up to GiBs, once per shape) would otherwise sit in the cache in a
  // size class nothing else uses. Only the first step searches, so the sync costs nothing later.
  allocator(d.dev).empty_cache();
  std::lock_guard<std::mutex> lk(g_plans_mu);
  auto& slot = g_plans[d.dev][k];
  if (!slot) slot = std::move(p);
  return *slot;
}

Tensor workspace(const OnDevice& d, size_t bytes) {
  return bytes ? d.empty({int64_t(bytes)}, DType::U8) : Tensor();
}
void* ptr(const Tensor& t) { return t.defined() ? t.raw() : nullptr; }

}  // namespace

Tensor conv3d_forward(const Tensor& x_in, const Tensor& w_in, const Tensor& b, const ConvGeom& g) {
  OnDevice d(x_in, "conv3d");
  same_device(d, w_in, "conv3d", "weight");
  same_device(d, b, "conv3d", "bias");
  const DType dt = compute_dtype(x_in);
  const Layout lay = compute_layout(x_in);
  const Tensor x = to_layout(x_in, lay, dt), w = to_layout(w_in, lay, dt);
  Tensor y = d.empty({g.N, g.O, g.oD(), g.oH(), g.oW()}, dt, lay);
  cudnnHandle_t h = cudnn(d.dev);
  const Key k = make_key(Dir::Fwd, dt, lay, g, x, w, y);
  Plan& p = plan_for(d, k, g, [&](Plan& q) {
    const size_t ws_bytes =
        search_workspace(CUDNN_CONVOLUTION_FWD_ALGO_COUNT, [&](int a, size_t* s) {
          return cudnnGetConvolutionForwardWorkspaceSize(h, q.x, q.w, q.conv, q.y,
                                                         cudnnConvolutionFwdAlgo_t(a), s);
        });
    Tensor ws = workspace(d, ws_bytes);
    cudnnConvolutionFwdAlgoPerf_t r[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    int n = 0;
    MC_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(
        h, q.x, x.raw(), q.w, w.raw(), q.conv, q.y, y.raw(), CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n,
        r, ptr(ws), ws_bytes));
    const auto* best = choose(r, n, k);
    q.algo = int(best->algo);
    q.workspace = best->memory;
    if (k.math != int(CUDNN_FMA_MATH))
      MC_CUDNN_CHECK(cudnnSetConvolutionMathType(q.conv, best->mathType));
  });
  Tensor ws = workspace(d, p.workspace);
  const float one = 1.f, zero = 0.f;
  MC_CUDNN_CHECK(cudnnConvolutionForward(h, &one, p.x, x.raw(), p.w, w.raw(), p.conv,
                                         cudnnConvolutionFwdAlgo_t(p.algo), ptr(ws), p.workspace,
                                         &zero, p.y, y.raw()));
  if (b.defined()) {
    const Tensor bc = to_layout(b, Layout::NCDHW, dt);
    MC_CUDNN_CHECK(cudnnAddTensor(h, &one, p.bias, bc.raw(), &one, p.y, y.raw()));
  }
  MC_CUDA_LAUNCHED("conv3d forward");
  return y;
}

Tensor conv3d_backward_data(const Tensor& dy_in, const Tensor& w_in, const ConvGeom& g) {
  OnDevice d(dy_in, "conv3d backward");
  same_device(d, w_in, "conv3d backward", "weight");
  const DType dt = compute_dtype(dy_in);
  const Layout lay = compute_layout(dy_in);
  const Tensor dy = to_layout(dy_in, lay, dt), w = to_layout(w_in, lay, dt);
  Tensor dx = d.empty({g.N, g.C, g.D, g.H, g.W}, dt, lay);
  cudnnHandle_t h = cudnn(d.dev);
  const Key k = make_key(Dir::Data, dt, lay, g, w, dy, dx);
  Plan& p = plan_for(d, k, g, [&](Plan& q) {
    const size_t ws_bytes =
        search_workspace(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, [&](int a, size_t* s) {
          return cudnnGetConvolutionBackwardDataWorkspaceSize(h, q.w, q.y, q.conv, q.x,
                                                              cudnnConvolutionBwdDataAlgo_t(a), s);
        });
    Tensor ws = workspace(d, ws_bytes);
    cudnnConvolutionBwdDataAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    int n = 0;
    MC_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
        h, q.w, w.raw(), q.y, dy.raw(), q.conv, q.x, dx.raw(),
        CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, r, ptr(ws), ws_bytes));
    const auto* best = choose(r, n, k);
    q.algo = int(best->algo);
    q.workspace = best->memory;
    if (k.math != int(CUDNN_FMA_MATH))
      MC_CUDNN_CHECK(cudnnSetConvolutionMathType(q.conv, best->mathType));
  });
  Tensor ws = workspace(d, p.workspace);
  const float one = 1.f, zero = 0.f;
  MC_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &one, p.w, w.raw(), p.y, dy.raw(), p.conv,
                                              cudnnConvolutionBwdDataAlgo_t(p.algo), ptr(ws),
                                              p.workspace, &zero, p.x, dx.raw()));
  MC_CUDA_LAUNCHED("conv3d backward data");
  return dx;
}

Tensor conv3d_backward_weight(const Tensor& x_in, const Tensor& dy_in, const ConvGeom& g,
                              Tensor* db) {
  OnDevice d(x_in, "conv3d backward");
  same_device(d, dy_in, "conv3d backward", "output gradient");
  const DType dt = compute_dtype(dy_in);
  const Layout lay = compute_layout(x_in);
  const Tensor x = to_layout(x_in, lay, dt), dy = to_layout(dy_in, lay, dt);
  // Weights are f32 masters in every mode: dw comes back f32, NCDHW, whatever cuDNN ran in.
  Tensor dw = d.empty({g.O, g.C / g.groups, g.k[0], g.k[1], g.k[2]}, dt, lay);
  cudnnHandle_t h = cudnn(d.dev);
  const Key k = make_key(Dir::Filter, dt, lay, g, x, dy, dw);
  Plan& p = plan_for(d, k, g, [&](Plan& q) {
    const size_t ws_bytes =
        search_workspace(CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, [&](int a, size_t* s) {
          return cudnnGetConvolutionBackwardFilterWorkspaceSize(
              h, q.x, q.y, q.conv, q.w, cudnnConvolutionBwdFilterAlgo_t(a), s);
        });
    Tensor ws = workspace(d, ws_bytes);
    cudnnConvolutionBwdFilterAlgoPerf_t r[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int n = 0;
    MC_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
        h, q.x, x.raw(), q.y, dy.raw(), q.conv, q.w, dw.raw(),
        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, r, ptr(ws), ws_bytes));
    const auto* best = choose(r, n, k);
    q.algo = int(best->algo);
    q.workspace = best->memory;
    if (k.math != int(CUDNN_FMA_MATH))
      MC_CUDNN_CHECK(cudnnSetConvolutionMathType(q.conv, best->mathType));
  });
  Tensor ws = workspace(d, p.workspace);
  const float one = 1.f, zero = 0.f;
  MC_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &one, p.x, x.raw(), p.y, dy.raw(), p.conv,
                                                cudnnConvolutionBwdFilterAlgo_t(p.algo), ptr(ws),
                                                p.workspace, &zero, p.w, dw.raw()));
  if (db) {
    Tensor dbc = d.empty({g.O}, dt);
    const cudnnStatus_t st =
        cudnnConvolutionBackwardBias(h, &one, p.y, dy.raw(), &zero, p.bias, dbc.raw());
    if (st == CUDNN_STATUS_NOT_SUPPORTED && dt == DType::BF16) {  // not every cuDNN sums bf16
      note_once("conv-bias-bf16", "cuDNN does not sum bf16 bias gradients; summing in f32");
      const Tensor dyf = to_layout(dy, lay, DType::F32);
      TensorDesc yd, bd;
      describe(yd, DType::F32, dy.shape(), lay);
      describe_channels(bd, DType::F32, g.O, 5);
      dbc = d.empty({g.O}, DType::F32);
      MC_CUDNN_CHECK(cudnnConvolutionBackwardBias(h, &one, yd, dyf.raw(), &zero, bd, dbc.raw()));
    } else {
      MC_CUDNN_CHECK_STATUS(st, "cudnnConvolutionBackwardBias");
    }
    *db = to_layout(dbc, Layout::NCDHW, DType::F32);
  }
  MC_CUDA_LAUNCHED("conv3d backward weight");
  return to_layout(dw, Layout::NCDHW, DType::F32);
}

}  // namespace mc::cuda
