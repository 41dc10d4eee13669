// Speed of MedConv: the full training step (forward, loss, backward, AdamW) and inference of the
// 3D ResNet-50, per shape and precision, the cuDNN convolutions of its layers, the rows of the
// backend-ops table (tests/engine/op_table.h), the loader, the gradient all-reduce, the loss and
// the AUC. GPU cases are timed with CUDA events on the engine's stream (warm-up, repeats,
// median); op rows and the loader also run on the CPU.
//
//   mc_bench [--case all|step|infer|conv|optim|loader|allreduce|loss|auc|ops|op:NAME]
//            [--precision all|fp32|tf32|bf16] [--shape all|128|96|64] [--warmup N] [--repeats N]
//            [--model resnet50] [--json OUT] [--list]
//
// Every case runs in the compute mode mc_train runs in (compute_mode_for: the precision decides
// the layout, and the input is converted with to_layout before the first op), so the numbers are
// those of training. TFLOP/s counts 231.7 GFLOP per volume per training step at 128^3
// (REFERENCE.md), scaled with the voxel count; inference counts a third of that (the forward
// pass). The loss and auc cases live in loss_metric_cases.cpp.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "engine/device.h"
#include "engine/dispatch.h"
#include "engine/dist.h"
#include "engine/memory.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/precision.h"
#include "engine/prims.h"
#include "engine/random.h"
#include "io/atomic_file.h"
#include "io/cache.h"
#include "io/json.h"
#include <nlohmann/json.hpp>
#include "io/loader.h"
#include "loss_metric_cases.h"
#include "models/resnet3d.h"
#include "pipeline/cli.h"
#include "tests/engine/op_table.h"

using namespace mc;

