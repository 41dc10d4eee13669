// mc_bench --case loss | auc (see loss_metric_cases.h).
//
// loss: kernels::cuda::cross_entropy_fused, mean reduction, forward + gradient (what a training
//   step runs), f32, at 1M x 3 and 64K x 1000, plain and with per-class offset + weights.
//   Effective GB/s counts what the op must move at least: logits read once, gradient written once,
//   labels read once (offset and weights are C floats: ignored). The kernel reads more than that
//   (labels twice for the mean's weight sum; a C = 1000 row twice, mostly from cache), which is
//   exactly what the number should expose. The yardstick is cudaMemcpyAsync D2D of 1 GiB in the
//   same run and the same timing (bytes read + written).
// auc: per-class one-vs-rest ROC AUC, 3 classes, 10M rows: the kernels alone (CUB sort of each
//   column + tie-aware rank sums) and engine/metrics' classification_metrics (every metric,
//   validation and host read-back included: what an evaluation pays).
//
// Timing: CUDA events on the engine's stream, warm-up, median of repeats. The 1M x 3 loss moves
// 32 MB, less than an H100's 50 MB L2, so repeats would be served from L2; each repeat therefore
// uses the next of several identical buffer sets, enough that the others add up to twice the L2.
// bench_loss_metrics.py does the same for PyTorch.
#include "loss_metric_cases.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <functional>

#include "engine/device.h"
#include "engine/dispatch.h"
#include "engine/memory.h"
#include "engine/metrics.h"
#include "engine/tensor.h"
#include "kernels/loss.h"
#include "kernels/metrics.h"
#include <nlohmann/json.hpp>

