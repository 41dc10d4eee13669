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
#include "io/atomic_file.h"
#include "io/checkpoint.h"
#include "io/loader.h"
#include "io/progress.h"
#include "io/runlog.h"
#include "io/safetensors.h"
#include "io/state_dict_io.h"
#include "io/task.h"
#include "losses/losses.h"
#include "losses/posthoc.h"
#include "models/resnet3d.h"
#include "pipeline/train_export.h"

namespace mc::pipeline {
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
    case Config::Eval::SelectBy::Auto:
    case Config::Eval::SelectBy::MacroAUC: return m.auc_macro.defined ? m.auc_macro.value : 0.0;
    case Config::Eval::SelectBy::MAE: break;  // regression: validate_regression scores it
    case Config::Eval::SelectBy::BalancedAccuracy: return m.balanced_accuracy.value;
    case Config::Eval::SelectBy::Accuracy: return m.accuracy.value;
    case Config::Eval::SelectBy::Loss: return -val_loss;
  }
  return 0;
}

struct Validation {
  ClassificationMetrics metrics;  // regression: of the classes derived from the predicted T
  double loss = NAN;
  std::optional<eval::TemperatureFit> temperature;  // fitted on this epoch's validation scores
  double mae = NAN;  // regression only
};

// One-hot rows of the classes the task's thresholds give the predicted T-scores: how a
// regression model is scored on the classification metrics.
std::vector<double> derived_onehot(const io::Task& task, const std::vector<double>& t_pred) {
  const int64_t K = task.num_classes();
  std::vector<double> onehot(t_pred.size() * size_t(K), 0.0);
  for (size_t i = 0; i < t_pred.size(); ++i) onehot[i * size_t(K) + size_t(std::max<int64_t>(0, task.classify(t_pred[i])))] = 1;
  return onehot;
}

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
  Tensor forward(const Tensor& x);
  void start_exports();
  void begin_epoch(int64_t epoch);
  void finish_bar(const EpochResult& r);
  double validate(const EpochResult& r);
  double validate_regression(const eval::PredictionTable& val);
  void end_epoch(const EpochResult& r);
  void log_epoch(const EpochResult& r);
  void save_checkpoints(const EpochResult& r);

  const Config& cfg_;
  const io::Task task_;
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
  std::unique_ptr<io::Loader> loader_;
  std::vector<int64_t> counts_;  // training class counts: the loss's and post-hoc's prior
  std::unique_ptr<losses::Loss> loss_;
  std::unique_ptr<Trainer> trainer_;
  io::TrainingState st_;
  std::optional<io::RunLog> log_;
  std::optional<io::Progress> bar_;
  Validation val_;  // of the epoch being finished
  bool checked_start_ = false;  // the first step's feature check (forward) is done
  std::optional<StepExporter> steps_out_;
  std::optional<io::Batch> last_batch_;  // kept for the step log only
};