namespace {

struct Options {
  std::string cases = "all", precision = "all", shape = "all", model = "resnet50", json;
  int warmup = 3, repeats = 10;
  bool list = false;
};

struct Shape3 {
  int64_t batch, size;
};
const Shape3 kShapes[] = {{8, 128}, {8, 96}, {32, 64}};

struct Row {
  std::string kind, name, precision;
  int64_t batch = 0, size = 0;
  double ms = NAN, volumes_per_s = NAN, tflops = NAN, peak_gib = NAN, anchor_ms = NAN;
  double gb_per_s = NAN;  // optimiser cases: the bytes the update must move
  std::string error;
};

// PyTorch 2.11 / cuDNN 9.19 on one H100 (REFERENCE.md, "Measured anchors").
double anchor(const std::string& kind, int64_t b, int64_t s, Precision p) {
  struct A {
    int64_t b, s;
    double fp32, tf32, bf16, infer;
  };
  const A table[] = {{8, 128, 111.1, 47.0, 39.0, 13.6},
                     {8, 96, 54.0, 25.4, 27.4, 10.1},
                     {32, 64, 58.3, 28.8, 27.8, 9.9}};
  for (const A& a : table)
    if (a.b == b && a.s == s) {
      if (kind == "infer") return p == Precision::BF16 ? a.infer : NAN;
      return p == Precision::FP32 ? a.fp32 : p == Precision::TF32 ? a.tf32 : a.bf16;
    }
  return NAN;
}

bool selected(const std::string& filter, const std::string& v) {
  return filter == "all" || filter == v;
}

const Device kGpu = Device::cuda();

// Median milliseconds of f over `repeats` runs after `warmup` (CUDA events on the GPU).
double time_ms(const Options& o, Device d, const std::function<void()>& f) {
  return mc::time_ms(d, o.warmup, o.repeats, f);
}

Tensor random_input(const Shape& s, uint64_t seed, Device d) {
  Generator g(seed);
  return randn(s, g).to(d);
}

double gib(size_t b) { return double(b) / double(1ull << 30); }

// One whole-model case: a fresh model per case so that cases do not share caches or memory.
// The step is mc_train's: the input converted to the compute mode's layout, then the model.
Row model_case(const Options& o, const std::string& kind, Shape3 sh, Precision p) {
  Row r;
  r.kind = kind;
  r.name = o.model;
  r.precision = precision_name(p);
  r.batch = sh.batch;
  r.size = sh.size;
  r.anchor_ms = o.model == "resnet50" ? anchor(kind, sh.batch, sh.size, p) : NAN;
  const ComputeMode mode = compute_mode_for(p, kGpu);
  PrecisionScope scope(mode.precision);
  try {
    auto model = models::create(o.model, 1, 3, 0);
    model->flatten_parameters(kGpu);
    const Tensor x = random_input({sh.batch, 1, sh.size, sh.size, sh.size}, 1, kGpu);
    std::vector<int64_t> lab;
    for (int64_t i = 0; i < sh.batch; ++i) lab.push_back(i % 3);
    const Tensor y = Tensor::from(lab, {sh.batch}).to(kGpu);
    AdamW opt(model->parameters());
    const double vox = double(sh.size * sh.size * sh.size) / (128.0 * 128.0 * 128.0);
    double gflop = 231.7 * vox * double(sh.batch);
    std::function<void()> step;
    if (kind == "step") {
      model->train(true);
      step = [&] {
        model->zero_grad();
        Tensor loss = cross_entropy(model->forward(to_layout(x, mode.layout)), y);
        loss.backward();
        opt.step();
      };
    } else {
      model->train(false);
      gflop /= 3.0;
      step = [&] {
        NoGradGuard ng;
        model->forward(to_layout(x, mode.layout));
      };
    }
    synchronize(kGpu);
    reset_peak(kGpu);
    r.ms = time_ms(o, kGpu, step);
    r.peak_gib = gib(memory_stats(kGpu).peak);
    r.volumes_per_s = double(sh.batch) / (r.ms / 1e3);
    r.tflops = gflop / r.ms;  // GFLOP / ms = TFLOP/s
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  synchronize(kGpu);
  empty_cache(kGpu);
  return r;
}

// The convolutions of ResNet-50 at 8 x 128^3 (forward, dgrad, wgrad), one row per direction, in
// the compute mode's dtype and layout.
void conv_cases(const Options& o, Precision p, std::vector<Row>& rows) {
  struct C {
    const char* name;
    int64_t C, S, O, k, s, p;
  };
  const C cs[] = {{"stem 1->64 k7 s2 @128", 1, 128, 64, 7, 2, 3},
                  {"l1 3x3x3 64->64 @32", 64, 32, 64, 3, 1, 1},
                  {"l1 1x1x1 256->64 @32", 256, 32, 64, 1, 1, 0},
                  {"l2 3x3x3 128->128 @16", 128, 16, 128, 3, 1, 1},
                  {"l3 3x3x3 256->256 @8", 256, 8, 256, 3, 1, 1},
                  {"l4 3x3x3 512->512 @4", 512, 4, 512, 3, 1, 1}};
  const ComputeMode mode = compute_mode_for(p, kGpu);
  PrecisionScope scope(mode.precision);
  const int64_t N = 8;
  for (const C& c : cs) {
    kernels::ConvGeom g;
    g.N = N, g.C = c.C, g.D = g.H = g.W = c.S, g.O = c.O;
    g.k = {c.k, c.k, c.k}, g.stride = {c.s, c.s, c.s}, g.pad = {c.p, c.p, c.p};
    const DType dt = activation_dtype();
    const Tensor x = prims::to_layout(random_input({N, c.C, c.S, c.S, c.S}, 3, kGpu), mode.layout, dt);
    const Tensor w = random_input({c.O, c.C, c.k, c.k, c.k}, 4, kGpu);
    const Tensor dy =
        prims::to_layout(random_input({N, c.O, g.oD(), g.oH(), g.oW()}, 5, kGpu), mode.layout, dt);
    const double gf = g.forward_flops() / 1e9;
    const std::pair<const char*, std::function<void()>> dirs[] = {
        {"fprop", [&] { prims::conv3d_forward(x, w, Tensor(), g); }},
        {"dgrad", [&] { prims::conv3d_backward_data(dy, w, g); }},
        {"wgrad", [&] { prims::conv3d_backward_weight(x, dy, g, nullptr); }}};
    for (const auto& [dir, f] : dirs) {
      Row r;
      r.kind = "conv";
      r.name = std::string(c.name) + " " + dir;
      r.precision = precision_name(p);
      r.batch = N;
      r.size = c.S;
      try {
        r.ms = time_ms(o, kGpu, f);
        r.tflops = gf / r.ms;
      } catch (const std::exception& e) {
        r.error = e.what();
      }
      rows.push_back(r);
    }
  }
  synchronize(kGpu);
  empty_cache(kGpu);
}

// What the gradient all-reduce costs a MedConv step (issue: one NCCL rank, the only NCCL run a
// one-GPU machine allows): 46,161,219 f32 gradients in 25 MB buckets, as mc_train reduces them.
// With one rank NCCL still launches its kernels and copies, so this is the fixed cost; the
// README estimates what 8 GPUs add from NCCL's bus bandwidth.
void allreduce_case(const Options& o, std::vector<Row>& rows) {
  Row r{"comm", "all-reduce resnet50 grads (1 NCCL rank)", "fp32", 1, 0};
  try {
    if constexpr (kCudaBuilt) {  // NCCL exists in CUDA builds only
      auto c = detail::make_nccl_communicator(0, 1, 0, detail::nccl_unique_id(), nullptr);
      Tensor g = Tensor::full({46161219}, 1e-3, DType::F32, c->device());
      r.ms = time_ms(o, c->device(), [&] { c->all_reduce_sum({g}, Communicator::kDefaultBucketBytes); });
      r.tflops = 0;
    }
  } catch (const std::exception& e) {
    r.error = e.what();
  }
  rows.push_back(r);
}

// One row of the backend-ops table, forward and (where it has one) backward, in the compute
// mode of each precision the row lists (the CPU: f32 NCDHW).
void op_case(const Options& o, const optable::Row& row, Device dev, std::vector<Row>& rows) {
  const std::vector<optable::Input> spec = row.make(DType::F32);
  std::vector<Precision> precs = dev.is_cuda() ? row.precisions : std::vector<Precision>{};
  if (precs.empty()) precs.push_back(Precision::FP32);
  for (Precision p : precs) {
    if (!selected(o.precision, precision_name(p))) continue;
    Row r;
    r.kind = "op";
    r.name = row.name + (dev.is_cpu() ? " (cpu)" : "");
    r.precision = precision_name(p);
    r.batch = spec[0].value.dim() ? spec[0].value.size(0) : 1;
    try {
      const ComputeMode mode = compute_mode_for(p, dev);
      PrecisionScope scope(mode.precision);
      std::vector<Tensor> in;
      for (const optable::Input& i : spec) {
        Tensor t = i.value.to(dev);
        if (i.role == optable::Role::Activation && is_floating(t.dtype())) {
          t = t.to(dev.is_cuda() ? activation_dtype() : DType::F32);
          if (t.dim() == 5) t = prims::to_layout(t, mode.layout);
        }
        if (row.backward && i.grad && is_floating(t.dtype())) t.set_requires_grad(true);
        in.push_back(t);
      }
      Tensor dy;
      r.ms = time_ms(o, dev, [&] {
        for (Tensor& t : in) t.zero_grad();
        const std::vector<Tensor> out = row.run(in);
        if (!row.backward) return;
        if (!dy.defined()) dy = Tensor::full(out[0].shape(), 0.5, out[0].dtype(), dev).set_layout(out[0].layout());
        out[0].backward(dy);
      });
      r.tflops = NAN;
    } catch (const std::exception& e) {
      r.error = e.what();
    }
    rows.push_back(r);
  }
  synchronize(dev);
  empty_cache(dev);
}

void print_row(const Row& r) {
  if (!r.error.empty()) {
    std::printf("%-6s %-30s %-5s %3lldx%-4lld  failed: %s\n", r.kind.c_str(), r.name.c_str(),
                r.precision.c_str(), (long long)r.batch, (long long)r.size, r.error.c_str());
    return;
  }
  std::printf("%-6s %-30s %-5s %3lldx%-4lld %9.2f ms", r.kind.c_str(), r.name.c_str(),
              r.precision.c_str(), (long long)r.batch, (long long)r.size, r.ms);
  if (!std::isnan(r.volumes_per_s)) std::printf(" %8.1f vol/s", r.volumes_per_s);
  if (!std::isnan(r.tflops)) std::printf(" %7.1f TFLOP/s", r.tflops);
  if (!std::isnan(r.peak_gib)) std::printf(" %6.2f GiB peak", r.peak_gib);
  if (!std::isnan(r.gb_per_s)) std::printf(" %8.1f GB/s", r.gb_per_s);
  if (!std::isnan(r.anchor_ms))
    std::printf("   (PyTorch %.1f ms: x%.2f)", r.anchor_ms, r.anchor_ms / r.ms);
  std::printf("\n");
  std::fflush(stdout);
}

// The rows, then the loss / auc records (`extra`), as one JSON array.
void write_json(const std::string& path, const std::vector<Row>& rows, const io::Json& extra) {
  io::Json a = io::Json::array();
  for (const Row& r : rows)
    a.push_back({{"kind", r.kind}, {"name", r.name}, {"precision", r.precision},
                 {"batch", r.batch}, {"size", r.size}, {"ms", r.ms},
                 {"volumes_per_s", r.volumes_per_s}, {"tflops", r.tflops},
                 {"peak_gib", r.peak_gib}, {"gb_per_s", r.gb_per_s}, {"pytorch_ms", r.anchor_ms}, {"error", r.error}});
  for (const io::Json& e : extra) a.push_back(e);
  io::write_atomic(path, io::json_text(a) + "\n");  // NaN (not measured) is written as null
}

// The optimiser updates over resnet50's 46,161,219 parameters in one flat block (as mc_train
// keeps them), each as one step of mc_train's: AdamW and SGD; SAM's own work per step (the
// gradient norm, the ascent, the restore and the AdamW step: its second forward and backward
// are a model step's cost, not counted here); schedule-free AdamW's step and its switch to the
// evaluation weights and back (once per epoch). GB/s counts the bytes each must read and write.
void optim_cases(const Options& o, Device dev, std::vector<Row>& rows) {
  const int64_t n = 46'161'219;
  struct C {
    const char* name;
    double bytes_per_param;
    std::function<std::unique_ptr<Optimizer>(Tensor*)> make;
    bool swap;  // time use_eval_weights + use_train_weights instead of a step
  };
  const C cases[] = {
      {"adamw", 28, [](Tensor* p) { return std::make_unique<AdamW>(std::vector<Tensor*>{p}); }, false},
      {"sgd momentum", 20,
       [](Tensor* p) { return std::make_unique<SGD>(std::vector<Tensor*>{p}, SGDOptions{.momentum = 0.9}); }, false},
      // norm 4 + ascent 16 + restore 8 + AdamW 28
      {"sam(adamw) ascent+step", 56,
       [](Tensor* p) {
         return std::make_unique<SAM>(std::vector<Tensor*>{p}, std::make_unique<AdamW>(std::vector<Tensor*>{p}));
       }, false},
      {"schedulefree_adamw step", 28,
       [](Tensor* p) { return std::make_unique<ScheduleFreeAdamW>(std::vector<Tensor*>{p}); }, false},
      {"schedulefree x<->y swap", 24,
       [](Tensor* p) { return std::make_unique<ScheduleFreeAdamW>(std::vector<Tensor*>{p}); }, true},
  };
  for (const C& c : cases) {
    Row r;
    r.kind = "optim";
    r.name = std::string(c.name) + (dev.is_cpu() ? " (cpu)" : "");
    r.precision = "fp32";
    r.batch = 1;
    try {
      Tensor p = random_input({n}, 7, dev);
      p.set_grad(prims::scale(random_input({n}, 8, dev), 0.01));
      auto opt = c.make(&p);
      const auto step = [&] {
        if (opt->passes() > 1) opt->next_pass();
        opt->step();
      };
      step();  // schedule-free: a step first, so that x and y differ
      r.ms = time_ms(o, dev, [&] {
        if (!c.swap) return step();
        opt->use_eval_weights();
        opt->use_train_weights();
      });
      r.gb_per_s = c.bytes_per_param * double(n) / (r.ms * 1e6);
    } catch (const std::exception& e) {
      r.error = e.what();
    }
    rows.push_back(r);
    print_row(rows.back());
    synchronize(dev);
    empty_cache(dev);
  }
}

// Loader throughput at 128^3 with augmentation (issue: it must stay well above what the GPU
// consumes, ~300 volumes/s at the step we aim for). Runs on any build.
void loader_case(int workers) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / "mc_bench_loader";
  fs::create_directories(dir);
  const std::string cache = (dir / "cache.safetensors").string();
  if (!fs::exists(cache)) {
    std::vector<io::CacheRecord> recs;
    std::vector<Tensor> vols;
    Generator g(5);
    for (int i = 0; i < 48; ++i) {
      recs.push_back({"s" + std::to_string(i), i % 3, -1.5});
      vols.push_back(rand_uniform({1, 128, 128, 128}, g, 0.0, 1.0));
    }
    io::write_cache(cache, recs, vols, {});
  }
  // The training batch on all cores, and a small one on two workers (what the loader test
  // used to print).
  for (const auto& [batch, w] : {std::pair{8, workers}, {2, 2}})
    for (bool aug : {false, true}) {
      const double vps = io::measure_loader_throughput(cache, batch, w, aug, 8);
      std::printf("loader 128^3 batch %d, %d workers, %-18s %8.1f volumes/s\n", batch, w,
                  aug ? "with augmentation:" : "no augmentation:", vps);
    }
}

int list_cases() {
  std::printf("cases: step infer conv optim loader allreduce loss auc ops\nop rows (--case op:NAME):\n");
  for (const optable::Row& r : optable::rows()) {
    std::printf("  op:%-42s", r.name.c_str());
    for (Precision p : r.precisions) std::printf(" %s", precision_name(p));
    std::printf("%s\n", r.layouts ? "  (NCDHW/NDHWC)" : "");
  }
  return 0;
}

int run(const Options& o);

}  // namespace

