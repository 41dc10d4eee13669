#include "pipeline/crossval.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <iostream>
#include <set>

#include "eval/evaluation.h"
#include "io/atomic_file.h"
#include "io/cache.h"
#include "io/checkpoint.h"
#include "io/csv.h"
#include "io/json.h"
#include "io/split.h"
#include "io/text.h"
#include "losses/posthoc.h"
#include "pipeline/evaluate.h"
#include "pipeline/model.h"
#include "pipeline/predictions.h"

namespace mc::pipeline {
namespace fs = std::filesystem;
namespace {

std::string fold_dir(const Config& cfg, int k) {
  return (fs::path(cfg.output.dir) / ("fold_" + std::to_string(k))).string();
}

// The rows of fold k's three caches: train (neither k nor k+1), val (k+1 mod K), oof (k).
std::vector<const FoldPlan::Subject*> part(const FoldPlan& plan, int k, const std::string& which) {
  const int val = (k + 1) % plan.folds;
  std::vector<const FoldPlan::Subject*> v;
  for (const auto& s : plan.subjects) {
    const bool in = which == "oof" ? s.fold == k : which == "val" ? s.fold == val : s.fold != k && s.fold != val;
    if (in) v.push_back(&s);
  }
  return v;
}

// Writes one of fold k's caches unless it is there with exactly these subjects (a resumed run);
// one with others is an error: the plan changed under a run that used it.
void write_part(const FoldPlan& plan, int k, const std::string& which, const std::string& path) {
  const auto rows = part(plan, k, which);
  MC_CHECK(!rows.empty(), "cross-validation: fold ", k, " has no ", which, " subjects (", plan.subjects.size(),
           " subjects in ", plan.folds, " folds)");
  std::vector<std::string> want;
  for (const auto* s : rows) want.push_back(s->id);
  if (fs::exists(path)) {
    std::vector<std::string> have;
    const io::Cache existing = io::Cache::open(path);  // kept alive: records() refers into it
    for (const io::CacheRecord& r : existing.records()) have.push_back(r.id);
    MC_CHECK(have == want, "cross-validation: '", path, "' holds other subjects than fold ", k, "'s ", which,
             " split of this config (", plan.source, "): remove the run folder or use another output.dir");
    return;
  }
  fs::create_directories(fs::path(path).parent_path());
  std::map<std::string, io::Cache> open;
  std::vector<io::CacheRecord> records;
  std::vector<Tensor> volumes;
  for (const auto* s : rows) {
    auto it = open.find(s->cache);
    if (it == open.end()) it = open.emplace(s->cache, io::Cache::open(s->cache)).first;
    records.push_back(it->second.record(s->index));
    volumes.push_back(it->second.volume_f32(s->index).clone());
  }
  const io::Cache& first = open.begin()->second;
  io::CacheWriteOptions wo;
  wo.dtype = first.stored_dtype();  // f16 -> f32 -> f16 is exact: the cubes are the same bits
  io::write_cache(path, records, volumes, first.meta(), wo);
}

io::Json plan_json(const FoldPlan& plan) {
  io::Json folds = io::Json::array();
  for (int k = 0; k < plan.folds; ++k) {
    io::Json ids = io::Json::array();
    for (const auto* s : part(plan, k, "oof")) ids.push_back(s->id);
    folds.push_back({{"fold", k}, {"dir", "fold_" + std::to_string(k)}, {"out_of_fold", std::move(ids)}});
  }
  return {{"format", "medconv-crossval"}, {"folds", plan.folds}, {"source", plan.source}, {"fold_list", std::move(folds)}};
}

// The first key whose value differs, "" when none.
std::string first_difference(const Config& a, const Config& b) {
  const auto fa = config_flat(a), fb = config_flat(b);
  for (size_t i = 0; i < fa.size() && i < fb.size(); ++i)
    if (fa[i] != fb[i]) return fa[i].first + " (" + fb[i].second + " there, " + fa[i].second + " now)";
  return fa.size() == fb.size() ? "" : "the set of keys";
}

// Labelled rows with each fold's post-hoc adjustment folded into its scores: softmax of the
// row is then the fold model's reported probabilities (at T = 1).
eval::PredictionTable adjusted_labelled(const eval::PredictionTable& t, const TrainingPrior& prior, double tau2) {
  eval::PredictionTable o;
  o.source = t.source;
  o.class_names = t.class_names;
  o.kind = eval::ScoreKind::Logits;
  const int64_t K = t.num_classes();
  std::vector<double> offset(size_t(K), 0.0);
  if (tau2 != 0 && prior.usable()) {
    const std::vector<double> f = losses::normalize_prior(std::vector<double>(prior.counts.begin(), prior.counts.end()));
    for (int64_t k = 0; k < K; ++k) offset[size_t(k)] = tau2 * std::log(f[size_t(k)]);
  }
  for (int64_t i = 0; i < t.size(); ++i) {
    if (t.labels[size_t(i)] < 0) continue;
    o.ids.push_back(t.ids[size_t(i)]);
    o.labels.push_back(t.labels[size_t(i)]);
    for (int64_t k = 0; k < K; ++k) o.scores.push_back(t.scores[size_t(i * K + k)] - offset[size_t(k)]);
  }
  return o;
}

// The fold model's raw scores on its out-of-fold subjects: logits (mc_eval --predictions reads
// them), or for a regression head id,tscore.
std::string oof_csv(const eval::PredictionTable& t, const io::Task& task) {
  if (!task.regression()) return eval::predictions_csv(t);
  std::string s = "id,tscore\n";
  for (int64_t i = 0; i < t.size(); ++i) s += io::csv_field(t.ids[size_t(i)]) + "," + io::shortest(t.scores[size_t(i)]) + "\n";
  return s;
}

ClassificationMetrics quick_metrics(const eval::PredictionTable& t) {
  eval::EvalOptions eo;
  eo.bootstrap.resamples = 0;
  eo.roc = false;
  return eval::evaluate(t, eo).rows.at(0).metrics;
}

}  // namespace

FoldPlan plan_folds(const Config& cfg) {
  FoldPlan plan;
  plan.folds = cfg.data.split.folds;
  MC_CHECK(plan.folds >= 3, "cross-validation needs data.split.folds >= 3 (one fold out, one validating, the rest "
           "training), got ", plan.folds);
  std::vector<std::string> sources;
  const fs::path fold0 = fs::path(cfg.data.cache_dir) / "fold0.safetensors";
  const bool prepared = cfg.data.split.mode == Config::Split::Mode::KFold && fs::exists(fold0);
  if (prepared) {
    for (int k = 0; k < plan.folds; ++k) {
      const fs::path p = fs::path(cfg.data.cache_dir) / ("fold" + std::to_string(k) + ".safetensors");
      MC_CHECK(fs::exists(p), "cross-validation: mc_prep's fold cache '", p.string(), "' is missing (data.split.folds = ",
               plan.folds, "; mc_prep wrote fold0 in '", cfg.data.cache_dir, "')");
      sources.push_back(p.string());
    }
    MC_CHECK(!fs::exists(fs::path(cfg.data.cache_dir) / ("fold" + std::to_string(plan.folds) + ".safetensors")),
             "cross-validation: '", cfg.data.cache_dir, "' holds more than data.split.folds = ", plan.folds,
             " fold caches: set data.split.folds to the number mc_prep made");
    plan.source = "mc_prep's " + std::to_string(plan.folds) + " fold caches in " + cfg.data.cache_dir;
  } else {
    for (const char* s : {"train", "val"}) {
      const std::string p = split_cache_path(cfg.data, s);
      MC_CHECK(fs::exists(p), "cross-validation: the ", s, " cache '", p, "' is not there (run mc_prep first); "
               "the folds are dealt from the train and val caches pooled");
      sources.push_back(p);
    }
    plan.source = "the train and val caches pooled (" + sources[0] + ", " + sources[1] + "), dealt into " +
                  std::to_string(plan.folds) + " class-stratified folds with seed " + std::to_string(cfg.train.seed);
  }
  Shape shape;
  std::string task_text;
  std::set<std::string> ids;
  for (size_t c = 0; c < sources.size(); ++c) {
    const io::Cache cache = io::Cache::open(sources[c]);
    const auto task = io::task_from_meta(cache.meta(), sources[c]);
    const std::string t = task ? task->describe() : "(no task)";
    if (c == 0) shape = cache.volume_shape(), task_text = t;
    MC_CHECK(cache.volume_shape() == shape, "cross-validation: '", sources[c], "' holds cubes of ",
             shape_str(cache.volume_shape()), ", '", sources[0], "' of ", shape_str(shape));
    MC_CHECK(t == task_text, "cross-validation: '", sources[c], "' was prepared for ", t, ", '", sources[0], "' for ",
             task_text);
    for (int64_t i = 0; i < cache.size(); ++i) {
      const io::CacheRecord& r = cache.record(i);
      MC_CHECK(ids.insert(r.id).second, "cross-validation: subject '", r.id, "' is in the pool twice (again in '",
               sources[c], "')");
      plan.subjects.push_back({sources[c], i, r.id, r.label, prepared ? int(c) : 0});
    }
  }
  MC_CHECK(int64_t(plan.subjects.size()) >= plan.folds, "cross-validation: ", plan.subjects.size(),
           " subjects cannot fill ", plan.folds, " folds");
  if (!prepared) {
    std::vector<std::string> v;
    std::vector<int64_t> l;
    for (const auto& s : plan.subjects) v.push_back(s.id), l.push_back(s.label);
    const std::vector<int> f = io::stratified_folds(v, l, plan.folds, uint64_t(cfg.train.seed));
    for (size_t i = 0; i < f.size(); ++i) plan.subjects[i].fold = f[i];
  }
  return plan;
}

Config fold_config(const Config& cfg, int k) {
  Config c = cfg;
  const fs::path d = fold_dir(cfg, k);
  c.output.dir = d.string();
  c.data.train_cache = (d / "data" / "train.safetensors").string();
  c.data.val_cache = (d / "data" / "val.safetensors").string();
  c.data.test_cache = (d / "data" / "oof.safetensors").string();
  c.train.all_folds = false;
  if (c.data.split.mode == Config::Split::Mode::KFold) c.data.split.fold = k;
  return c;
}

CrossValSummary train_folds(const Config& cfg, const TrainHooks& hooks, int only_fold) {
  std::ostream& out = hooks.out ? *hooks.out : std::cout;
  CrossValSummary sum;
  sum.run_dir = cfg.output.dir;
  const FoldPlan plan = plan_folds(cfg);
  MC_CHECK(only_fold >= -1 && only_fold < plan.folds, "cross-validation: fold ", only_fold,
           " asked for (--fold), but the run has ", plan.folds, " folds: 0 to ", plan.folds - 1);
  fs::create_directories(sum.run_dir);
  const fs::path stored = fs::path(sum.run_dir) / "config.yaml";
  if (fs::exists(stored)) {
    const Config before = load_config(stored.string(), {});
    const std::string diff = first_difference(cfg, before);
    MC_CHECK(diff.empty(), "cross-validation: '", sum.run_dir, "' holds a run of another config (", diff,
             "): use another output.dir, or remove that folder to start again");
  } else {
    io::write_atomic(stored.string(), to_yaml(cfg));
  }
  io::write_atomic((fs::path(sum.run_dir) / "crossval.json").string(), io::json_text(plan_json(plan)) + "\n");
  out << "cross-validation: " << plan.folds << " folds of " << plan.subjects.size() << " subjects, from "
      << plan.source << "\n";
  std::map<int64_t, int64_t> per_class;
  for (const auto& s : plan.subjects)
    if (s.label >= 0) ++per_class[s.label];
  for (const auto& [c, n] : per_class)  // dealt round-robin: under K, some folds lack the class
    if (n < plan.folds)
      out << "warning: class " << task_of(cfg).name(c) << " has " << n << " subject(s), fewer than the " << plan.folds
          << " folds: some folds validate or train without it\n";

  for (int k = 0; k < plan.folds; ++k) {
    const Config fc = fold_config(cfg, k);
    const fs::path dir = fc.output.dir;
    const fs::path done = dir / "done.json", last = dir / "last.safetensors";
    if (only_fold >= 0 && k != only_fold) continue;  // looked at once fold only_fold is done
    if (fs::exists(done)) {
      out << "fold " << k << ": finished earlier, not trained again\n";
      sum.skipped.push_back(k);
      continue;
    }
    for (const char* which : {"train", "val", "oof"})
      write_part(plan, k, which, split_cache_path(fc.data, std::string(which) == "oof" ? "test" : which));
    const bool resume = fs::exists(last);
    out << "fold " << k << ": " << (resume ? "resuming" : "training") << " into " << dir.string() << " ("
        << part(plan, k, "train").size() << " train, " << part(plan, k, "val").size() << " val, "
        << part(plan, k, "oof").size() << " out of fold)\n";
    TrainSummary ts;
    if (resume && io::load_training_state(io::state_path_for(last.string()), last.string()).epoch >= fc.train.epochs) {
      ts.epochs_done = fc.train.epochs;  // trained to the end; only done.json was missing
    } else {
      ts = train(fc, resume, hooks);
    }
    (resume ? sum.resumed : sum.trained).push_back(k);
    if (ts.epochs_done < fc.train.epochs) {
      sum.interrupted = true;
      out << "fold " << k << " stopped after epoch " << ts.epochs_done << " of " << fc.train.epochs
          << ": run the same command again to resume it\n";
      return sum;
    }
    MC_CHECK(fs::exists(dir / "best.safetensors"), "cross-validation: fold ", k, " finished without a best checkpoint in '",
             dir.string(), "' (no validated epoch?)");
    io::write_atomic(done.string(), io::json_text(io::Json{{"fold", k}, {"epochs", fc.train.epochs}}) + "\n");
  }

  // Another process may have finished a fold meanwhile: the last to finish writes the report.
  if (only_fold >= 0) {
    for (int k = 0; k < plan.folds; ++k)
      if (k != only_fold)
        (fs::exists(fs::path(fold_dir(cfg, k)) / "done.json") ? sum.skipped : sum.waiting).push_back(k);
    std::sort(sum.skipped.begin(), sum.skipped.end());
  }
  if (!sum.waiting.empty()) {
    std::string w;
    for (int k : sum.waiting) w += (w.empty() ? "" : ", ") + std::to_string(k);
    out << "fold " << only_fold << " is finished; fold(s) " << w << " are not (another process may be training "
        << "them): the pooled report is written by whichever run finishes the last fold, or by mc_train --folds "
        << plan.folds << " without --fold once all are done\n";
    return sum;
  }
  sum.report_dir = (fs::path(sum.run_dir) / "report").string();
  if (int(sum.skipped.size()) == plan.folds && fs::exists(fs::path(sum.report_dir) / "report.json")) {
    // Same config (checked above), same fold models: the report there is this run's.
    for (int k = 0; k < plan.folds; ++k)
      sum.checkpoints.push_back((fs::path(fold_dir(cfg, k)) / "best.safetensors").string());
    out << "every fold finished earlier and the pooled report is in place: " << sum.report_dir << "\n";
    return sum;
  }

  // Every fold's best model on its out-of-fold subjects, pooled into one report.
  const io::Task task = task_of(cfg);
  const double tau2 = cfg.posthoc.tau2;
  const BootstrapOptions b{cfg.eval.bootstrap, uint64_t(cfg.train.seed), 0.95};
  eval::CrossValidation cv;
  std::vector<eval::PredictionTable> tables;
  std::vector<double> truth, pred;  // regression: pooled T-scores
  std::string temps;
  int64_t unlabelled = 0;
  for (int k = 0; k < plan.folds; ++k) {
    const Config fc = fold_config(cfg, k);
    const std::string best = (fs::path(fc.output.dir) / "best.safetensors").string();
    sum.checkpoints.push_back(best);
    LoadedModel m = load_model(fc, best);
    const eval::PredictionTable raw = predict_split(m, fc, "test", false);
    io::write_atomic((fs::path(fc.output.dir) / "oof_predictions.csv").string(), oof_csv(raw, task));
    eval::FoldResult f;
    f.fold = k;
    f.checkpoint = best;
    f.best_epoch = m.epoch;
    if (task.regression()) {
      eval::RegressionReport rr;
      tables.push_back(regression_derived_classes(task, raw, {0, 0, 0.95}, rr, unlabelled));
      f.mae = rr.mae.value;
      truth.insert(truth.end(), rr.truth.begin(), rr.truth.end());
      pred.insert(pred.end(), rr.pred.begin(), rr.pred.end());
    } else {
      const TrainingPrior prior = training_prior(fc, best);
      for (int64_t l : raw.labels) unlabelled += l < 0;
      tables.push_back(adjusted_labelled(raw, prior, prior.usable() ? tau2 : 0.0));
      f.temperature = checkpoint_temperature(best).value;
    }
    temps += (k ? ", " : "") + io::general(f.temperature);
    f.n = tables.back().size();
    f.metrics = quick_metrics(tables.back());
    cv.folds.push_back(f);
  }
  const eval::PredictionTable pooled = eval::pool_fold_tables(tables);
  sum.pooled_subjects = pooled.size();
  cv.pooling = "The tables above pool the " + std::to_string(pooled.size()) + " out-of-fold predictions: each subject "
               "scored once, by the fold model that never saw it in training or validation" +
               (task.regression() ? std::string(".")
                                  : ", its scores after that fold's own post-hoc adjustment (tau2 = " + io::general(tau2) +
                                        " with the fold's training prior).");

  eval::ReportRun run;
  const std::string arch(model_arch(cfg.model.name));
  run.title = arch + ", " + std::to_string(plan.folds) + "-fold cross-validation (pooled out-of-fold predictions)";
  run.source = sum.run_dir;
  run.model = arch + " (" + std::to_string(cfg.model.in_chans) + " input channel" + (cfg.model.in_chans == 1 ? "" : "s") +
              ", " + (task.regression() ? "T-score regression" : std::to_string(task.num_classes()) + " classes") + ")";
  run.split = "out-of-fold";
  run.cache = plan.source;
  run.prior_source = task.regression() ? "not used: a regression head" : "each fold's own (its training split)";
  if (!task.regression())
    run.adjusted_upstream = "tau2 = " + io::general(tau2) + " with each fold's own prior, before pooling (the tables' tau2 = 0 "
                            "means nothing more is applied)";
  if (!task.regression())
    run.temperature_source = "The pooled probabilities are at T = 1; each fold's temperature fitted on its validation "
                             "split (" + temps + ") is applied by mc_predict and to the fold ensemble";
  run.crossval = cv;
  if (task.regression()) {
    run.regression = eval::regression_report(truth, pred, b);
    run.regression->thresholds = task.thresholds;
  }
  if (task.binary() && !task.regression())
    run.screening = screening_without_validation(task, cfg, "no single validation split for the pooled folds");
  if (unlabelled) run.notes.push_back(std::to_string(unlabelled) + " out-of-fold subjects have no label and were left out");
  eval::HuBaseline hu;
  hu.note = "No HU baseline in the pooled out-of-fold report (mc_eval's report on a split has one).";
  sum.report = eval::write_report(pooled, run, b, hu, sum.report_dir, true);
  out << sum.report.terminal << "pooled out-of-fold report: " << sum.report.markdown << "\n";
  return sum;
}

bool is_crossval_dir(const std::string& dir) {
  return fs::is_directory(dir) && fs::is_regular_file(fs::path(dir) / "crossval.json");
}

std::vector<std::string> fold_checkpoints(const std::string& dir) {
  MC_CHECK(is_crossval_dir(dir), "'", dir, "' is not a cross-validation run folder (no crossval.json: mc_train --folds "
           "K writes one)");
  const fs::path meta = fs::path(dir) / "crossval.json";
  int64_t folds = 0;
  try {
    std::ifstream in(meta);
    folds = io::Json::parse(in).at("folds").get<int64_t>();
  } catch (const std::exception& e) {
    throw Error("'" + meta.string() + "': not a cross-validation description (" + e.what() + ")");
  }
  MC_CHECK(folds >= 1 && folds <= 100, "'", meta.string(), "': folds = ", folds, " is out of range");
  std::vector<std::string> v;
  for (int64_t k = 0; k < folds; ++k) {
    const fs::path best = fs::path(dir) / ("fold_" + std::to_string(k)) / "best.safetensors";
    MC_CHECK(fs::is_regular_file(best) && fs::exists(best.parent_path() / "done.json"), "cross-validation run '", dir,
             "': fold ", k, " is not finished (no ", (best.parent_path() / "done.json").string(),
             "); rerun mc_train --folds ", folds, " with its config to finish it");
    v.push_back(best.string());
  }
  return v;
}

}  // namespace mc::pipeline
