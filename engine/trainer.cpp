#include "engine/trainer.h"

#include <cmath>

#include "engine/device.h"
#include "engine/dist.h"
#include "engine/prims.h"

namespace mc {
namespace {

// Faults the GPU kernels flagged instead of throwing (one sync), named with the steps they
// happened in.
void check_device_errors(Device dev, int64_t epoch, int64_t first_step, int64_t last_step) {
  if (!dev.is_cuda()) return;
  try {
    check_device_flags(dev);
  } catch (const Error& e) {
    MC_FAIL("epoch ", epoch + 1, ", steps ", first_step, " to ", last_step, ": ", e.what());
  }
}

std::string subjects(const std::vector<std::string>& ids) {
  if (ids.empty()) return "";
  std::string s = "; batch subjects: ";
  for (size_t i = 0; i < ids.size(); ++i) s += (i ? ", " : "") + ids[i];
  return s;
}

}  // namespace

Trainer::Trainer(nn::Module& model, Optimizer& opt, LossFn loss, const TrainerOptions& o,
                 Communicator* comm)
    : model_(model), opt_(opt), loss_(std::move(loss)), o_(o), comm_(comm) {
  MC_CHECK(loss_, "Trainer: no loss function");
  MC_CHECK(o_.sync_every >= 1, "Trainer: sync_every must be >= 1, got ", o_.sync_every);
  MC_CHECK(o_.validate_every >= 1, "Trainer: validate_every must be >= 1, got ", o_.validate_every);
  MC_CHECK(o_.grad_clip >= 0, "Trainer: grad_clip must be >= 0, got ", o_.grad_clip);
  forward_ = [&m = model_](const Tensor& x) { return m.forward(x); };
}

int Trainer::world() const { return comm_ ? comm_->world() : 1; }

void Trainer::start_epoch(int64_t epoch) {
  read_losses();  // anything left belongs to the epoch before
  epoch_ = epoch;
  epoch_steps_ = 0;
  loss_sum_ = 0;
}

namespace {
// Batch-norm running statistics move once per step: passes after the first (SAM's second
// gradient, at the perturbed weights) leave them alone, as davda54/sam's
// disable_running_stats does. Unfrozen again however the pass ends.
class FreezeBatchNorm {
 public:
  explicit FreezeBatchNorm(nn::Module& model) : m_(model) {}
  ~FreezeBatchNorm() { release(); }
  void freeze() {
    if (!on_) nn::freeze_batchnorm_stats(m_, true);
    on_ = true;
  }
  void release() {
    if (on_) nn::freeze_batchnorm_stats(m_, false);
    on_ = false;
  }
 private:
  nn::Module& m_;
  bool on_ = false;
};
}  // namespace

void Trainer::step(const TrainBatch& b) {
  const int passes = opt_.passes();
  FreezeBatchNorm frozen(model_);
  Tensor first_loss;
  for (int pass = 0; pass < passes; ++pass) {
    if (pass > 0) {
      opt_.next_pass();
      frozen.freeze();
    }
    model_.zero_grad();
    Tensor loss = loss_(forward_(b.input), b.target);
    if (pass == 0) record(loss), first_loss = loss;  // the loss at the weights being trained (SAM: before the ascent)
    loss.backward();
    if (world() > 1) allreduce_gradients(*comm_, model_.flat_grads(), 1.0 / world());
  }
  frozen.release();
  check_finite_step(first_loss, b);  // the recorded loss and the gradient the step applies
  if (o_.grad_clip > 0) clip_grad_norm(model_, o_.grad_clip);
  opt_.step();
  ++state_.global_step;
  ++epoch_steps_;
  just_read_ = false;
  if (pending_ == o_.sync_every) read_losses();
}

void Trainer::check_finite_step(const Tensor& loss, const TrainBatch& b) {
  const Tensor g = model_.flat_grads();
  const Tensor sq = g.defined() ? prims::sum_all(prims::mul(g, g)) : Tensor();
  const int64_t slot = pending_ - 1;  // record() took this step's slot
  if (!loss.device().is_cuda()) {
    const double l = loss.item(), n = sq.defined() ? sq.item() : 0.0;
    if (!std::isfinite(l) || !std::isfinite(n)) {
      pending_ = slot;  // this step's loss is not the epoch's
      MC_FAIL(std::isfinite(l) ? "the gradient norm became " : "the loss became ",
              std::isfinite(l) ? std::sqrt(n) : l, " at epoch ", epoch_ + 1, ", step ", epoch_steps_ + 1,
              " (global step ", state_.global_step + 1, "), before the optimizer step",
              subjects(b.ids), "; lower the learning rate or check the data");
    }
    return;
  }
  if (ids_.size() != size_t(o_.sync_every)) ids_.assign(size_t(o_.sync_every), {});
  ids_[size_t(slot)] = b.ids;
  if (!sq.defined()) return;
  if (!grad_sq_.defined() || grad_sq_.device() != sq.device() || grad_sq_.dtype() != sq.dtype())
    grad_sq_ = Tensor::full({o_.sync_every}, 0.0, sq.dtype(), sq.device());
  grad_sq_.flat_slice(slot, {1}).copy_(sq.view({1}));  // device to device: no wait
}

void Trainer::record(const Tensor& loss) {
  MC_CHECK(loss.numel() == 1, "Trainer: the loss must be one number, got ", loss.str());
  if (!losses_.defined() || losses_.dtype() != loss.dtype() || losses_.device() != loss.device()) {
    read_losses();
    losses_ = Tensor::empty({o_.sync_every}, loss.dtype(), loss.device());
  }
  losses_.flat_slice(pending_, {1}).copy_(loss);  // a device-to-device copy: no wait
  ++pending_;
}

void Trainer::read_losses() {
  if (pending_ == 0) return;
  const int64_t n = pending_, first = epoch_steps_ - n;  // steps of this epoch before the window
  pending_ = 0;
  check_device_errors(losses_.device(), epoch_, first + 1, epoch_steps_);
  const std::vector<double> v = losses_.flat_slice(0, {n}).to_vector<double>();
  last_read_ = v;
  const bool norms = grad_sq_.defined() && grad_sq_.device() == losses_.device();
  const std::vector<double> sq = norms ? grad_sq_.flat_slice(0, {n}).to_vector<double>() : std::vector<double>();
  for (int64_t i = 0; i < n; ++i) {
    const std::string who = size_t(i) < ids_.size() ? subjects(ids_[size_t(i)]) : "";
    MC_CHECK(std::isfinite(v[size_t(i)]), "the loss became ", v[size_t(i)], " at epoch ", epoch_ + 1,
             ", step ", first + i + 1, " (global step ", state_.global_step - n + i + 1,
             ")", who, "; lower the learning rate or check the data");
    MC_CHECK(!norms || std::isfinite(sq[size_t(i)]), "the gradient norm became ", std::sqrt(sq[size_t(i)]),
             " at epoch ", epoch_ + 1, ", step ", first + i + 1, " (global step ",
             state_.global_step - n + i + 1, ")", who, "; lower the learning rate or check the data");
    loss_sum_ += v[size_t(i)];
  }
  just_read_ = true;
}

int64_t Trainer::fit(const FitPlan& plan, const FitCallbacks& cb) {
  MC_CHECK(cb.next_batch, "Trainer::fit: no next_batch callback");
  int64_t done = 0;
  for (int64_t epoch = state_.epoch; epoch < plan.epochs; ++epoch) {
    if (plan.max_epochs_this_call >= 0 && done >= plan.max_epochs_this_call) break;
    EpochResult r = train_epoch(epoch, plan, cb);
    finish_epoch(r, plan, cb);
    ++done;
    if (r.stop) break;
  }
  return done;
}

EpochResult Trainer::train_epoch(int64_t epoch, const FitPlan& plan, const FitCallbacks& cb) {
  EpochResult r;
  r.epoch = epoch;
  // Per step when the epoch length is known, else once an epoch (engine/schedule.h).
  const int64_t spe = plan.steps_per_epoch;
  auto lr_of = [&](int64_t global_step) {
    return spe > 0 ? plan.schedule.lr_at(global_step, plan.base_lr, int(plan.epochs), spe)
                   : plan.schedule.lr_at(epoch, plan.base_lr, int(plan.epochs), 1);
  };
  r.lr = lr_of(state_.global_step);
  opt_.set_lr(r.lr);
  opt_.use_train_weights();  // schedule-free: back to y after the last epoch's validation
  if (cb.begin_epoch) cb.begin_epoch(epoch);
  model_.train();
  start_epoch(epoch);
  while (std::optional<TrainBatch> b = cb.next_batch()) {
    const double lr = lr_of(state_.global_step);
    opt_.set_lr(lr);
    step(*b);
    if (cb.on_step)
      cb.on_step({epoch_steps_, just_read_,
                  just_read_ ? loss_sum_ / double(epoch_steps_) : NAN, lr});
  }
  read_losses();
  r.steps = epoch_steps_;
  double sum = loss_sum_;
  bool stop = plan.stop && plan.stop->load();
  if (world() > 1) {
    sum = allreduce_scalar(*comm_, sum) / world();
    stop = allreduce_scalar(*comm_, stop ? 1.0 : 0.0) > 0;  // every rank stops together
  }
  r.train_loss = r.steps ? sum / double(r.steps) : NAN;
  r.stop = stop;
  return r;
}

void Trainer::finish_epoch(EpochResult& r, const FitPlan& plan, const FitCallbacks& cb) {
  opt_.use_eval_weights();  // validation and checkpoints see x (schedule-free), w otherwise
  const bool due = (r.epoch + 1) % o_.validate_every == 0 || r.epoch + 1 == plan.epochs || r.stop;
  if (cb.validate && due) {
    r.validated = true;
    r.score = cb.validate(r);
    r.best = state_.best_epoch < 0 || r.score > state_.best_value;
    if (r.best) {
      state_.best_value = r.score;
      state_.best_epoch = r.epoch + 1;
    }
  }
  state_.epoch = r.epoch + 1;
  if (cb.end_epoch) cb.end_epoch(r);
  if (world() > 1) comm_->barrier();  // no rank runs ahead of a checkpoint being written
}

double clip_grad_norm(nn::Module& model, double max_norm) {
  Tensor g = model.flat_grads();
  MC_CHECK(g.defined(), "clip_grad_norm: the model's parameters are not flat (flatten_parameters)");
  const double norm = std::sqrt(prims::sum_all(prims::mul(g, g)).item());
  if (norm > max_norm) {  // torch.nn.utils.clip_grad_norm_: scale by max / (norm + 1e-6)
    Tensor scaled = prims::scale(g, max_norm / (norm + 1e-6));
    g.copy_(scaled);
  }
  return norm;
}

}  // namespace mc