int main(int argc, char** argv) {
  Options o;
  auto app = pipeline::cli::make_app(
      "mc_bench",
      "usage: mc_bench [--case all|step|infer|conv|optim|loader|allreduce|loss|auc|ops|op:NAME]\n"
      "                [--precision all|fp32|tf32|bf16] [--shape all|128|96|64] [--warmup N]\n"
      "                [--repeats N] [--model NAME] [--json OUT] [--list]",
      "Times MedConv's training step and inference on the GPU (CUDA events, median), the rows of\n"
      "the backend-ops table (op:NAME, ops for all of them; on the CPU without a GPU), the\n"
      "optimiser updates over 46.2M parameters (optim; on the CPU without a GPU) and the\n"
      "loader. --list names the cases and the op rows.");
  app->add_option("--case", o.cases, "what to time (default all)");
  app->add_option("--precision", o.precision, "fp32, tf32, bf16 or all");
  app->add_option("--shape", o.shape, "128, 96, 64 or all (cube edge of the input)");
  app->add_option("--model", o.model, "network (default resnet50)");
  app->add_option("--json", o.json, "write every row to this JSON file");
  app->add_option("--warmup", o.warmup, "untimed runs first (default 3)")->check(CLI::Range(0, 100000));
  app->add_option("--repeats", o.repeats, "timed runs, median reported (default 10)")
      ->check(CLI::Range(1, 100000));
  app->add_flag("--list", o.list, "name the cases and the op rows");
  try {
    const pipeline::cli::Parsed p = pipeline::cli::parse(*app, {argv + 1, argv + argc});
    if (p.help) {
      std::printf("%s", app->help().c_str());
      return 0;
    }
    MC_CHECK(p.rest.empty(), "unknown argument '", p.rest.front(), "' (see --help)");
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mc_bench: %s\n", e.what());
    return 2;
  }
}