TrainRun::TrainRun(const Config& cfg, bool resume, const TrainHooks& hooks, Communicator& comm)
    : cfg_(cfg), task_(task_of(cfg)), resume_(resume), hooks_(hooks), comm_(comm), dev_(comm.device()),
      lead_(comm.rank() == 0),
      out_(!lead_ ? discard_ : hooks.out ? *hooks.out : std::cout) {
  set_compute_mode(cfg_, dev_);
  sum_.run_dir = cfg_.output.dir;
  train_path_ = split_cache_path(cfg_.data, "train");
  val_path_ = split_cache_path(cfg_.data, "val");
  check_inputs();
  fs::create_directories(sum_.run_dir);  // only once the inputs are known to exist
  if (lead_) {  // what a kill -9 left behind: said, then removed
    for (const std::string& f : io::remove_stale_temporaries(sum_.run_dir))
      out_ << "removed a stale temporary file " << f << "\n";
    for (const std::string& f : io::remove_torn_checkpoints(sum_.run_dir))
      out_ << "removed a torn checkpoint " << f << "\n";
  }
  build();
  start_or_resume();
  if (comm_.world() > 1) join_ranks();
  print_header();
  start_exports();
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
  if (hooks_.float64) {
    MC_CHECK(dev_.is_cpu(), "float64 training runs on the CPU only (train.device=cpu)");
    model_->to(DType::F64);
  }
  model_->flatten_parameters(dev_);
  opt_ = build_optimizer(cfg_, *model_);
  loader_ = std::make_unique<io::Loader>(train_path_,
                                     train_loader_options(cfg_, dev_, comm_.rank(), comm_.world()));
  const io::Cache& cache = loader_->cache();
  MC_CHECK(cache.volume_shape()[0] == cfg_.model.in_chans, "model.in_chans is ", cfg_.model.in_chans,
           " but the cache '", train_path_, "' holds ", cache.volume_shape()[0],
           " channel(s) (one per HU window)");
  const io::Task task = task_;
  if (auto own = io::task_from_meta(cache.meta(), train_path_)) {
    own->head = task.head;  // the labels of a cache serve either head: the T-score is stored too
    const std::string d = own->difference(task);
    MC_CHECK(d.empty(), "the training cache '", train_path_, "' was prepared for another task: ", d,
             " (cache vs config); run mc_prep again with this config");
  }
  if (!task.regression()) {  // an unknown label (-1) would fail mid-training in the loss, naming nothing
    std::string unknown;
    int64_t n = 0;
    for (const auto& rec : cache.records())
      if (rec.label < 0 && n++ < 10) unknown += (unknown.empty() ? "" : ", ") + rec.id;
    MC_CHECK(n == 0, "training cache '", train_path_, "': ", n, " subject(s) have no label (-1): ", unknown,
             n > 10 ? ", ..." : "", "; give them a label in data.raw.labels_csv and run mc_prep again");
  }
  counts_ = cache.class_counts(cfg_.model.num_classes);
  if (task.regression())
    for (const io::CacheRecord& r : cache.records())
      MC_CHECK(std::isfinite(r.tscore), "model.head regression learns the T-score, but subject '", r.id,
               "' of the training cache '", train_path_, "' has none (labels from a class column?)");
  // Every loss but plain CE takes a prior or a weight from each class's training count.
  if (cfg_.loss.type != losses::LossType::CE && !task.regression())
    for (size_t k = 0; k < counts_.size(); ++k)
      MC_CHECK(counts_[k] > 0, "loss.type ", to_string(cfg_.loss.type), " needs every class in the training split, "
               "but class '", task.name(int64_t(k)), "' (", k, ") has no training subject in '", train_path_,
               "' (its log prior / class weight is undefined): use loss.type ce, or gather subjects of that class");
  loss_ = std::make_unique<losses::Loss>(cfg_.loss, counts_);
  TrainerOptions topt = cfg_.trainer;
  if (!hooks_.export_steps.empty()) topt.sync_every = 1;  // each step's loss, as it is taken
  trainer_ = std::make_unique<Trainer>(
      *model_, *opt_,
      [this](const Tensor& out, const Tensor& target) {
        return task_.regression() ? losses::regression_loss(cfg_.loss, out, target) : (*loss_)(out, target);
      },
      topt, &comm_);
  trainer_->set_forward([this](const Tensor& x) { return forward(x); });
}

// The model's forward; on the first step of a new run, through the pooled features, which are
// read once to check that they vary across the batch (pipeline/train_export.h).
Tensor TrainRun::forward(const Tensor& x) {
  auto* resnet = dynamic_cast<models::ResNet3d*>(model_.get());
  const Tensor in = hooks_.float64 ? model_input(x, dev_).to(DType::F64) : model_input(x, dev_);
  if (checked_start_ || !resnet) return model_->forward(in);
  checked_start_ = true;
  Tensor pooled = resnet->forward_pooled(in);
  const FeatureSpread fs = feature_spread(pooled);
  if (fs.constant()) out_ << dead_start_warning(fs, cfg_, loader_->cache().volume_shape()) << std::endl;
  return resnet->forward_head(pooled);
}

void TrainRun::start_exports() {
  if (!lead_) return;
  if (!hooks_.export_init.empty()) {
    io::save_safetensors(hooks_.export_init, model_->state_dict());
    out_ << "exported the initial weights to " << hooks_.export_init << "\n";
  }
  if (!hooks_.export_steps.empty()) {
    steps_out_.emplace(hooks_.export_steps, cfg_, train_path_, val_path_, counts_,
                       loader_->steps_per_epoch(), loader_->cache().volume_shape(), hooks_.export_init,
                       hooks_.float64 ? "float64" : "float32");
    out_ << "exporting every step's batch, augmentation, lr and loss to " << hooks_.export_steps << "\n";
  }
}