namespace mc::bench {
namespace {

const Device kGpu = Device::cuda();

void print(const LossMetricRecord& r) {
  std::printf("%-5s %-48s %9lld x %-5lld", r.kind.c_str(), r.name.c_str(), (long long)r.n,
              (long long)r.c);
  if (!r.error.empty()) {
    std::printf("  failed: %s\n", r.error.c_str());
    return;
  }
  std::printf(" %10.3f ms", r.ms);
  if (r.gb_per_s > 0) std::printf(" %8.1f GB/s", r.gb_per_s);
  if (r.copy_share > 0) std::printf(" %5.1f%% of copy", 100.0 * r.copy_share);
  for (double v : r.values) std::printf(" %.6f", v);
  std::printf("\n");
  std::fflush(stdout);
}

// The generator shared with bench_loss_metrics.py: splitmix64 of (stream << 40) + index.
enum DataStream : uint64_t { kLogits = 1, kLossLabels = 2, kAucLabels = 3, kAucNoise = 4 };

uint64_t draw(uint64_t stream, uint64_t i) {
  uint64_t z = (stream << 40) + i + 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
double uniform(uint64_t stream, uint64_t i) { return double(draw(stream, i) >> 11) * 0x1p-53; }

// Median ms of f(i) over `repeats` after `warmup` (CUDA events on the engine's stream); i counts
// every call, warm-up included.
double time_ms(int warmup, int repeats, const std::function<void(int)>& f) {
  int call = 0;
  return mc::time_ms(kGpu, warmup, repeats, [&] { f(call++); });
}

double gb_per_s(double bytes, double ms) { return bytes / 1e9 / (ms / 1e3); }

// Buffer sets to rotate through so that the one in use is not in L2 (see the top comment).
int rotation_sets(double set_bytes) {
  return 1 + int(std::ceil(2.0 * double(cache_bytes(kGpu)) / set_bytes));
}

// Runs one case, turning a failure (OOM, a launch error) into the record's error, and prints it.
LossMetricRecord measured(const char* kind, const std::string& name, int64_t n, int64_t c,
                          const std::function<void(LossMetricRecord&)>& body) {
  LossMetricRecord r;
  r.kind = kind;
  r.name = name;
  r.n = n;
  r.c = c;
  try {
    body(r);
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  synchronize(kGpu);
  empty_cache(kGpu);
  print(r);
  return r;
}

LossMetricRecord copy_case(int warmup, int repeats) {
  const int64_t bytes = int64_t(1) << 30;
  return measured("copy", "cudaMemcpyAsync D2D 1 GiB", bytes / 4, 1, [&](LossMetricRecord& r) {
    const Tensor a = Tensor::zeros({bytes / 4}, DType::F32, kGpu);
    Tensor b = Tensor::empty({bytes / 4}, DType::F32, kGpu);
    // device_copy between two device buffers: one cudaMemcpyAsync on the engine's stream.
    r.ms = time_ms(warmup, repeats, [&](int) { device_copy(b.raw(), kGpu, a.raw(), kGpu, size_t(bytes)); });
    r.gb_per_s = gb_per_s(2.0 * double(bytes), r.ms);
  });
}

LossMetricRecord loss_case(int64_t N, int64_t C, bool adjusted, double copy_gbps, int warmup,
                           int repeats) {
  const std::string name =
      adjusted ? "fused CE fwd+grad f32, offset + weights" : "fused CE fwd+grad f32";
  return measured("loss", name, N, C, [&](LossMetricRecord& r) {
    std::vector<float> logits(static_cast<size_t>(N * C)), offset(static_cast<size_t>(C)),
        weight(static_cast<size_t>(C));
    std::vector<int64_t> labels(static_cast<size_t>(N));
    for (size_t i = 0; i < logits.size(); ++i) logits[i] = float(uniform(kLogits, i) * 8.0 - 4.0);
    for (size_t i = 0; i < labels.size(); ++i)
      labels[i] = int64_t(draw(kLossLabels, i) % uint64_t(C));
    for (int64_t c = 0; c < C; ++c) {
      offset[size_t(c)] = float(-0.5 * std::log(1.0 + double(c)));
      weight[size_t(c)] = float(1.0 + 0.5 * double(c % 3));
    }
    const double bytes = 2.0 * 4.0 * double(N * C) + 8.0 * double(N);
    const Device dev = Device::cuda();
    std::vector<Tensor> z, y, dz;
    for (int s = rotation_sets(bytes); s > 0; --s) {
      z.push_back(Tensor::from(logits, {N, C}).to(dev));
      y.push_back(Tensor::from(labels, {N}).to(dev));
      dz.push_back(Tensor::empty({N, C}, DType::F32, dev));
    }
    const Tensor off = Tensor::from(offset, {C}).to(dev), w = Tensor::from(weight, {C}).to(dev);
    const Tensor loss = Tensor::empty({1}, DType::F32, dev),
                 dloss = Tensor::full({1}, 1.0, DType::F32, dev);
    const Tensor bad = Tensor::zeros({1}, DType::I32, dev);
    const size_t ws = MC_DISPATCH_SIZE(dev, cross_entropy_workspace, N, C);
    const Tensor work = Tensor::empty({int64_t(ws)}, DType::U8, dev);
    r.ms = time_ms(warmup, repeats, [&](int i) {
      const size_t s = size_t(i) % z.size();
      MC_DISPATCH(dev, cross_entropy_fused, z[s].raw(), y[s].data<int64_t>(),
                  adjusted ? off.raw() : nullptr, adjusted ? w.raw() : nullptr, kernels::F32, N, C,
                  true, loss.raw(), dz[s].raw(), dloss.raw(), bad.data<int>(), work.raw(), ws);
    });
    r.gb_per_s = gb_per_s(bytes, r.ms);
    r.copy_share = copy_gbps > 0 ? r.gb_per_s / copy_gbps : 0;
    MC_CHECK(bad.item() == 0, "the kernel saw a label outside [0, C)");
    r.values = {loss.item()};
  });
}

bool have_gpu(const char* what) {
  if (cuda_available()) return true;
  std::printf("%s: no GPU on this machine\n", what);
  return false;
}

}  // namespace

std::vector<LossMetricRecord> loss_cases(int warmup, int repeats) {
  if (!have_gpu("loss")) return {};
  std::vector<LossMetricRecord> out{copy_case(warmup, repeats)};
  const double copy_gbps = out[0].error.empty() ? out[0].gb_per_s : 0;
  for (const auto& [N, C] : {std::pair<int64_t, int64_t>{1 << 20, 3}, {1 << 16, 1000}})
    for (bool adjusted : {false, true})
      out.push_back(loss_case(N, C, adjusted, copy_gbps, warmup, repeats));
  return out;
}

std::vector<LossMetricRecord> auc_cases(int warmup, int repeats) {
  if (!have_gpu("auc")) return {};
  const int64_t N = 10'000'000, K = 3;
  // Class k's score: uniform, shifted up by 0.5 for its positives, kept in [0, 1) (torchmetrics
  // softmaxes anything else) and rounded to f32 so that ties occur. Expected AUC: 0.875.
  std::vector<int64_t> labels(static_cast<size_t>(N));
  std::vector<double> scores(static_cast<size_t>(N * K));
  for (int64_t i = 0; i < N; ++i) {
    labels[size_t(i)] = int64_t(draw(kAucLabels, uint64_t(i)) % uint64_t(K));
    for (int64_t k = 0; k < K; ++k) {
      const double u = uniform(kAucNoise, uint64_t(i * K + k));
      scores[size_t(i * K + k)] = double(float((u + (labels[size_t(i)] == k ? 0.5 : 0.0)) / 1.5));
    }
  }
  const Device dev = Device::cuda();
  std::vector<LossMetricRecord> out;
  out.push_back(measured("auc", "sort + rank sums (kernels, f64)", N, K, [&](LossMetricRecord& r) {
    const Tensor y = Tensor::from(labels, {N}).to(dev), s = Tensor::from(scores, {N, K}).to(dev);
    const Tensor order = Tensor::empty({K * N}, DType::I32, dev),
                 sorted = Tensor::empty({K * N}, DType::F64, dev),
                 group_end = Tensor::empty({K * N}, DType::U8, dev),
                 pos = Tensor::empty({K}, DType::I64, dev),
                 rank2 = Tensor::empty({K}, DType::I64, dev);
    const size_t sort_ws = MC_DISPATCH_SIZE(dev, sort_columns_workspace, N),
                 rank_ws = MC_DISPATCH_SIZE(dev, auc_rank_sums_workspace, N);
    const Tensor work = Tensor::empty({int64_t(std::max(sort_ws, rank_ws)) + 1}, DType::U8, dev);
    r.ms = time_ms(warmup, repeats, [&](int) {
      MC_DISPATCH(dev, sort_columns, s.data<double>(), N, K, order.data<int32_t>(),
                  sorted.data<double>(), group_end.data<uint8_t>(), work.raw(), sort_ws);
      MC_DISPATCH(dev, auc_rank_sums, y.data<int64_t>(), order.data<int32_t>(),
                  group_end.data<uint8_t>(), N, K, pos.data<int64_t>(), rank2.data<int64_t>(),
                  work.raw(), rank_ws);
    });
    const auto P = pos.to_vector<int64_t>(), R = rank2.to_vector<int64_t>();
    for (int64_t k = 0; k < K; ++k) {  // AUC = 2U / (2PQ), 2U = sum 2r - P(P+1)
      const double p = double(P[size_t(k)]), q = double(N) - p;
      r.values.push_back((double(R[size_t(k)]) - p * (p + 1)) / (2 * p * q));
    }
  }));
  out.push_back(measured(
      "auc", "classification_metrics (engine, all metrics)", N, K, [&](LossMetricRecord& r) {
        const Tensor y = Tensor::from(labels, {N}).to(dev),
                     s = Tensor::from(scores, {N, K}).to(dev);
        ClassificationMetrics m;
        r.ms = time_ms(warmup, repeats, [&](int) { m = classification_metrics(y, s); });
        for (const MetricValue& a : m.auc) r.values.push_back(a.value);
      }));
  return out;
}


io::Json to_json(const std::vector<LossMetricRecord>& records) {
  // ms, gb_per_s and copy_share are 0 where they do not apply (a failed or unmeasured row).
  auto positive = [](double v) { return v > 0 ? io::Json(v) : io::Json(nullptr); };
  io::Json a = io::Json::array();
  for (const LossMetricRecord& r : records)
    a.push_back({{"kind", r.kind}, {"name", r.name}, {"n", r.n}, {"c", r.c},
                 {"ms", positive(r.ms)}, {"gb_per_s", positive(r.gb_per_s)},
                 {"copy_share", positive(r.copy_share)}, {"values", r.values},
                 {"error", r.error}});
  return a;
}

}  // namespace mc::bench
