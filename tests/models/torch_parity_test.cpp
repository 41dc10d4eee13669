// Golden test against PyTorch (llm.c's test_gpt2 habit). tests/fixtures/make_resnet_fixtures.py
// (run by CTest as the torch_fixtures fixture) gives, for resnet10, resnet50 and Table II's
// resnet10t, resnet14t, resnext50_32x4d, mobilenetv2_100 and efficientnet_b0 (PyTorch references
// in tests/fixtures/{resnet3d,efficientnet3d}_torch.py) with random weights and a 2 x 1 x 64^3
// input: logits in eval and train mode, loss, every gradient, the BN
// running statistics, and parameters after one AdamW and one SGD step, in float32; and the same
// forward/backward in float64 from the same values.
//
//  * float64: our engine must equal PyTorch to near machine precision — the implementation test.
//  * float32, against PyTorch's float32: logits and loss within 1e-5, gradients within 1e-4,
//    running statistics within 1e-6 (whole-tensor relative error) — or within twice PyTorch's own
//    float32 error (its f32 result against its f64 one) where that is larger. Train-mode backward
//    through 16 bottleneck blocks of batch norm is ill-conditioned: on resnet50 PyTorch's own
//    f32 gradients are up to ~3e-2 from its f64 ones, so no f32 engine can be held to 1e-4 there;
//    on resnet10 the plain bounds apply (PyTorch's f32 error is below 1e-5). Where a ReLU input
//    sits within f32 rounding of the kink, the two f32 runs may take different sides and the
//    gradient jumps: on resnet14t, resnext50_32x4d and mobilenetv2_100 the gradients are held to
//    the same bounds against an f64 run that takes our f32 run's side at those elements (Kinks).
//  * optimizers: AdamW and SGD applied to PyTorch's gradients equal PyTorch's steps.
//  * determinism: a second run is bit-identical.
#include <cstdlib>
#include <filesystem>
#include <map>

#include "engine/optim.h"
#include "io/safetensors.h"
#include "io/state_dict_io.h"
#include "models/zoo.h"
#include "test_util.h"

namespace mc {
namespace {

using TensorMap = std::map<std::string, Tensor>;

std::string fixture_dir(const std::string& model) {
  auto d = std::filesystem::path(MC_BINARY_DIR) / "fixtures" / "torch" / model;
  return std::filesystem::exists(d / "expected_f64.safetensors") ? d.string() : "";
}

TensorMap load_map(const std::string& path) {
  TensorMap m;
  for (auto& [k, t] : io::load_safetensors(path)) m[k] = t;
  return m;
}

struct Run {
  Tensor logits_eval, logits_train, loss;
  TensorMap grads, buffers;
};

// `observe` (if set) watches the training forward (engine/autograd.h: set_record_observer).
Run run_engine(const std::string& model, const StateDict& weights, const TensorMap& e, DType dt,
               RecordObserver observe = {}) {
  auto m = models::create(model, 1, 3, 0);
  if (dt != DType::F32) m->to(dt);
  io::load_state_dict(m->state_dict(), weights);
  const Tensor x = e.at("input"), y = e.at("labels");
  Run r;
  m->eval();
  {
    NoGradGuard ng;
    r.logits_eval = m->forward(x);
  }
  m->train();
  set_record_observer(std::move(observe));
  r.logits_train = m->forward(x);
  set_record_observer({});
  r.loss = cross_entropy(r.logits_train, y);
  r.loss.backward();
  for (auto& [k, p] : m->named_parameters()) r.grads[k] = p->grad();
  for (auto& [k, b] : m->named_buffers()) r.buffers[k] = b->clone();
  return r;
}

// Whole-tensor relative error, its denominator floored at `floor`. A gradient can be zero by an
// identity: in MobileNetV2 / EfficientNet the last BN of a residual block feeds only 1x1 convs
// followed by train-mode BNs, whose input gradients sum to zero over the batch, so that BN's
// bias gradient is 0 up to rounding and has no meaningful relative error. Gradients are compared
// relative to their own scale, floored at 1e-6 of the model's largest gradient (grad_floor).
double rel_floored(const Tensor& a, const Tensor& ref, double floor) {
  auto x = a.to_vector<double>(), y = ref.to_vector<double>();
  double num = 0, den = floor;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
    num = std::max(num, std::abs(x[i] - y[i]));
    den = std::max(den, std::abs(y[i]));
  }
  return den == 0 ? num : num / den;
}

double grad_floor(const TensorMap& ref) {
  double m = 0;
  for (auto& [k, t] : ref)
    if (k.rfind("grad.", 0) == 0)
      for (double v : t.to_vector<double>()) m = std::max(m, std::abs(v));
  return 1e-6 * m;
}

// Worst whole-tensor relative error of `ours` (by name, with prefix) against `ref`.
std::pair<double, std::string> worst(const TensorMap& ours, const TensorMap& ref, const std::string& prefix,
                                     double floor = 0) {
  std::pair<double, std::string> w{0.0, ""};
  for (auto& [k, t] : ours) w = std::max(w, {rel_floored(t, ref.at(prefix + k), floor), k});
  return w;
}

// The gradient of a ReLU network jumps where an activation's input crosses the kink (0, and 6
// for ReLU6), and some inputs lie within float32 rounding of it: which side our f32 run takes
// there, and which side PyTorch's takes, is chance. Kinks records, in our f32 training forward,
// each op output that feeds a ReLU / ReLU6; match() then runs in an f64 forward at the same op
// and moves any such value that lies on the other side of a kink to our f32 value (a change no
// larger than f32's forward error, which it checks), so that f64 run takes our decisions.
struct Kinks {
  std::vector<std::string> names;                // every recorded op, in order
  std::vector<Tensor> outs;                      // its f32 output (kept only while recording)
  std::vector<int> feeds;                        // 0, or 1 / 6: feeds a ReLU / ReLU6
  std::map<const AutogradMeta*, size_t> index;   // output -> op
  size_t moved = 0;
  double worst_move = 0;                         // largest |f64 - f32| moved, relative to max|x|

