#include "pipeline/train.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "pipeline/predictions.h"
#include "engine/dist.h"
#include "eval/calibration.h"
#include "io/text.h"
#include "engine/metrics.h"
#include "engine/trainer.h"
#include "io/checkpoint.h"
#include "io/loader.h"
#include "io/progress.h"
#include "io/runlog.h"
#include "io/safetensors.h"
#include "io/state_dict_io.h"
#include "losses/losses.h"
#include "losses/posthoc.h"

namespace mc {
namespace fs = std::filesystem;
namespace {

std::string fmt(double v, int prec = 4) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(prec) << v;
  return s.str();
}

// The score model selection maximises (loss is negated).
double selection_score(const Config& cfg, const ClassificationMetrics& m, double val_loss) {
  switch (cfg.eval.select_by) {
    case Config::Eval::SelectBy::MacroAUC: return m.auc_macro.defined ? m.auc_macro.value : 0.0;
    case Config::Eval::SelectBy::BalancedAccuracy: return m.balanced_accuracy.value;
    case Config::Eval::SelectBy::Accuracy: return m.accuracy.value;
    case Config::Eval::SelectBy::Loss: return -val_loss;
  }
  return 0;
}

struct Validation {
  ClassificationMetrics metrics;
  double loss = NAN;
  std::optional<TemperatureFit> temperature;  // fitted on this epoch's validation scores
};

// One rank's run: what train() sets up, and the callbacks the engine's Trainer calls. Only
// rank 0 prints and writes.
class TrainRun {
 public:
  TrainRun(const Config& cfg, bool resume, const TrainHooks& hooks, Communicator& comm);
  TrainSummary run();

 private:
  void check_inputs() const;
  void build();
  void start_or_resume();
  void join_ranks();
  void print_header();
  FitCallbacks callbacks();
  void begin_epoch(int64_t epoch);
  void finish_bar(const EpochResult& r);
  double validate(const EpochResult& r);
  void end_epoch(const EpochResult& r);
  void log_epoch(const EpochResult& r);
  void save_checkpoints(const EpochResult& r);

