#include "apps/common/trainer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <optional>
#include <sstream>

#include "pipeline/predictions.h"
#include "engine/dist.h"
#include "engine/memory.h"
#include "engine/metrics.h"
#include "engine/precision.h"
#include "engine/prims.h"
#include "engine/schedule.h"
#include "io/checkpoint.h"
#include "io/loader.h"
#include "io/progress.h"
#include "io/runlog.h"
#include "io/safetensors.h"
#include "io/state_dict_io.h"
#include "losses/losses.h"
#include "losses/posthoc.h"
#include "models/resnet3d.h"

namespace mc {
namespace fs = std::filesystem;

std::unique_ptr<Optimizer> build_optimizer(const Config& cfg, nn::Module& model) {
  const auto& o = cfg.optim;
  if (o.name == Config::Optim::Name::SGD)
    return std::make_unique<SGD>(model.parameters(),
                                 SGDOptions{.lr = o.lr, .momentum = o.momentum, .dampening = 0,
                                            .weight_decay = o.weight_decay, .nesterov = o.nesterov});
  return std::make_unique<AdamW>(model.parameters(),
                                 AdamWOptions{.lr = o.lr, .beta1 = o.betas.at(0), .beta2 = o.betas.at(1),
                                              .eps = o.eps, .weight_decay = o.weight_decay});
}

namespace {

LrSchedule schedule_of(const Config& cfg) {
  LrSchedule s;
  s.kind = cfg.schedule.name == Config::Schedule::Name::Cosine ? LrSchedule::Kind::Cosine
           : cfg.schedule.name == Config::Schedule::Name::Step ? LrSchedule::Kind::Step
                                                                 : LrSchedule::Kind::Constant;
  s.base_lr = cfg.optim.lr;
  s.total_epochs = cfg.train.epochs;
  s.warmup_epochs = cfg.schedule.warmup_epochs;
  s.min_lr = cfg.schedule.min_lr;
  s.step_size = cfg.schedule.step_size;
  s.gamma = cfg.schedule.gamma;
  return s;
}

LossSpec loss_spec_of(const Config& cfg) {
  LossSpec s;
  s.type = parse_loss_type(std::string(to_string(cfg.loss.type)));
  s.tau1 = cfg.loss.tau1;
  s.beta = cfg.loss.beta;
  return s;
}

LoaderOptions train_loader_options(const Config& cfg, Device dev) {
  LoaderOptions lo;
  lo.batch = cfg.train.batch_size;
  lo.sampling = cfg.train.sampling == Config::Train::Sampling::Balanced ? Sampling::ClassBalanced
                                                                        : Sampling::Shuffle;
  lo.seed = uint64_t(cfg.train.seed);
  lo.num_classes = cfg.model.num_classes;
  lo.epoch_samples = cfg.train.epoch_samples;
  lo.drop_last = true;  // a batch of one breaks batch-norm statistics
  lo.workers = cfg.data.num_workers;  // 0: batches built in the training thread
  lo.device = dev;
  const auto& a = cfg.augment;
  lo.augment = a.enabled;
  lo.aug.flip_p[0] = lo.aug.flip_p[1] = lo.aug.flip_p[2] = float(a.flip_prob);
  lo.aug.rot90_p = float(a.rot90_prob);
  lo.aug.rotate_p = float(a.rotate_prob);
  lo.aug.rotate_deg = float(a.rotate_deg);
  lo.aug.intensity_p = float(a.intensity_prob);
  lo.aug.noise_p = float(a.noise_prob);
  lo.aug.scale_range = float(a.intensity_scale);
  lo.aug.shift_range = float(a.intensity_shift);
  lo.aug.noise_std = float(a.noise_std);
  lo.balaug = a.balaug;
  return lo;
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

double grad_norm_clip(nn::Module& model, double max_norm) {
  Tensor g = model.flat_grads();
  const double norm = std::sqrt(prims::sum_all(prims::mul(g, g)).item());
  if (norm > max_norm) {  // torch.nn.utils.clip_grad_norm_: scale by max / (norm + 1e-6)
    Tensor scaled = prims::scale(g, max_norm / (norm + 1e-6));
    g.copy_(scaled);
  }
  return norm;
}

std::string fmt(double v, int prec = 4) {
  std::ostringstream s;
  s << std::fixed << std::setprecision(prec) << v;
  return s.str();
}

}  // namespace

// The run on this rank's share of the work (the whole of it with a world of one).
static TrainSummary train_on(const Config& cfg, bool resume, const TrainHooks& hooks, Communicator& comm);

TrainSummary train(const Config& cfg, bool resume, const TrainHooks& hooks) {
  // One process per GPU (or CPU node) under mpirun / torchrun; a world of one otherwise.
  auto comm = init_distributed(resolve_device(cfg.train.device));
  try {
    return train_on(cfg, resume, hooks, *comm);
  } catch (const std::exception& e) {
    // A rank that cannot go on must not leave the others waiting in a collective.
    if (comm->world() > 1) comm->abort(comm->who() + ": " + e.what());
    throw;
  }
}

static TrainSummary train_on(const Config& cfg, bool resume, const TrainHooks& hooks, Communicator& comm) {
  const Device dev = comm.device();
  const int world = comm.world();
  const bool lead = comm.rank() == 0;  // only rank 0 prints and writes
  std::ostringstream discard;
  std::ostream& out = !lead ? discard : hooks.out ? *hooks.out : std::cout;
  set_precision(cfg.train.precision);
  set_deterministic(cfg.train.deterministic);
  TrainSummary sum;
  sum.run_dir = cfg.output.dir;
  MC_CHECK(cfg.train.batch_size % world == 0, "train.batch_size ", cfg.train.batch_size,
           " is the global batch and must divide evenly over ", world, " ranks");

  const std::string train_path = split_cache_path(cfg.data, "train");
  const std::string val_path = split_cache_path(cfg.data, "val");
  MC_CHECK(fs::exists(train_path), "training cache '", train_path,
           "' not found: run mc_prep first (or set data.train_cache)");
  MC_CHECK(fs::exists(val_path), "validation cache '", val_path,
           "' not found: run mc_prep first (or set data.val_cache)");

  fs::create_directories(sum.run_dir);  // only once the inputs are known to exist
  auto model = build_model(cfg);
  model->flatten_parameters(dev);
  auto opt = build_optimizer(cfg, *model);
  const LrSchedule sched = schedule_of(cfg);

  LoaderOptions lo = train_loader_options(cfg, dev);
  lo.batch = cfg.train.batch_size / world;  // this rank's slice of every global batch
  lo.rank = comm.rank();
  lo.world = world;
  Loader train_loader(train_path, lo);
  const Cache& cache = train_loader.cache();
  MC_CHECK(cache.volume_shape()[0] == cfg.model.in_chans, "model.in_chans is ", cfg.model.in_chans,
           " but the cache '", train_path, "' holds ", cache.volume_shape()[0],
           " channel(s) (one per HU window)");
  const std::vector<int64_t> counts = cache.class_counts(cfg.model.num_classes);
  Loss loss_fn(loss_spec_of(cfg), counts);

  // Resume from <run>/last.
  TrainingState st;
  st.optimizer = std::string(to_string(cfg.optim.name));
  st.config_yaml = to_yaml(cfg);
  const std::string last = (fs::path(sum.run_dir) / "last.safetensors").string();
  if (resume) {
    MC_CHECK(fs::exists(last), "--resume: no checkpoint '", last, "' to resume from");
    st = load_training_state(state_path_for(last), last);
    MC_CHECK(st.optimizer == to_string(cfg.optim.name), "--resume: the checkpoint used optimizer '",
             st.optimizer, "', the config says '", to_string(cfg.optim.name), "'");
    load_state_dict(model->state_dict(), load_safetensors(last), LoadOptions{});
    opt->load_state(st.optimizer_state);
    st.config_yaml = to_yaml(cfg);
    out << "resumed from " << last << " after epoch " << st.epoch << "\n";
  } else if (lead) {
    std::ofstream(fs::path(sum.run_dir) / "config.yaml") << to_yaml(cfg);
  }
  // The training prior travels with every checkpoint: mc_predict adjusts with it.
  std::string counts_csv;
  for (size_t k = 0; k < counts.size(); ++k) counts_csv += (k ? "," : "") + std::to_string(counts[k]);
  st.extra["class_counts"] = counts_csv;
  std::optional<RunLog> log;
  if (lead) log.emplace(sum.run_dir, resume ? st.epoch : 0);
  if (world > 1) {
    // Every replica starts from rank 0's weights and statistics, whatever each loaded.
    Tensor flat = model->flat_params();
    comm.broadcast(flat, 0);
    for (auto& [name, b] : model->named_buffers())
      if (is_floating(b->dtype())) comm.broadcast(*b, 0);
    const int synced = cfg.train.sync_bn ? nn::set_sync_batchnorm(*model, &comm) : 0;
    out << "data parallel: " << world << " ranks (" << comm.backend() << "), batch " << lo.batch
        << " per rank = " << cfg.train.batch_size << " global, lr " << cfg.optim.lr
        << (synced ? ", synchronised batch norm (" + std::to_string(synced) + " layers)" : ", local batch norm")
        << "\n";
  }

  out << "training " << model_arch(cfg.model.name) << " on " << dev.str() << " ("
      << precision_name(precision()) << "), " << cache.size() << " training volumes "
      << shape_str(cache.volume_shape()) << ", classes [";
  for (size_t k = 0; k < counts.size(); ++k) out << (k ? ", " : "") << counts[k];
  out << "], batch " << cfg.train.batch_size << ", " << train_loader.steps_per_epoch()
      << " steps/epoch, loss " << to_string(cfg.loss.type) << "\n";

  int64_t epochs_this_call = 0;
  for (int64_t epoch = st.epoch; epoch < cfg.train.epochs; ++epoch) {
    if (hooks.max_epochs_this_call >= 0 && epochs_this_call >= hooks.max_epochs_this_call) break;
    opt->set_lr(sched.lr_at(int(epoch)));
    train_loader.set_epoch(epoch);
    model->train();
    std::optional<Progress> bar;
    if (lead)
      bar.emplace("epoch " + std::to_string(epoch + 1) + "/" + std::to_string(cfg.train.epochs),
                  train_loader.steps_per_epoch());
    double loss_sum = 0;
    int64_t steps = 0;
    while (auto b = train_loader.next()) {
      model->zero_grad();
      Tensor loss = loss_fn(model->forward(b->images), b->labels);
      const double l = loss.item();
      MC_CHECK(std::isfinite(l), "the loss became ", l, " at epoch ", epoch + 1, ", step ", steps + 1,
               " (global step ", st.global_step + 1, "); lower optim.lr or check the data");
      loss.backward();
      // Each rank's loss is the mean over its slice: the average of the ranks' gradients is the
      // gradient of the global batch's mean.
      if (world > 1) allreduce_gradients(comm, model->flat_grads(), 1.0 / world);
      if (cfg.train.grad_clip > 0) grad_norm_clip(*model, cfg.train.grad_clip);
      opt->step();
      ++st.global_step;
      loss_sum += l;
      ++steps;
      if (bar) {
        bar->set_note("loss " + fmt(loss_sum / double(steps)));
        bar->tick();
      }
    }
    if (bar) bar->finish();
    bool interrupted = hooks.stop && hooks.stop->load();
    if (world > 1) {
      loss_sum = allreduce_scalar(comm, loss_sum) / world;
      interrupted = allreduce_scalar(comm, interrupted ? 1.0 : 0.0) > 0;  // all ranks stop together
    }
    const double train_loss = steps ? loss_sum / double(steps) : NAN;

    // Validation with post-hoc adjustment (tau2), metrics, selection. Each rank predicts a shard.
    PredictionTable val = predict_cache(*model, val_path, cfg.train.batch_size, dev, "", comm.rank(), world);
    if (world > 1) val = gather_predictions(comm, val, Cache::open(val_path).size());
    const Tensor val_logits = val.scores_tensor(DType::F32), val_labels = val.labels_tensor();
    Tensor probs = posthoc_probabilities(val_logits, std::vector<double>(counts.begin(), counts.end()),
                                         cfg.posthoc.tau2);
    ClassificationMetrics m = classification_metrics(val_labels, probs);
    double val_loss;
    {
      NoGradGuard ng;
      val_loss = loss_fn(val_logits, val_labels).item();
    }
    const double score = selection_score(cfg, m, val_loss);
    const bool best = st.best_epoch < 0 || score > st.best_value;
    if (best) {
      st.best_value = score;
      st.best_epoch = epoch + 1;
    }
    st.epoch = epoch + 1;
    if (log) log->append({{"epoch", double(epoch + 1)}, {"lr", opt->lr()}, {"train_loss", train_loss},
                {"val_loss", val_loss}, {"val_accuracy", m.accuracy.value},
                {"val_balanced_accuracy", m.balanced_accuracy.value},
                {"val_auc_macro", m.auc_macro.defined ? m.auc_macro.value : NAN},
                {"val_f1_weighted", m.f1_weighted.value}, {"selected", score}});
    out << "epoch " << std::setw(3) << epoch + 1 << "/" << cfg.train.epochs << "  lr " << std::scientific
        << std::setprecision(2) << opt->lr() << std::defaultfloat << "  train loss " << fmt(train_loss)
        << "  val loss " << fmt(val_loss) << "  acc " << fmt(m.accuracy.value, 3) << "  bal.acc "
        << fmt(m.balanced_accuracy.value, 3) << "  macro AUC "
        << (m.auc_macro.defined ? fmt(m.auc_macro.value, 3) : "n/a") << (best ? "  *best" : "") << std::endl;

    st.optimizer_state = opt->state();
    StateDict weights = model->state_dict();
    sum.last_weights = (fs::path(sum.run_dir) / "last.safetensors").string();
    if (lead) {
      save_checkpoint(sum.run_dir, "last", weights, st);
      if (best) save_checkpoint(sum.run_dir, "best", weights, st);
      if (cfg.output.checkpoint_every > 0 && (epoch + 1) % cfg.output.checkpoint_every == 0)
        save_checkpoint(sum.run_dir, "epoch" + std::to_string(epoch + 1), weights, st);
    }
    if (world > 1) comm.barrier();  // no rank runs ahead of a checkpoint being written
    ++epochs_this_call;
    if (interrupted) {
      sum.interrupted = true;
      out << "stopped after epoch " << epoch + 1 << ": resume with --resume\n";
      break;
    }
  }
  sum.epochs_done = st.epoch;
  sum.best_epoch = st.best_epoch;
  sum.best_value = st.best_value;
  sum.best_weights = (fs::path(sum.run_dir) / "best.safetensors").string();
  return sum;
}

}  // namespace mc
