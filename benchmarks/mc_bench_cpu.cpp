// CPU reference speed: convolution forward / backward GFLOP/s at ResNet-50 shapes, and one
// training step of each network at 2 x 1 x 32^3. Median of repeats. (GPU timings are mc_bench's
// job.) Usage: mc_bench_cpu [all|conv|step] [model,model,...]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>
#include <vector>

#include "engine/optim.h"
#include "engine/train_optim.h"
#include "engine/trainer.h"
#include "engine/prims.h"
#include "models/zoo.h"

using namespace mc;

static double median_ms(int reps, const std::function<void()>& f) {
  f();  // warm-up
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    auto a = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

static void conv_case(const char* name, int64_t N, int64_t C, int64_t S, int64_t O, int64_t k,
                      int64_t stride, int64_t pad) {
  Generator g(1);
  kernels::ConvGeom geo;
  geo.N = N; geo.C = C; geo.D = geo.H = geo.W = S; geo.O = O;
  geo.k = {k, k, k}; geo.stride = {stride, stride, stride}; geo.pad = {pad, pad, pad};
  Tensor x = randn({N, C, S, S, S}, g), w = randn({O, C, k, k, k}, g);
  Tensor y = prims::conv3d_forward(x, w, Tensor(), geo);
  Tensor dy = randn(y.shape(), g);
  const double gf = geo.forward_flops() / 1e9;
  const double f = median_ms(3, [&] { prims::conv3d_forward(x, w, Tensor(), geo); });
  const double bd = median_ms(3, [&] { prims::conv3d_backward_data(dy, w, geo); });
  const double bw = median_ms(3, [&] { prims::conv3d_backward_weight(x, dy, geo, nullptr); });
  std::printf("%-34s %7.2f GFLOP  fwd %8.1f ms %6.1f GFLOP/s | dgrad %8.1f ms %6.1f | wgrad %8.1f ms %6.1f\n",
              name, gf, f, gf / f * 1e3, bd, gf / bd * 1e3, bw, gf / bw * 1e3);
}

int main(int argc, char** argv) {
  std::string only = argc > 1 ? argv[1] : "all";
  std::printf("CPU reference (OpenBLAS GEMM + vol2col, OpenMP)\n");
  if (only == "all" || only == "conv") {
    conv_case("stem 1->64 k7 s2, 2x64^3", 2, 1, 64, 64, 7, 2, 3);
    conv_case("layer1 3x3x3 64->64, 2x16^3", 2, 64, 16, 64, 3, 1, 1);
    conv_case("layer1 1x1x1 256->64, 2x16^3", 2, 256, 16, 64, 1, 1, 0);
    conv_case("layer3 3x3x3 256->256 s1, 2x8^3", 2, 256, 8, 256, 3, 1, 1);
  }
  if (only == "all" || only == "step") {
    std::vector<std::string> names = {"resnet10",        "resnet50",        "resnet10t",
                                      "resnet14t",       "resnext50_32x4d", "mobilenetv2_100",
                                      "efficientnet_b0"};
    if (argc > 2) {
      names.clear();
      for (std::string list = argv[2]; !list.empty();) {
        const size_t c = list.find(',');
        names.push_back(list.substr(0, c));
        list = c == std::string::npos ? "" : list.substr(c + 1);
      }
    }
    for (const std::string& m : names) {
      auto model = models::create(m, 1, 3, 0);
      model->flatten_parameters();
      AdamW opt(model->parameters());
      Generator g(2);
      Tensor x = randn({2, 1, 32, 32, 32}, g);
      Tensor y = Tensor::from<int64_t>({0, 2}, {2});
      const double ms = median_ms(3, [&] {
        model->zero_grad();
        Tensor loss = cross_entropy(model->forward(x), y);
        loss.backward();
        opt.step();
      });
      std::printf("train step %-16s %9lld params  2x1x32^3 (fwd+bwd+AdamW): %8.1f ms\n",
                  m.c_str(), (long long)model->num_parameters(), ms);
    }
  }
  // The trainer's step with each optimiser (SAM: two forward/backward passes per step).
  if (only == "all" || only == "optim") {
    for (OptimizerKind k : {OptimizerKind::AdamW, OptimizerKind::SAM, OptimizerKind::ScheduleFreeAdamW}) {
      auto model = models::create("resnet10", 1, 3, 0);
      model->flatten_parameters();
      OptimizerOptions oo;
      oo.kind = k;
      auto opt = make_optimizer(model->parameters(), oo);
      Trainer tr(*model, *opt, [](const Tensor& out, const Tensor& y) { return cross_entropy(out, y); });
      Generator g(2);
      const TrainBatch b{randn({2, 1, 32, 32, 32}, g), Tensor::from<int64_t>({0, 2}, {2})};
      const double ms = median_ms(3, [&] { tr.step(b); });
      std::printf("trainer step resnet10 2x1x32^3, %-18s: %8.1f ms\n", optimizer_name(k), ms);
    }
  }
}