  const Config& cfg_;
  const bool resume_;
  const TrainHooks& hooks_;
  Communicator& comm_;
  const Device dev_;
  const bool lead_;
  std::ostringstream discard_;
  std::ostream& out_;
  TrainSummary sum_;
  std::string train_path_, val_path_;
  std::unique_ptr<nn::Module> model_;
  std::unique_ptr<Optimizer> opt_;
  std::unique_ptr<Loader> loader_;
  std::vector<int64_t> counts_;  // training class counts: the loss's and post-hoc's prior
  std::unique_ptr<Loss> loss_;
  std::unique_ptr<Trainer> trainer_;
  TrainingState st_;
  std::optional<RunLog> log_;
  std::optional<Progress> bar_;
  Validation val_;  // of the epoch being finished
};

TrainRun::TrainRun(const Config& cfg, bool resume, const TrainHooks& hooks, Communicator& comm)
    : cfg_(cfg), resume_(resume), hooks_(hooks), comm_(comm), dev_(comm.device()),
      lead_(comm.rank() == 0),
      out_(!lead_ ? discard_ : hooks.out ? *hooks.out : std::cout) {
  set_compute_mode(cfg_, dev_);
  sum_.run_dir = cfg_.output.dir;
  train_path_ = split_cache_path(cfg_.data, "train");
  val_path_ = split_cache_path(cfg_.data, "val");
  check_inputs();
  fs::create_directories(sum_.run_dir);  // only once the inputs are known to exist
  build();
  start_or_resume();
  if (comm_.world() > 1) join_ranks();
  print_header();
}

void TrainRun::check_inputs() const {
  MC_CHECK(cfg_.train.batch_size % comm_.world() == 0, "train.batch_size ", cfg_.train.batch_size,
           " is the global batch and must divide evenly over ", comm_.world(), " ranks");
  MC_CHECK(fs::exists(train_path_), "training cache '", train_path_,
           "' not found: run mc_prep first (or set data.train_cache)");
  MC_CHECK(fs::exists(val_path_), "validation cache '", val_path_,
           "' not found: run mc_prep first (or set data.val_cache)");
}

void TrainRun::build() {
  model_ = build_model(cfg_);
  model_->flatten_parameters(dev_);
  opt_ = build_optimizer(cfg_, *model_);
  loader_ = std::make_unique<Loader>(train_path_,
                                     train_loader_options(cfg_, dev_, comm_.rank(), comm_.world()));
  const Cache& cache = loader_->cache();
  MC_CHECK(cache.volume_shape()[0] == cfg_.model.in_chans, "model.in_chans is ", cfg_.model.in_chans,
           " but the cache '", train_path_, "' holds ", cache.volume_shape()[0],
           " channel(s) (one per HU window)");
  counts_ = cache.class_counts(cfg_.model.num_classes);
  loss_ = std::make_unique<Loss>(cfg_.loss, counts_);
  trainer_ = std::make_unique<Trainer>(
      *model_, *opt_, [this](const Tensor& logits, const Tensor& labels) { return (*loss_)(logits, labels); },
      cfg_.trainer, &comm_);
  trainer_->set_forward([this](const Tensor& x) { return model_->forward(model_input(x, dev_)); });
}

// Resumes from <run>/last, or records the resolved config of a new run.
void TrainRun::start_or_resume() {
  const std::string optimizer = optimizer_name(cfg_.optim.kind);
  st_.optimizer = optimizer;
  const std::string last = (fs::path(sum_.run_dir) / "last.safetensors").string();
  if (resume_) {
    MC_CHECK(fs::exists(last), "--resume: no checkpoint '", last, "' to resume from");
    st_ = load_training_state(state_path_for(last), last);
    MC_CHECK(st_.optimizer == optimizer, "--resume: the checkpoint used optimizer '", st_.optimizer,
             "', the config says '", optimizer, "'");
    load_state_dict(model_->state_dict(), load_safetensors(last), LoadOptions{});
    opt_->load_state(st_.optimizer_state);
    out_ << "resumed from " << last << " after epoch " << st_.epoch << "\n";
  } else if (lead_) {
    std::ofstream(fs::path(sum_.run_dir) / "config.yaml") << to_yaml(cfg_);
  }
  st_.config_yaml = to_yaml(cfg_);
  // The training prior travels with every checkpoint: mc_predict adjusts with it.
  std::string counts_csv;
  for (size_t k = 0; k < counts_.size(); ++k) counts_csv += (k ? "," : "") + std::to_string(counts_[k]);
  st_.extra["class_counts"] = counts_csv;
  trainer_->state() = {st_.epoch, st_.global_step, st_.best_epoch, st_.best_value};
  if (lead_) log_.emplace(sum_.run_dir, resume_ ? st_.epoch : 0);
}

// Every replica starts from rank 0's weights and statistics, whatever each loaded.
void TrainRun::join_ranks() {
  Tensor flat = model_->flat_params();
  comm_.broadcast(flat, 0);
  for (auto& [name, b] : model_->named_buffers())
    if (is_floating(b->dtype())) comm_.broadcast(*b, 0);
  const int synced = cfg_.train.sync_bn ? nn::set_sync_batchnorm(*model_, &comm_) : 0;
  out_ << "data parallel: " << comm_.world() << " ranks (" << comm_.backend() << "), batch "
       << loader_->options().batch << " per rank = " << cfg_.train.batch_size << " global, lr "
       << cfg_.optim.lr
       << (synced ? ", synchronised batch norm (" + std::to_string(synced) + " layers)" : ", local batch norm")
       << "\n";
}

void TrainRun::print_header() {
  const Cache& cache = loader_->cache();
  out_ << "training " << model_arch(cfg_.model.name) << " on " << dev_.str() << " ("
       << precision_name(precision()) << "), " << cache.size() << " training volumes "
       << shape_str(cache.volume_shape()) << ", classes [";
  for (size_t k = 0; k < counts_.size(); ++k) out_ << (k ? ", " : "") << counts_[k];
  out_ << "], batch " << cfg_.train.batch_size << ", " << loader_->steps_per_epoch()
       << " steps/epoch, loss " << to_string(cfg_.loss.type) << "\n";
}

FitCallbacks TrainRun::callbacks() {
  FitCallbacks cb;
  cb.next_batch = [this]() -> std::optional<TrainBatch> {
    std::optional<Batch> b = loader_->next();
    if (!b) return std::nullopt;
    return TrainBatch{b->images, b->labels};
  };
  cb.begin_epoch = [this](int64_t epoch) { begin_epoch(epoch); };
  cb.on_step = [this](const StepProgress& p) {
    if (!bar_) return;
    if (p.synced) bar_->set_note("loss " + fmt(p.mean_loss));
    bar_->tick();
  };
  cb.validate = [this](const EpochResult& r) { return validate(r); };
  cb.end_epoch = [this](const EpochResult& r) { end_epoch(r); };
  return cb;
}

void TrainRun::begin_epoch(int64_t epoch) {
  loader_->set_epoch(epoch);
  if (lead_)
    bar_.emplace("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg_.train.epochs),
                 loader_->steps_per_epoch());
}

void TrainRun::finish_bar(const EpochResult& r) {
  if (!bar_) return;
  bar_->set_note("loss " + fmt(r.train_loss));
  bar_->finish();
  bar_.reset();
}

// Validation with post-hoc adjustment (tau2), metrics and the selection score. Each rank
// predicts a shard.
double TrainRun::validate(const EpochResult& r) {
  finish_bar(r);
  const int world = comm_.world();
  PredictionTable val = predict_cache(*model_, val_path_, cfg_.train.batch_size, dev_, "", comm_.rank(), world);
  if (world > 1) val = gather_predictions(comm_, val, Cache::open(val_path_).size());
  const Tensor logits = val.scores_tensor(DType::F32), labels = val.labels_tensor();
  Tensor probs = posthoc_probabilities(logits, std::vector<double>(counts_.begin(), counts_.end()),
                                       cfg_.posthoc.tau2);
  val_.metrics = classification_metrics(labels, probs);
  // Temperature scaling on the adjusted scores at posthoc.tau2 (eval/calibration.h's order);
  // it travels with the checkpoint of this epoch and mc_predict / mc_eval apply it.
  {
    const int64_t K = val.num_classes();
    std::vector<double> adjusted = val.scores;
    if (cfg_.posthoc.tau2 != 0) {
      const std::vector<double> f = normalize_prior(std::vector<double>(counts_.begin(), counts_.end()));
      for (size_t i = 0; i < adjusted.size(); ++i) adjusted[i] -= cfg_.posthoc.tau2 * std::log(f[i % size_t(K)]);
    }
    std::vector<double> rows;
    std::vector<int64_t> known;  // a row without a label has nothing to fit
    for (int64_t i = 0; i < val.size(); ++i)
      if (val.labels[size_t(i)] >= 0 && val.labels[size_t(i)] < K) {
        known.push_back(val.labels[size_t(i)]);
        rows.insert(rows.end(), adjusted.begin() + i * K, adjusted.begin() + (i + 1) * K);
      }
    if (!known.empty()) val_.temperature = fit_temperature(rows, known, K);
  }
  {
    NoGradGuard ng;
    val_.loss = (*loss_)(logits, labels).item();
  }
  return selection_score(cfg_, val_.metrics, val_.loss);
}

void TrainRun::end_epoch(const EpochResult& r) {
  finish_bar(r);
  const TrainerState& ts = trainer_->state();
  st_.epoch = ts.epoch;
  st_.global_step = ts.global_step;
  st_.best_epoch = ts.best_epoch;
  st_.best_value = ts.best_value;
  if (!r.validated) val_ = Validation{};
  for (const char* k : {"temperature", "temperature_tau2", "temperature_nll_before", "temperature_nll_after"})
    st_.extra.erase(k);
  if (val_.temperature) {
    st_.extra["temperature"] = shortest(val_.temperature->temperature);
    st_.extra["temperature_tau2"] = shortest(cfg_.posthoc.tau2);
    st_.extra["temperature_nll_before"] = shortest(val_.temperature->nll_before);
    st_.extra["temperature_nll_after"] = shortest(val_.temperature->nll_after);
  }
  log_epoch(r);
  save_checkpoints(r);
  if (r.stop) {
    sum_.interrupted = true;
    out_ << "stopped after epoch " << r.epoch + 1 << ": resume with --resume\n";
  }
}

void TrainRun::log_epoch(const EpochResult& r) {
  const ClassificationMetrics& m = val_.metrics;
  const double nan = NAN;
  const double auc = r.validated && m.auc_macro.defined ? m.auc_macro.value : nan;
  if (log_)
    log_->append({{"epoch", double(r.epoch + 1)}, {"lr", r.lr}, {"train_loss", r.train_loss},
                  {"val_loss", val_.loss}, {"val_accuracy", r.validated ? m.accuracy.value : nan},
                  {"val_balanced_accuracy", r.validated ? m.balanced_accuracy.value : nan},
                  {"val_auc_macro", auc}, {"val_f1_weighted", r.validated ? m.f1_weighted.value : nan},
                  {"selected", r.score}});
  out_ << "epoch " << std::setw(3) << r.epoch + 1 << "/" << cfg_.train.epochs << "  lr " << std::scientific
       << std::setprecision(2) << r.lr << std::defaultfloat << "  train loss " << fmt(r.train_loss);
  if (r.validated)
    out_ << "  val loss " << fmt(val_.loss) << "  acc " << fmt(m.accuracy.value, 3) << "  bal.acc "
         << fmt(m.balanced_accuracy.value, 3) << "  macro AUC "
         << (m.auc_macro.defined ? fmt(m.auc_macro.value, 3) : "n/a")
         << (val_.temperature ? "  T " + fmt(val_.temperature->temperature, 2) : "") << (r.best ? "  *best" : "");
  out_ << std::endl;
}

// last every epoch, best when it is, and every output.checkpoint_every epochs a periodic one
// (only the newest kept with output.keep_last).
void TrainRun::save_checkpoints(const EpochResult& r) {
  st_.optimizer_state = opt_->state();
  StateDict weights = model_->state_dict();
  sum_.last_weights = (fs::path(sum_.run_dir) / "last.safetensors").string();
  if (!lead_) return;
  save_checkpoint(sum_.run_dir, "last", weights, st_);
  if (r.best) save_checkpoint(sum_.run_dir, "best", weights, st_);
  const int every = cfg_.output.checkpoint_every;
  if (every <= 0 || (r.epoch + 1) % every != 0) return;
  save_checkpoint(sum_.run_dir, "epoch" + std::to_string(r.epoch + 1), weights, st_);
  if (!cfg_.output.keep_last) return;
  const fs::path before = fs::path(sum_.run_dir) / ("epoch" + std::to_string(r.epoch + 1 - every) + ".safetensors");
  fs::remove(state_path_for(before.string()));
  fs::remove(before);
}

TrainSummary TrainRun::run() {
  FitPlan plan;
  plan.epochs = cfg_.train.epochs;
  plan.base_lr = cfg_.optim.lr;
  plan.schedule = cfg_.schedule;
  plan.max_epochs_this_call = hooks_.max_epochs_this_call;
  plan.stop = hooks_.stop;
  trainer_->fit(plan, callbacks());
  const TrainerState& ts = trainer_->state();
  sum_.epochs_done = ts.epoch;
  sum_.best_epoch = ts.best_epoch;
  sum_.best_value = ts.best_value;
  sum_.best_weights = (fs::path(sum_.run_dir) / "best.safetensors").string();
  return sum_;
}

}  // namespace

TrainSummary train(const Config& cfg, bool resume, const TrainHooks& hooks) {
  auto comm = init_distributed(resolve_device(cfg.train.device));
  try {
    TrainRun run(cfg, resume, hooks, *comm);
    return run.run();
  } catch (const std::exception& e) {
    // A rank that cannot go on must not leave the others waiting in a collective.
    if (comm->world() > 1) comm->abort(comm->who() + ": " + e.what());
    throw;
  }
}

}  // namespace mc