// Resumes from <run>/last, or records the resolved config of a new run.
void TrainRun::start_or_resume() {
  const std::string optimizer = optimizer_label(cfg_.optim);
  st_.optimizer = optimizer;
  const std::string last = (fs::path(sum_.run_dir) / "last.safetensors").string();
  if (resume_) {
    MC_CHECK(fs::exists(last), "--resume: no checkpoint '", last, "' to resume from");
    st_ = io::load_training_state(io::state_path_for(last), last);
    MC_CHECK(st_.optimizer == optimizer, "--resume: the checkpoint used optimizer '", st_.optimizer,
             "', the config says '", optimizer, "'");
    io::load_state_dict(model_->state_dict(), io::load_safetensors(last), io::LoadOptions{});
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
  for (const auto& [k, v] : io::task_meta(task_of(cfg_))) st_.extra[k] = v;
  trainer_->state() = {st_.epoch, st_.global_step, st_.best_epoch, st_.best_value};
  checked_start_ = st_.global_step > 0;  // the start check is for a new run's first step
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
  const io::Cache& cache = loader_->cache();
  out_ << "training " << model_arch(cfg_.model.name) << " on " << dev_.str() << " ("
       << precision_name(precision()) << "), " << cache.size() << " training volumes "
       << shape_str(cache.volume_shape()) << ", classes [";
  for (size_t k = 0; k < counts_.size(); ++k) out_ << (k ? ", " : "") << counts_[k];
  out_ << "], batch " << cfg_.train.batch_size << ", " << loader_->steps_per_epoch()
       << " steps/epoch, loss "
       << (task_.regression() ? std::string(to_string(cfg_.loss.regression)) + " on the T-score" : std::string(to_string(cfg_.loss.type)))
       << "\n";
}

FitCallbacks TrainRun::callbacks() {
  FitCallbacks cb;
  cb.next_batch = [this]() -> std::optional<TrainBatch> {
    std::optional<io::Batch> b = loader_->next();
    if (!b) return std::nullopt;
    TrainBatch tb{b->images, task_.regression() ? b->tscores : b->labels, b->ids};
    if (steps_out_) {
      b->images = Tensor();  // the log keeps indices and transforms, not the volumes
      last_batch_ = std::move(b);
    }
    return tb;
  };
  cb.begin_epoch = [this](int64_t epoch) { begin_epoch(epoch); };
  cb.on_step = [this](const StepProgress& p) {
    if (steps_out_ && last_batch_) {
      StepRecord r{.epoch = last_batch_->epoch, .step = p.step - 1,
                   .global_step = trainer_->state().global_step - 1, .lr = p.lr,
                   .loss = trainer_->last_read().empty() ? NAN : trainer_->last_read().back(),
                   .indices = last_batch_->indices, .labels = {}, .augment = last_batch_->augment};
      r.labels = last_batch_->labels.to_vector<int64_t>();
      steps_out_->step(r);
    }
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
  eval::PredictionTable val = predict_cache(*model_, val_path_, cfg_.train.batch_size, dev_, "", comm_.rank(), world);
  if (world > 1) val = gather_predictions(comm_, val, io::Cache::open(val_path_).size());
  if (task_.regression()) return validate_regression(val);
  const Tensor logits = val.scores_tensor(DType::F32), labels = val.labels_tensor();
  Tensor probs = losses::posthoc_probabilities(logits, std::vector<double>(counts_.begin(), counts_.end()),
                                       cfg_.posthoc.tau2);
  val_.metrics = classification_metrics(labels, probs);
  // Temperature scaling on the adjusted scores at posthoc.tau2 (eval/calibration.h's order);
  // it travels with the checkpoint of this epoch and mc_predict / mc_eval apply it.
  {
    const int64_t K = val.num_classes();
    std::vector<double> adjusted = val.scores;
    if (cfg_.posthoc.tau2 != 0) {
      const std::vector<double> f = losses::normalize_prior(std::vector<double>(counts_.begin(), counts_.end()));
      for (size_t i = 0; i < adjusted.size(); ++i) adjusted[i] -= cfg_.posthoc.tau2 * std::log(f[i % size_t(K)]);
    }
    std::vector<double> rows;
    std::vector<int64_t> known;  // a row without a label has nothing to fit
    for (int64_t i = 0; i < val.size(); ++i)
      if (val.labels[size_t(i)] >= 0 && val.labels[size_t(i)] < K) {
        known.push_back(val.labels[size_t(i)]);
        rows.insert(rows.end(), adjusted.begin() + i * K, adjusted.begin() + (i + 1) * K);
      }
    if (!known.empty()) val_.temperature = eval::fit_temperature(rows, known, K);
  }
  {
    NoGradGuard ng;
    val_.loss = (*loss_)(logits, labels).item();
  }
  if (steps_out_) {
    const ClassificationMetrics& m = val_.metrics;
    steps_out_->validation({r.epoch + 1, val_.loss, m.accuracy.value, m.balanced_accuracy.value,
                            m.auc_macro.defined ? m.auc_macro.value : NAN});
  }
  return selection_score(cfg_, val_.metrics, val_.loss);
}

// The predicted T against the cache's, on the subjects that have one; the selection score is
// -MAE (or -loss).
double TrainRun::validate_regression(const eval::PredictionTable& val) {
  const io::Cache cache = io::Cache::open(val_path_);
  std::vector<double> pred, truth;
  std::vector<int64_t> labels;
  for (int64_t i = 0; i < val.size(); ++i) {
    const io::CacheRecord& r = cache.record(val.indices[size_t(i)]);
    if (!std::isfinite(r.tscore)) continue;
    pred.push_back(val.scores[size_t(i)]), truth.push_back(r.tscore), labels.push_back(task_.classify(r.tscore));
  }
  MC_CHECK(!pred.empty(), "validation cache '", val_path_, "' has no subject with a T-score to validate a regression head on");
  double abs_sum = 0;
  for (size_t i = 0; i < pred.size(); ++i) abs_sum += std::abs(pred[i] - truth[i]);
  val_.mae = abs_sum / double(pred.size());
  val_.metrics = classification_metrics(labels, derived_onehot(task_, pred), task_.num_classes());
  {
    NoGradGuard ng;
    val_.loss = losses::regression_loss(cfg_.loss, Tensor::from(pred, {int64_t(pred.size())}),
                                Tensor::from(truth, {int64_t(truth.size())})).item();
  }
  return cfg_.eval.select_by == Config::Eval::SelectBy::Loss ? -val_.loss : -val_.mae;
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
    st_.extra["temperature"] = io::shortest(val_.temperature->temperature);
    st_.extra["temperature_tau2"] = io::shortest(cfg_.posthoc.tau2);
    st_.extra["temperature_nll_before"] = io::shortest(val_.temperature->nll_before);
    st_.extra["temperature_nll_after"] = io::shortest(val_.temperature->nll_after);
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
  if (log_) {
    io::LogRow row = {{"epoch", double(r.epoch + 1)}, {"lr", r.lr}, {"train_loss", r.train_loss},
                  {"val_loss", val_.loss}, {"val_accuracy", r.validated ? m.accuracy.value : nan},
                  {"val_balanced_accuracy", r.validated ? m.balanced_accuracy.value : nan},
                  {"val_auc_macro", auc}, {"val_f1_weighted", r.validated ? m.f1_weighted.value : nan}};
    if (task_.regression()) row.push_back({"val_mae", r.validated ? val_.mae : nan});
    row.push_back({"selected", r.score});
    log_->append(row);
  }
  out_ << "epoch " << std::setw(3) << r.epoch + 1 << "/" << cfg_.train.epochs << "  lr " << std::scientific
       << std::setprecision(2) << r.lr << std::defaultfloat << "  train loss " << fmt(r.train_loss);
  if (r.validated && task_.regression())
    out_ << "  val loss " << fmt(val_.loss) << "  MAE " << fmt(val_.mae, 3) << "  derived acc "
         << fmt(m.accuracy.value, 3) << "  bal.acc " << fmt(m.balanced_accuracy.value, 3) << (r.best ? "  *best" : "");
  else if (r.validated)
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
  io::save_checkpoint(sum_.run_dir, "last", weights, st_);
  if (r.best) io::save_checkpoint(sum_.run_dir, "best", weights, st_);
  const int every = cfg_.output.checkpoint_every;
  if (every <= 0 || (r.epoch + 1) % every != 0) return;
  io::save_checkpoint(sum_.run_dir, "epoch" + std::to_string(r.epoch + 1), weights, st_);
  if (!cfg_.output.keep_last) return;
  const fs::path before = fs::path(sum_.run_dir) / ("epoch" + std::to_string(r.epoch + 1 - every) + ".safetensors");
  fs::remove(before);  // weights first: a kill here leaves a state alone, removed at the next start
  fs::remove(io::state_path_for(before.string()));
}

TrainSummary TrainRun::run() {
  FitPlan plan;
  plan.epochs = cfg_.train.epochs;
  plan.base_lr = cfg_.optim.lr;
  plan.schedule = cfg_.schedule;
  plan.steps_per_epoch = loader_->steps_per_epoch();
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

}  // namespace mc::pipeline