namespace {

int run(const Options& o) {
  if (o.list) return list_cases();
  std::vector<Row> rows;
  const bool gpu = cuda_available();
  // Op rows: one by name, or all of them (never part of "all": the table is long).
  const bool one_op = o.cases.rfind("op:", 0) == 0;
  if (one_op || o.cases == "ops") {
    const Device dev = gpu ? kGpu : Device::cpu();
    std::printf("device: %s\n", device_description(dev).c_str());
    try {
      if (one_op) op_case(o, optable::row(o.cases.substr(3)), dev, rows);
      else
        for (const optable::Row& r : optable::rows())
          if (!r.sampled || gpu) op_case(o, r, dev, rows);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "mc_bench: %s\n", e.what());
      return 2;
    }
    for (const Row& r : rows) print_row(r);
    if (!o.json.empty()) write_json(o.json, rows, io::Json::array());
    return 0;
  }
  if (o.cases == "optim" && !gpu) {  // the CPU twins: --case optim on a machine without a GPU
    optim_cases(o, Device::cpu(), rows);
    if (!o.json.empty()) write_json(o.json, rows, io::Json::array());
    return 0;
  }
  if (o.cases == "loader" || o.cases == "all")
    loader_case(std::max(2, int(std::thread::hardware_concurrency())));
  if (o.cases == "loader") return 0;
  if (!gpu) {
    std::printf("mc_bench: no GPU on this machine (or no CUDA in this build); the op rows run on "
                "the CPU (--case ops), mc_bench_cpu times the CPU step\n");
    return 0;
  }
  std::printf("device: %s\n", device_description(kGpu).c_str());
  std::vector<Precision> precs;
  for (Precision p : {Precision::FP32, Precision::TF32, Precision::BF16})
    if (selected(o.precision, precision_name(p))) precs.push_back(p);
  for (const char* kind : {"step", "infer"}) {
    if (!selected(o.cases, kind)) continue;
    for (const Shape3& sh : kShapes) {
      if (!selected(o.shape, std::to_string(sh.size))) continue;
      for (Precision p : precs) {
        rows.push_back(model_case(o, kind, sh, p));
        print_row(rows.back());
      }
    }
  }
  if (selected(o.cases, "optim")) optim_cases(o, kGpu, rows);
  if (selected(o.cases, "allreduce")) {
    allreduce_case(o, rows);
    print_row(rows.back());
  }
  if (selected(o.cases, "conv"))
    for (Precision p : precs) {
      const size_t first = rows.size();
      conv_cases(o, p, rows);
      for (size_t i = first; i < rows.size(); ++i) print_row(rows[i]);
    }
  std::vector<bench::LossMetricRecord> extra;
  if (selected(o.cases, "loss")) extra = bench::loss_cases(o.warmup, o.repeats);
  if (selected(o.cases, "auc"))
    for (const auto& r : bench::auc_cases(o.warmup, o.repeats)) extra.push_back(r);
  if (!o.json.empty()) write_json(o.json, rows, bench::to_json(extra));
  return 0;
}

}  // namespace