  RecordObserver recorder() {
    return [this](Node& n, Tensor& out) {
      const std::string name = n.name();
      if ((name == "Relu" || name == "Relu6") && !n.inputs.empty() && n.inputs[0]) {
        const auto p = index.find(n.inputs[0].get());
        if (p != index.end()) feeds[p->second] = name == "Relu" ? 1 : 6;
      }
      index[out.autograd_meta().get()] = names.size();
      names.push_back(name);
      outs.push_back(out.detach());
      feeds.push_back(0);
    };
  }
  void drop_unused() {
    for (size_t i = 0; i < outs.size(); ++i)
      if (!feeds[i]) outs[i] = Tensor();
    index.clear();
  }
  RecordObserver matcher() {
    return [this, i = size_t(0)](Node& n, Tensor& out) mutable {
      const size_t k = i++;
      ASSERT_LT(k, names.size()) << "the f64 forward records more ops than the f32 one";
      ASSERT_EQ(names[k], n.name()) << "op " << k;
      if (!feeds[k]) return;
      ASSERT_EQ(out.numel(), outs[k].numel());
      ASSERT_EQ(out.layout(), outs[k].layout());
      double* x = out.data<double>();
      const float* f = outs[k].data<float>();
      double scale = 0;
      for (int64_t j = 0; j < out.numel(); ++j) scale = std::max(scale, std::abs(x[j]));
      for (int64_t j = 0; j < out.numel(); ++j) {
        const bool other_side = (x[j] > 0) != (f[j] > 0) || (feeds[k] == 6 && (x[j] < 6) != (f[j] < 6));
        if (!other_side) continue;
        worst_move = std::max(worst_move, std::abs(x[j] - f[j]) / scale);
        x[j] = f[j];
        ++moved;
      }
    };
  }
};

void check_model(const std::string& model) {
  const std::string dir = fixture_dir(model);
  if (dir.empty()) {
    if (std::getenv("MC_REQUIRE_TORCH_FIXTURES"))
      FAIL() << "PyTorch fixtures for " << model << " missing (MC_REQUIRE_TORCH_FIXTURES is set)";
    GTEST_SKIP() << "no PyTorch fixtures (is Debian's python3-torch installed?)";
  }
  const StateDict weights = io::load_safetensors(dir + "/weights.safetensors");
  // Every state-dict key and shape, in PyTorch's module order (the fixture's "order" metadata:
  // safetensors sorts by name), and the parameter count.
  {
    auto m = models::create(model, 1, 3, 0);
    const StateDict ours = m->state_dict();
    const TensorMap ref = load_map(dir + "/weights.safetensors");
    const io::SafeTensorsFile file = io::SafeTensorsFile::open(dir + "/weights.safetensors");
    const auto order = file.metadata().find("order");
    ASSERT_NE(order, file.metadata().end()) << "fixture without key order: regenerate it";
    std::vector<std::string> keys;
    for (size_t a = 0, b; a <= order->second.size(); a = b + 1) {
      b = order->second.find(',', a);
      if (b == std::string::npos) b = order->second.size();
      keys.push_back(order->second.substr(a, b - a));
    }
    ASSERT_EQ(ours.size(), keys.size()) << model;
    int64_t torch_params = 0;
    for (size_t i = 0; i < ours.size(); ++i) {
      EXPECT_EQ(ours[i].first, keys[i]) << model << " tensor " << i;
      EXPECT_EQ(ours[i].second.shape(), ref.at(keys[i]).shape()) << keys[i];
      if (!keys[i].ends_with("running_mean") && !keys[i].ends_with("running_var") &&
          !keys[i].ends_with("num_batches_tracked"))
        torch_params += ref.at(keys[i]).numel();
    }
    EXPECT_EQ(m->num_parameters(), torch_params);
    std::printf("[parity %s] %zu state-dict tensors in PyTorch's order, %lld parameters (PyTorch "
                "%lld)\n", model.c_str(), ours.size(), (long long)m->num_parameters(),
                (long long)torch_params);
  }
  const TensorMap e32 = load_map(dir + "/expected.safetensors");
  const TensorMap e64 = load_map(dir + "/expected_f64.safetensors");

  // ---- float64: the implementation equals PyTorch's ----
  {
    Run r = run_engine(model, weights, e64, DType::F64);
    const double le = test::rel_error(r.logits_eval, e64.at("logits_eval"));
    const double lt = test::rel_error(r.logits_train, e64.at("logits_train"));
    const double lo = test::rel_error(r.loss, e64.at("loss"));
    auto [g, gname] = worst(r.grads, e64, "grad.", grad_floor(e64));
    auto [s, sname] = worst(r.buffers, e64, "after.");
    EXPECT_LE(le, 1e-12);
    EXPECT_LE(lt, 1e-9);
    EXPECT_LE(lo, 1e-9);
    EXPECT_LE(g, 1e-7) << gname;
    EXPECT_LE(s, 1e-10) << sname;
    std::printf("[parity %s f64] logits eval %.1e train %.1e | loss %.1e | worst grad %.1e (%s) | "
                "running stats %.1e\n", model.c_str(), le, lt, lo, g, gname.c_str(), s);
  }

  // ---- float32: against PyTorch's float32 ----
  // On these three some ReLU inputs lie within f32 rounding of the kink (see Kinks) and our f32
  // run takes the other side from PyTorch's at a few whose gradient matters: their gradients are
  // checked against an f64 run that takes our f32 run's decisions (kink_matched), at the same
  // bound. Bisected op by op (each op's f32 backward fed the exact f64 output gradient), only
  // those ReLUs (and a max-pool after one) were off, by up to 9e-2; every other op was within
  // 9e-6 of f64 on resnet14t and resnext50_32x4d. resnet14t with 2 threads: layer2.0.act2's input
  // at one element is 1.0e-6 in f64, -2.2e-7 in ours and 3.1e-6 in PyTorch's f32 (further off,
  // but on the f64 side); passing that element's gradient or not moves layer2.0's gradients by
  // 1.3e-2 against PyTorch's f32. Which elements flip changes with the BLAS thread count, and
  // PyTorch flips two of its own on mobilenetv2. The others pass against PyTorch's f32 directly
  // (efficientnet_b0's SiLU has no kink). MC_PARITY_STRICT=1 compares these three directly too.
  const bool kink_matched = (model == "resnet14t" || model == "resnext50_32x4d" ||
                             model == "mobilenetv2_100") && !std::getenv("MC_PARITY_STRICT");
  Kinks kinks;
  Run r = run_engine(model, weights, e32, DType::F32, kink_matched ? kinks.recorder() : RecordObserver{});
  Run matched;
  if (kink_matched) {
    kinks.drop_unused();
    matched = run_engine(model, weights, e64, DType::F64, kinks.matcher());
    // The f64 run differs from the exact one only by f32 forward noise at the moved elements.
    EXPECT_LE(kinks.worst_move, 1e-5) << "an activation input moved further than f32 rounding";
    std::printf("[parity %s f32] %zu activation inputs on the other side of a kink in our f32 run "
                "(largest move %.1e of the tensor's scale)\n", model.c_str(), kinks.moved,
                kinks.worst_move);
  }
  const double floor = grad_floor(e64);
  auto fl = [&](const std::string& k) { return k.rfind("grad.", 0) == 0 ? floor : 0.0; };
  auto vs_torch = [&](const Tensor& t, const std::string& k) { return rel_floored(t, e32.at(k), fl(k)); };
  auto torch_err = [&](const std::string& k) { return rel_floored(e32.at(k), e64.at(k), fl(k)); };
  // The bound, or twice PyTorch's own float32 error where the computation is so
  // ill-conditioned that f32 cannot do better (see the top of this file).
  auto bound = [&](const std::string& k, double tol) { return std::max(tol, 2 * torch_err(k)); };
  auto expect = [&](const Tensor& t, const std::string& k, double tol) {
    const double err = vs_torch(t, k);
    EXPECT_LE(err, bound(k, tol)) << k << " (PyTorch f32 vs f64: " << torch_err(k) << ")";
    if (std::getenv("MC_PARITY_VERBOSE"))
      std::printf("  %-44s %.2e   PyTorch f32 vs f64 %.2e   ours f32 vs f64 %.2e\n", k.c_str(),
                  err, torch_err(k), rel_floored(t, e64.at(k), fl(k)));
    return err;
  };
  const double le = expect(r.logits_eval, "logits_eval", 1e-5);
  const double lt = expect(r.logits_train, "logits_train", 1e-5);
  const double lo = expect(r.loss, "loss", 1e-5);
  std::pair<double, std::string> gw{0, ""}, sw{0, ""};
  int beyond_tol = 0;
  double torch_worst = 0;
  for (auto& [k, g] : r.grads) {
    const std::string key = "grad." + k;
    double err = vs_torch(g, key);
    if (kink_matched) {
      const double vs_matched = rel_floored(g, matched.grads.at(k), floor);
      EXPECT_LE(vs_matched, bound(key, 1e-4)) << key << " against the kink-matched f64 run "
                                              << "(PyTorch f32 vs f64: " << torch_err(key) << ")";
      if (std::getenv("MC_PARITY_VERBOSE"))
        std::printf("  %-44s %.2e   PyTorch f32 vs f64 %.2e   ours f32 vs kink-matched f64 %.2e\n",
                    key.c_str(), err, torch_err(key), vs_matched);
      err = vs_matched;
    } else {
      err = expect(g, key, 1e-4);
    }
    gw = std::max(gw, {err, k});
    beyond_tol += err > 1e-4;
    torch_worst = std::max(torch_worst, torch_err(key));
  }
  for (auto& [k, b] : r.buffers) sw = std::max(sw, {expect(b, "after." + k, 1e-6), k});
  std::printf("[parity %s f32] vs PyTorch f32: logits eval %.1e train %.1e | loss %.1e | worst grad "
              "%.1e%s (%s; %d of %zu tensors beyond 1e-4; PyTorch's own f32 vs f64 worst %.1e) | "
              "running stats %.1e\n", model.c_str(), le, lt, lo, gw.first,
              kink_matched ? " vs the kink-matched f64 run" : "", gw.second.c_str(), beyond_tol,
              r.grads.size(), torch_worst, sw.first);

  // ---- optimizers on PyTorch's gradients ----
  auto m = models::create(model, 1, 3, 0);
  io::load_state_dict(m->state_dict(), weights);
  std::vector<Tensor> before;
  for (auto& [k, p] : m->named_parameters()) {
    before.push_back(p->detach().clone());
    p->set_grad(e32.at("grad." + k).clone());
  }
  auto step_and_compare = [&](Optimizer&& opt, const std::string& prefix) {
    opt.step();
    double w = 0;
    size_t i = 0;
    for (auto& [k, p] : m->named_parameters()) {
      w = std::max(w, test::rel_error(*p, e32.at(prefix + k)));
      p->detach().copy_(before[i++]);
    }
    EXPECT_LE(w, 1e-6) << prefix;
    std::printf("[parity %s] %s step on PyTorch's gradients: worst parameter error %.1e\n",
                model.c_str(), prefix.c_str(), w);
  };
  step_and_compare(AdamW(m->parameters(), {.lr = 1e-3, .weight_decay = 0.01}), "adamw.");
  step_and_compare(SGD(m->parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4, .nesterov = true}), "sgd.");

  // ---- determinism ----
  Run again = run_engine(model, weights, e32, DType::F32);
  EXPECT_EQ(test::rel_error(again.logits_train, r.logits_train), 0.0);
  for (auto& [k, g] : r.grads) EXPECT_EQ(test::rel_error(again.grads[k], g), 0.0) << k;
}

TEST(TorchParity, Resnet10) { check_model("resnet10"); }
TEST(TorchParity, Resnet50) { check_model("resnet50"); }
TEST(TorchParity, Resnet10t) { check_model("resnet10t"); }
TEST(TorchParity, Resnet14t) { check_model("resnet14t"); }
TEST(TorchParity, Resnext50_32x4d) { check_model("resnext50_32x4d"); }
TEST(TorchParity, Mobilenetv2_100) { check_model("mobilenetv2_100"); }
TEST(TorchParity, EfficientnetB0) { check_model("efficientnet_b0"); }

}  // namespace
}  // namespace mc
