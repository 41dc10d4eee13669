// The engine's Trainer: a step is exactly zero_grad / forward / loss / backward / optimiser
// step; the losses read every sync_every steps add up to what per-step reads give; a NaN loss
// stops the run naming its epoch and step; validation cadence, best-epoch tracking, stop flag;
// gradient clipping; learning-rate schedules; the optimiser built from options.
#include "engine/trainer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "engine/ops.h"
#include "engine/train_optim.h"
#include "test_util.h"

namespace mc {
namespace {

constexpr int64_t kIn = 5, kClasses = 3, kBatch = 4;

// Batch i of a fixed, random data set (inputs and labels depend on i only).
TrainBatch batch(int64_t i, Device dev = Device::cpu()) {
  std::vector<int64_t> labels;
  for (int64_t k = 0; k < kBatch; ++k) labels.push_back((i * 7 + k * 5) % kClasses);
  return {test::randn({kBatch, kIn}, 100 + uint64_t(i)).to(dev), Tensor::from(labels, {kBatch}).to(dev)};
}

// A data source of `steps` batches per epoch; batch numbers continue over epochs.
struct Source {
  int64_t steps, next = 0, in_epoch = 0;
  Device dev = Device::cpu();
  std::optional<TrainBatch> operator()() {
    if (in_epoch == steps) {
      in_epoch = 0;
      return std::nullopt;
    }
    ++in_epoch;
    return batch(next++, dev);
  }
};

Tensor ce(const Tensor& logits, const Tensor& labels) { return cross_entropy(logits, labels); }

struct Tiny {
  explicit Tiny(OptimizerKind kind = OptimizerKind::SGD, Device dev = Device::cpu()) : model(kIn, kClasses) {
    model.flatten_parameters(dev);
    OptimizerOptions o;
    o.kind = kind;
    o.lr = 0.1;
    opt = make_optimizer(model.parameters(), o);
  }
  nn::Linear model;
  std::unique_ptr<Optimizer> opt;
};

TEST(Trainer, StepIsTheTextbookStepAndEpochLossIsTheMeanOfStepLosses) {
  for (OptimizerKind kind : {OptimizerKind::SGD, OptimizerKind::AdamW}) {
    Tiny a(kind), b(kind);
    // By hand: the reference loop, reading every loss at once.
    std::vector<double> by_hand;
    for (int64_t i = 0; i < 14; ++i) {
      TrainBatch t = batch(i);
      a.model.zero_grad();
      Tensor loss = ce(a.model.forward(t.input), t.target);
      by_hand.push_back(loss.item());
      loss.backward();
      a.opt->step();
    }
    // The trainer: two epochs of 7 steps, losses read every 3 steps and at each epoch's end.
    Trainer tr(b.model, *b.opt, ce, TrainerOptions{.sync_every = 3});
    Source src{7};
    std::vector<double> epoch_loss;
    FitCallbacks cb;
    cb.next_batch = std::ref(src);
    cb.end_epoch = [&](const EpochResult& r) { epoch_loss.push_back(r.train_loss); };
    FitPlan plan{.epochs = 2, .base_lr = 0.1, .schedule = {.kind = LrSchedule::Kind::Constant}};
    EXPECT_EQ(tr.fit(plan, cb), 2);
    EXPECT_EQ(test::rel_error(b.model.flat_params(), a.model.flat_params()), 0.0);
    ASSERT_EQ(epoch_loss.size(), 2u);
    for (int e = 0; e < 2; ++e) {
      double sum = 0;
      for (int i = 0; i < 7; ++i) sum += by_hand[size_t(e * 7 + i)];
      EXPECT_EQ(epoch_loss[size_t(e)], sum / 7) << "epoch " << e;
    }
    EXPECT_EQ(tr.state().epoch, 2);
    EXPECT_EQ(tr.state().global_step, 14);
  }
}

TEST(Trainer, ProgressSeesTheLossOnlyAtReads) {
  Tiny s;
  Trainer tr(s.model, *s.opt, ce, TrainerOptions{.sync_every = 4});
  Source src{10};
  std::vector<int64_t> synced_at;
  FitCallbacks cb;
  cb.next_batch = std::ref(src);
  cb.on_step = [&](const StepProgress& p) {
    if (p.synced) {
      synced_at.push_back(p.step);
      EXPECT_TRUE(std::isfinite(p.mean_loss));
      EXPECT_EQ(p.mean_loss, tr.epoch_loss_sum() / double(p.step));
    } else {
      EXPECT_TRUE(std::isnan(p.mean_loss));
    }
  };
  tr.fit(FitPlan{.epochs = 1}, cb);
  EXPECT_EQ(synced_at, (std::vector<int64_t>{4, 8}));  // 9 and 10 are read at the epoch's end
  EXPECT_EQ(tr.epoch_steps(), 10);
}

TEST(Trainer, NonFiniteLossStopsTheRunNamingEpochAndStep) {
  for (double bad : {NAN, INFINITY}) {
    Tiny s;
    int64_t calls = 0;
    // The 12th loss (epoch 2, step 5 with 7 steps an epoch) is poisoned.
    auto loss = [&](const Tensor& logits, const Tensor& labels) {
      Tensor l = ce(logits, labels);
      return ++calls == 12 ? add(l, Tensor::full(l.shape(), bad)) : l;
    };
    Trainer tr(s.model, *s.opt, loss, TrainerOptions{.sync_every = 3});
    Source src{7};
    FitCallbacks cb;
    cb.next_batch = std::ref(src);
    int64_t epochs_ended = 0;
    cb.end_epoch = [&](const EpochResult&) { ++epochs_ended; };
    test::expect_error([&] { tr.fit(FitPlan{.epochs = 3}, cb); },
                       {std::isnan(bad) ? "the loss became nan" : "the loss became inf",
                        "at epoch 2, step 5 (global step 12), before the optimizer step"});
    EXPECT_EQ(epochs_ended, 1);
    EXPECT_EQ(calls, 12);  // on the CPU: at the step itself, before the optimiser applied it
    EXPECT_EQ(tr.state().global_step, 11);
    for (float w : s.model.weight().to_vector<float>()) EXPECT_TRUE(std::isfinite(w));
  }
}

// Issue 11: one NaN volume (as from a damaged cache) gives a finite-looking loss only until its
// gradient is NaN; the step is refused before the optimiser, naming epoch, step and the batch's
// subjects, and the weights stay finite.
TEST(Trainer, NonFiniteGradientStopsBeforeTheStepNamingTheSubjects) {
  Tiny s;
  Trainer tr(s.model, *s.opt, ce, TrainerOptions{.sync_every = 4});
  TrainBatch good = batch(0), bad = batch(1);
  std::vector<float> x = bad.input.to_vector<float>();
  x[3] = NAN;
  bad.input = Tensor::from<float>(x, bad.input.shape());
  bad.ids = {"subj-a", "subj-nan", "subj-c", "subj-d"};
  tr.step(good);
  test::expect_error([&] { tr.step(bad); },
                     {"became nan", "at epoch 1, step 2 (global step 2), before the optimizer step",
                      "batch subjects: subj-a, subj-nan, subj-c, subj-d"});
  EXPECT_EQ(tr.state().global_step, 1);
  for (float w : s.model.weight().to_vector<float>()) EXPECT_TRUE(std::isfinite(w));
}

TEST(Trainer, BadLabelOnTheCpuThrowsAtTheStep) {
  Tiny s;
  Trainer tr(s.model, *s.opt, ce);
  TrainBatch b = batch(0);
  b.target = Tensor::from<int64_t>({0, 1, 7, 2}, {kBatch});
  test::expect_error([&] { tr.step(b); }, {"label 7 outside [0, 3)"});
}

TEST(Trainer, ValidatesEveryNEpochsAndAtTheEndAndTracksTheBest) {
  Tiny s;
  Trainer tr(s.model, *s.opt, ce, TrainerOptions{.validate_every = 2});
  Source src{2};
  const std::vector<double> scores = {0.5, 0.9, 0.7, 0.95, 0.1};  // by epoch
  std::vector<int64_t> validated, best;
  std::vector<double> lrs;
  FitCallbacks cb;
  cb.next_batch = std::ref(src);
  cb.validate = [&](const EpochResult& r) {
    validated.push_back(r.epoch + 1);
    return scores[size_t(r.epoch)];
  };
  cb.end_epoch = [&](const EpochResult& r) {
    lrs.push_back(r.lr);
    EXPECT_EQ(tr.state().epoch, r.epoch + 1);  // counted before the checkpoint callback
    if (r.best) best.push_back(r.epoch + 1);
    EXPECT_EQ(r.validated, std::isfinite(r.score));
  };
  FitPlan plan{.epochs = 5, .base_lr = 0.01, .schedule = {.kind = LrSchedule::Kind::Step, .step_size = 2, .gamma = 0.5}};
  tr.fit(plan, cb);
  EXPECT_EQ(validated, (std::vector<int64_t>{2, 4, 5}));
  EXPECT_EQ(best, (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(tr.state().best_epoch, 4);
  EXPECT_DOUBLE_EQ(tr.state().best_value, 0.95);
  EXPECT_EQ(lrs, (std::vector<double>{0.01, 0.01, 0.005, 0.005, 0.0025}));
  EXPECT_DOUBLE_EQ(s.opt->lr(), 0.0025);
}

TEST(Trainer, StopFlagEndsAfterTheEpochAndResumeContinues) {
  Tiny s;
  std::atomic<bool> stop{false};
  Trainer tr(s.model, *s.opt, ce);
  Source src{3};
  std::vector<EpochResult> ends;
  FitCallbacks cb;
  cb.next_batch = std::ref(src);
  cb.on_step = [&](const StepProgress& p) {
    if (tr.state().epoch == 1 && p.step == 2) stop = true;  // mid epoch 2
  };
  cb.validate = [](const EpochResult&) { return 1.0; };
  cb.end_epoch = [&](const EpochResult& r) { ends.push_back(r); };
  FitPlan plan{.epochs = 4, .stop = &stop};
  EXPECT_EQ(tr.fit(plan, cb), 2);
  ASSERT_EQ(ends.size(), 2u);
  EXPECT_FALSE(ends[0].stop);
  EXPECT_TRUE(ends[1].stop);
  EXPECT_TRUE(ends[1].validated);
  EXPECT_EQ(ends[1].steps, 3);  // the epoch finished
  // A later call (resume) continues from the state; max_epochs_this_call limits it.
  stop = false;
  plan.max_epochs_this_call = 1;
  EXPECT_EQ(tr.fit(plan, cb), 1);
  EXPECT_EQ(ends.back().epoch, 2);
  EXPECT_EQ(tr.state().global_step, 9);
}

// The one schedule rule (engine/schedule.h): per optimiser step, as CosineAnnealingLR(T_max =
// all steps) stepped after every step; the Trainer applies it before each step.
TEST(Trainer, LearningRateChangesPerStepWhenTheEpochLengthIsKnown) {
  Tiny s;
  Trainer tr(s.model, *s.opt, ce);
  Source src{4};
  std::vector<double> lrs, epoch_lrs;
  FitCallbacks cb;
  cb.next_batch = std::ref(src);
  cb.on_step = [&](const StepProgress& p) {
    lrs.push_back(p.lr);
    EXPECT_DOUBLE_EQ(s.opt->lr(), p.lr);  // the step ran at it
  };
  cb.end_epoch = [&](const EpochResult& r) { epoch_lrs.push_back(r.lr); };
  const LrSchedule cos{.kind = LrSchedule::Kind::Cosine};
  FitPlan plan{.epochs = 3, .base_lr = 0.1, .schedule = cos, .steps_per_epoch = 4};
  tr.fit(plan, cb);
  ASSERT_EQ(lrs.size(), 12u);
  for (size_t t = 0; t < lrs.size(); ++t)  // torch's closed form at step t of T = 12
    EXPECT_NEAR(lrs[t], 0.1 * (1 + std::cos(std::numbers::pi * double(t) / 12)) / 2, 1e-15) << "step " << t;
  EXPECT_EQ(epoch_lrs, (std::vector<double>{lrs[0], lrs[4], lrs[8]}));  // an epoch's first step
}

TEST(Trainer, ClipGradNormAsTorch) {
  Tiny s;
  TrainBatch b = batch(3);
  s.model.zero_grad();
  ce(s.model.forward(b.input), b.target).backward();
  const std::vector<double> g = s.model.flat_grads().to_vector<double>();
  double norm = 0;
  for (double v : g) norm += v * v;
  norm = std::sqrt(norm);
  ASSERT_GT(norm, 0.01);
  EXPECT_NEAR(clip_grad_norm(s.model, 1e9), norm, 1e-6 * norm);  // above the norm: untouched
  EXPECT_EQ(s.model.flat_grads().to_vector<double>(), g);
  const double max_norm = norm / 4;
  EXPECT_NEAR(clip_grad_norm(s.model, max_norm), norm, 1e-6 * norm);
  const std::vector<double> c = s.model.flat_grads().to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(c[i], g[i] * max_norm / (norm + 1e-6), 1e-6);
}

TEST(Trainer, RejectsBadOptions) {
  Tiny s;
  test::expect_error([&] { Trainer(s.model, *s.opt, ce, TrainerOptions{.sync_every = 0}); }, {"sync_every"});
  test::expect_error([&] { Trainer(s.model, *s.opt, ce, TrainerOptions{.validate_every = 0}); }, {"validate_every"});
  test::expect_error([&] { Trainer(s.model, *s.opt, nullptr); }, {"loss"});
  Trainer tr(s.model, *s.opt, ce);
  test::expect_error([&] { tr.fit(FitPlan{}, FitCallbacks{}); }, {"next_batch"});
}

TEST(LrSchedule, CosineWithWarmupAsCosineAnnealingLR) {
  // The demo's schedule: 10 epochs, 1 of warm-up, cosine to 0 over the other 9.
  LrSchedule s{.kind = LrSchedule::Kind::Cosine, .warmup_epochs = 1};
  EXPECT_DOUBLE_EQ(s.lr_at(0, 1e-3, 10), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr_at(1, 1e-3, 10), 1e-3);
  EXPECT_DOUBLE_EQ(s.lr_at(4, 1e-3, 10), 0.75e-3);  // a third of the way: (1 + cos(pi/3)) / 2
  EXPECT_DOUBLE_EQ(s.lr_at(7, 1e-3, 10), 0.25e-3);  // two thirds
  EXPECT_NEAR(s.lr_at(10, 1e-3, 10), 0.0, 1e-18);   // the end, and it stays there
  EXPECT_NEAR(s.lr_at(12, 1e-3, 10), 0.0, 1e-18);
  s.min_lr = 1e-4;
  EXPECT_DOUBLE_EQ(s.lr_at(4, 1e-3, 10), 1e-4 + 0.75 * 0.9e-3);
}

TEST(LrSchedule, PerStepRule) {
  const double b = 1e-3;
  LrSchedule c{.kind = LrSchedule::Kind::Cosine};  // 3 epochs of 10 steps: T = 30
  EXPECT_DOUBLE_EQ(c.lr_at(0, b, 3, 10), b);
  EXPECT_DOUBLE_EQ(c.lr_at(15, b, 3, 10), b / 2);
  EXPECT_DOUBLE_EQ(c.lr_at(10, b, 3, 10), b * 0.75);  // a third: (1 + cos(pi / 3)) / 2
  EXPECT_NEAR(c.lr_at(30, b, 3, 10), 0.0, 1e-18);
  LrSchedule w{.kind = LrSchedule::Kind::Cosine, .warmup_epochs = 1};  // 10 ramp steps, then 20
  EXPECT_DOUBLE_EQ(w.lr_at(0, b, 3, 10), b / 10);
  EXPECT_DOUBLE_EQ(w.lr_at(4, b, 3, 10), b / 2);
  EXPECT_DOUBLE_EQ(w.lr_at(9, b, 3, 10), b);
  EXPECT_DOUBLE_EQ(w.lr_at(10, b, 3, 10), b);
  EXPECT_DOUBLE_EQ(w.lr_at(20, b, 3, 10), b / 2);
  LrSchedule st{.kind = LrSchedule::Kind::Step, .step_size = 2, .gamma = 0.1};  // in epochs
  EXPECT_DOUBLE_EQ(st.lr_at(19, 1.0, 5, 10), 1.0);
  EXPECT_DOUBLE_EQ(st.lr_at(20, 1.0, 5, 10), 0.1);
  // One step per epoch is the per-epoch schedule.
  for (int e = 0; e < 10; ++e) EXPECT_DOUBLE_EQ(w.lr_at(e, b, 10), w.lr_at(e, b, 10, 1));
}

TEST(LrSchedule, WarmupStepAndConstant) {
  LrSchedule w{.kind = LrSchedule::Kind::Constant, .warmup_epochs = 4};
  EXPECT_DOUBLE_EQ(w.lr_at(0, 0.2, 10), 0.05);
  EXPECT_DOUBLE_EQ(w.lr_at(2, 0.2, 10), 0.15);
  EXPECT_DOUBLE_EQ(w.lr_at(3, 0.2, 10), 0.2);
  EXPECT_DOUBLE_EQ(w.lr_at(9, 0.2, 10), 0.2);
  LrSchedule st{.kind = LrSchedule::Kind::Step, .step_size = 3, .gamma = 0.1};
  EXPECT_DOUBLE_EQ(st.lr_at(2, 1.0, 10), 1.0);
  EXPECT_DOUBLE_EQ(st.lr_at(3, 1.0, 10), 0.1);
  EXPECT_DOUBLE_EQ(st.lr_at(8, 1.0, 10), 0.01);
}

TEST(TrainOptim, OptionsBuildTheSameOptimiserAsItsOwnOptions) {
  OptimizerOptions o{.kind = OptimizerKind::SGD, .lr = 0.05, .weight_decay = 0.1, .momentum = 0.8, .nesterov = true};
  EXPECT_STREQ(optimizer_name(o.kind), "sgd");
  EXPECT_STREQ(optimizer_name(OptimizerKind::AdamW), "adamw");
  for (int variant = 0; variant < 2; ++variant) {
    nn::Linear a(kIn, kClasses), b(kIn, kClasses);
    a.flatten_parameters();
    b.flatten_parameters();
    std::unique_ptr<Optimizer> oa = make_optimizer(a.parameters(), o), ob;
    if (variant == 0)
      ob = std::make_unique<SGD>(b.parameters(), SGDOptions{.lr = 0.05, .momentum = 0.8, .weight_decay = 0.1, .nesterov = true});
    else
      ob = std::make_unique<AdamW>(b.parameters(), AdamWOptions{.lr = 0.05, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.1});
    EXPECT_DOUBLE_EQ(oa->lr(), 0.05);
    for (int i = 0; i < 3; ++i)
      for (auto [m, opt] : {std::pair{&a, oa.get()}, std::pair{&b, ob.get()}}) {
        TrainBatch t = batch(i);
        m->zero_grad();
        ce(m->forward(t.input), t.target).backward();
        opt->step();
      }
    EXPECT_EQ(test::rel_error(a.flat_params(), b.flat_params()), 0.0) << "variant " << variant;
    o = {.kind = OptimizerKind::AdamW, .lr = 0.05, .weight_decay = 0.1, .betas = {0.8, 0.99}, .eps = 1e-6};
  }
}

// ---- on the GPU ----

TEST(TrainerCuda, LossesReadFromTheDeviceMatchTheCpu) {
  MC_SKIP_WITHOUT_GPU();
  Tiny c(OptimizerKind::SGD), g(OptimizerKind::SGD, Device::cuda(0));
  std::vector<double> cpu_loss, gpu_loss;
  for (Tiny* s : {&c, &g}) {
    const Device dev = s == &c ? Device::cpu() : Device::cuda(0);
    Trainer tr(s->model, *s->opt, ce, TrainerOptions{.sync_every = 3});
    Source src{7, 0, 0, dev};
    FitCallbacks cb;
    cb.next_batch = std::ref(src);
    cb.end_epoch = [&](const EpochResult& r) { (s == &c ? cpu_loss : gpu_loss).push_back(r.train_loss); };
    tr.fit(FitPlan{.epochs = 2, .base_lr = 0.1}, cb);
  }
  ASSERT_EQ(gpu_loss.size(), 2u);
  for (size_t e = 0; e < 2; ++e) EXPECT_NEAR(gpu_loss[e], cpu_loss[e], 1e-5 * std::abs(cpu_loss[e]));
  EXPECT_TRUE(test::all_close(g.model.flat_params().to(Device::cpu()), c.model.flat_params(), 1e-5, 1e-6));
}

TEST(TrainerCuda, BadLabelOnTheGpuIsAnErrorWithinSyncEverySteps) {
  MC_SKIP_WITHOUT_GPU();
  Tiny s(OptimizerKind::SGD, Device::cuda(0));
  Trainer tr(s.model, *s.opt, ce, TrainerOptions{.sync_every = 4});
  int64_t steps = 0;
  FitCallbacks cb;
  cb.next_batch = [&]() -> std::optional<TrainBatch> {
    if (steps == 8) return std::nullopt;
    TrainBatch b = batch(steps, Device::cuda(0));
    if (steps++ == 2) b.target = Tensor::from<int64_t>({0, 1, 9, 2}, {kBatch}).to(Device::cuda(0));
    return b;
  };
  test::expect_error([&] { tr.fit(FitPlan{.epochs = 1}, cb); },
                     {"epoch 1, steps 1 to 4", "label outside [0, num_classes)"});
  EXPECT_EQ(steps, 4);
}

}  // namespace
}  // namespace mc

namespace mc {
namespace {

// float64 optimiser steps (CPU, for golden runs in double): PyTorch's AdamW / SGD formulas in
// double, on a flat f64 model, against the closed form of two steps.
TEST(TrainOptim, Float64StepsOnTheCpuFollowTorchsFormulas) {
  nn::Linear lin(1, 1);
  lin.to(DType::F64);
  lin.flatten_parameters();
  auto params = lin.parameters();  // weight, bias
  for (Tensor* p : params) p->fill_(1.0);
  AdamW opt(params, {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01});
  const double g[2] = {0.5, -0.25};
  double p = 1, m = 0, v = 0;
  for (int t = 1; t <= 2; ++t) {
    lin.flat_grads().copy_(Tensor::from<double>({g[t - 1], g[t - 1]}, {2}));
    opt.step();
    p *= 1 - 0.1 * 0.01;
    m = 0.9 * m + 0.1 * g[t - 1];
    v = 0.999 * v + 0.001 * g[t - 1] * g[t - 1];
    const double denom = std::sqrt(v) / std::sqrt(1 - std::pow(0.999, t)) + 1e-8;
    p -= 0.1 / (1 - std::pow(0.9, t)) * (m / denom);
    EXPECT_EQ(params[0]->dtype(), DType::F64);
    EXPECT_NEAR(params[0]->item(), p, 1e-15) << "step " << t;  // f32 would be 1e-8 off
  }
  SGD sgd(params, {.lr = 0.1, .momentum = 0.9});
  lin.flat_grads().copy_(Tensor::from<double>({0.3, 0.3}, {2}));
  const double before = params[1]->item();
  sgd.step();
  EXPECT_NEAR(params[1]->item(), before - 0.1 * 0.3, 1e-16);
  // f32 and f64 parameters do not mix.
  nn::Linear f32(1, 1);
  std::vector<Tensor*> mixed{params[0], f32.parameters()[0]};
  test::expect_error([&] { AdamW bad(mixed, {}); }, {"two dtypes"});
}

}  // namespace
}  // namespace mc
