#include "apps/common/predict.h"

#include <charconv>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "apps/common/evaluate.h"
#include "losses/evaluation.h"
#include "losses/posthoc.h"
#include "pipeline/train_setup.h"
#include "engine/autograd.h"
#include "engine/metrics.h"
#include "io/cache.h"
#include "io/checkpoint.h"
#include "io/labels.h"
#include "io/plot.h"
#include "io/prep.h"
#include "pipeline/prep_config.h"
#include "io/progress.h"
#include "io/safetensors.h"
#include "io/state_dict_io.h"

namespace mc {
namespace fs = std::filesystem;
namespace {

std::string shortest(double v) {  // the shortest decimal that reads back as v
  if (!std::isfinite(v)) return "null";
  char b[32];
  return std::string(b, std::to_chars(b, b + sizeof b, v).ptr);
}


// "20,110,181" -> counts; empty on anything else.
std::vector<int64_t> parse_counts(const std::string& s) {
  std::vector<int64_t> v;
  std::stringstream in(s);
  std::string part;
  while (std::getline(in, part, ',')) {
    int64_t c = -1;
    const auto r = std::from_chars(part.data(), part.data() + part.size(), c);
    if (r.ec != std::errc() || r.ptr != part.data() + part.size() || c < 0) return {};
    v.push_back(c);
  }
  return v;
}

std::string stem_of(const std::string& path) {
  std::string name = fs::path(path).filename().string();
  for (const char* ext : {".nii.gz", ".nii"})
    if (name.size() > std::strlen(ext) && name.ends_with(ext)) return name.substr(0, name.size() - std::strlen(ext));
  return name;
}

}  // namespace

Config checkpoint_config(const std::string& checkpoint, const std::string& config_path,
                         const std::vector<std::string>& overrides) {
  if (!config_path.empty()) return load_config(config_path, overrides);
  MC_CHECK(checkpoint.ends_with(".safetensors"), "no --config given, and '", checkpoint,
           "' has no <tag>.state.safetensors beside it to read the run's config from (not a "
           ".safetensors name): pass --config FILE.yaml");
  const std::string state = state_path_for(checkpoint);
  MC_CHECK(fs::exists(state), "no --config given, and no state file '", state,
           "' beside the checkpoint to read the run's config from: pass --config FILE.yaml");
  const SafeTensorsFile file = SafeTensorsFile::open(state);  // owns the metadata
  const auto& meta = file.metadata();
  auto it = meta.find("config");
  MC_CHECK(it != meta.end() && !it->second.empty(), "no --config given, and '", state,
           "' has no \"config\" in its metadata: pass --config FILE.yaml");
  return parse_config(it->second, state + " (metadata \"config\")", overrides);
}

LoadedModel load_model(const Config& cfg, const std::string& checkpoint) {
  MC_CHECK(fs::is_regular_file(checkpoint), "checkpoint '", checkpoint, "' not found");
  Config c = cfg;
  c.model.pretrained.clear();  // every tensor comes from the checkpoint; skip the import
  LoadedModel m;
  m.checkpoint = checkpoint;
  m.in_chans = cfg.model.in_chans;
  m.num_classes = cfg.model.num_classes;
  m.model = build_model(c);
  const SafeTensorsFile file = SafeTensorsFile::open(checkpoint);
  try {
    load_state_dict(m.model->state_dict(), file.views(), LoadOptions{});
  } catch (const Error& e) {
    throw Error("checkpoint '" + checkpoint + "' does not fit the configured model " +
                std::string(model_arch(cfg.model.name)) + " (model.in_chans " +
                std::to_string(cfg.model.in_chans) + ", model.num_classes " +
                std::to_string(cfg.model.num_classes) + "): " + e.what());
  }
  if (auto it = file.metadata().find("epoch"); it != file.metadata().end()) {
    const auto v = parse_counts(it->second);
    if (v.size() == 1) m.epoch = v[0];
  }
  m.device = resolve_device(cfg.train.device);
  m.model->to(m.device);
  m.model->eval();
  return m;
}

TrainingPrior training_prior(const Config& cfg, const std::string& checkpoint, bool cache_first) {
  const int K = cfg.model.num_classes;
  TrainingPrior p;
  std::vector<std::string> tried;
  auto from_state = [&] {
    const std::string state = checkpoint.ends_with(".safetensors") ? state_path_for(checkpoint) : "";
    if (state.empty() || !fs::exists(state)) {
      tried.push_back("no checkpoint state file");
      return;
    }
    try {
      const SafeTensorsFile file = SafeTensorsFile::open(state);
      const auto& meta = file.metadata();
      auto it = meta.find("class_counts");
      if (it != meta.end() && parse_counts(it->second).size() == size_t(K))
        p = {parse_counts(it->second), "class_counts of " + state};
      else
        tried.push_back("no class_counts in " + state);
    } catch (const Error& e) {
      tried.push_back(state + " unreadable (" + e.what() + ")");
    }
  };
  auto from_cache = [&] {
    const std::string train = split_cache_path(cfg.data, "train");
    if (!fs::exists(train)) {
      tried.push_back("no train cache " + train);
      return;
    }
    p = {Cache::open(train).class_counts(K), "train cache " + train};
  };
  if (cache_first) from_cache();
  if (p.counts.empty()) from_state();
  if (p.counts.empty() && !cache_first) from_cache();
  if (p.counts.empty()) {
    p.source = "none (";
    for (size_t i = 0; i < tried.size(); ++i) p.source += (i ? ", " : "") + tried[i];
    p.source += ")";
    return p;
  }
  for (int k = 0; k < K; ++k)
    if (p.counts[size_t(k)] <= 0) {
      p.source += ": class " + std::to_string(k) + " has no training samples, so log(prior) is undefined";
      p.counts.clear();
      break;
    }
  return p;
}

std::vector<std::string> class_names_for(int64_t num_classes) {
  std::vector<std::string> n;
  for (int64_t k = 0; k < num_classes; ++k)
    n.push_back(num_classes == kNumClasses ? kClassNames[size_t(k)] : std::to_string(k));
  return n;
}

std::vector<ScanInput> folder_inputs(const std::string& ct_dir, const std::string& seg_dir,
                                     const PreprocessOptions& opts) {
  PrepOptions po;
  po.ct_dir = ct_dir;
  po.seg_dir = seg_dir;
  po.preprocess = opts;
  std::vector<ScanInput> v;
  for (const std::string& id : list_ct_subjects(ct_dir)) {
    const SubjectFiles f = find_subject_files(po, id);
    v.push_back({id, f.ct, f.seg, f.binary_mask});
  }
  return v;
}

Tensor prepare_input(const ScanInput& in, const PreprocessOptions& opts) {
  PreprocessOptions o = opts;
  if (in.seg.empty()) {
    MC_CHECK(o.precropped, "subject '", in.id, "': no segmentation for ", in.ct,
             " (give a mask, or --crop for a scan that is already the L1 crop)");
  } else {
    o.precropped = false;
    if (in.binary_mask) o.label_id = -1;
  }
  Preprocessed p;
  try {
    p = preprocess_files(in.ct, in.seg, o);
  } catch (const Error& e) {
    throw Error("subject '" + in.id + "' (" + in.ct + (in.seg.empty() ? "" : ", " + in.seg) +
                "): " + e.what());
  }
  // mc_prep stores f16 (io/cache.h); rounding the same way gives the model the inputs it knows.
  Tensor cube = p.cube.to(DType::F16).to(DType::F32);
  Shape s = cube.shape();
  s.insert(s.begin(), 1);
  return cube.view(s);
}

ScanPrediction predict_scan(LoadedModel& m, const Tensor& input, const std::string& id,
                            const TrainingPrior& prior, double tau2) {
  MC_CHECK(input.dim() == 5 && input.size(0) == 1, "predict: input must be [1, C, D, H, W], got ",
           shape_str(input.shape()));
  MC_CHECK(input.size(1) == m.in_chans, "subject '", id, "': the preprocessed volume has ",
           input.size(1), " channel(s) (one per data.windows entry) but the model takes ",
           m.in_chans, " (model.in_chans)");
  Tensor logits;
  {
    m.model->eval();
    NoGradGuard ng;
    logits = m.model->forward(input.to(m.device)).to(Device::cpu()).to(DType::F32);
  }
  ScanPrediction p;
  p.id = id;
  for (float v : logits.to_vector<float>()) p.logits.push_back(v);
  Tensor probs;
  if (tau2 != 0 && prior.usable()) {
    probs = posthoc_probabilities(logits, std::vector<double>(prior.counts.begin(), prior.counts.end()), tau2);
    p.tau2 = tau2;
  } else {
    probs = softmax_with_offset(logits, std::vector<double>(p.logits.size(), 0.0), true);
    if (tau2 != 0) p.note = "no post-hoc adjustment (tau2 " + shortest(tau2) + " asked): training prior: " + prior.source;
  }
  p.probabilities = probs.to_vector<double>();
  p.cls = 0;
  for (size_t k = 1; k < p.probabilities.size(); ++k)
    if (p.probabilities[k] > p.probabilities[size_t(p.cls)]) p.cls = int64_t(k);
  return p;
}

std::string prediction_json(const ScanPrediction& p, const std::vector<std::string>& names, bool raw) {
  std::string s = "{\"id\": " + json_string(p.id) + ", \"class\": " + std::to_string(p.cls) +
                  ", \"class_name\": " + json_string(names.at(size_t(p.cls))) + ", \"probabilities\": {";
  for (size_t k = 0; k < p.probabilities.size(); ++k)
    s += (k ? ", " : "") + json_string(names.at(k)) + ": " + shortest(p.probabilities[k]);
  s += "}, \"tau2\": " + shortest(p.tau2);
  if (raw) {
    s += ", \"logits\": [";
    for (size_t k = 0; k < p.logits.size(); ++k) s += (k ? ", " : "") + shortest(p.logits[k]);
    s += "]";
  }
  if (!p.note.empty()) s += ", \"note\": " + json_string(p.note);
  return s + "}";
}

std::string prediction_csv_header(const std::vector<std::string>& names, bool raw) {
  std::string s = "id,class,class_name";
  for (const auto& n : names) s += ",p_" + n;
  if (raw)
    for (const auto& n : names) s += ",logit_" + n;
  return s + "\n";
}

std::string prediction_csv_row(const ScanPrediction& p, const std::vector<std::string>& names, bool raw) {
  std::string s = csv_escape(p.id) + "," + std::to_string(p.cls) + "," + csv_escape(names.at(size_t(p.cls)));
  for (double v : p.probabilities) s += "," + shortest(v);
  if (raw)
    for (double v : p.logits) s += "," + shortest(v);
  return s + "\n";
}

}  // namespace mc

namespace mc {

SplitLogits predict_split(LoadedModel& m, const Config& cfg, const std::string& split, bool progress) {
  MC_CHECK(split == "test" || split == "val" || split == "train", "unknown split '", split,
           "' (allowed: test, val, train)");
  SplitLogits s;
  s.cache = split_cache_path(cfg.data, split);
  MC_CHECK(fs::exists(s.cache), "the ", split, " cache '", s.cache, "' not found: run mc_prep first (or set data.",
           split, "_cache)");
  const int64_t chans = Cache::open(s.cache).volume_shape()[0];
  MC_CHECK(chans == m.in_chans, "the ", split, " cache '", s.cache, "' holds ", chans,
           " channel(s) per volume but the model takes ", m.in_chans, " (model.in_chans)");
  Predictions p = predict_cache(*m.model, s.cache, cfg.train.batch_size, m.device,
                                progress ? "predict " + split : "");
  s.ids = p.ids;
  s.labels = p.labels.to_vector<int64_t>();
  for (float v : p.logits.to_vector<float>()) s.logits.push_back(v);
  s.num_classes = p.logits.size(1);
  return s;
}

std::string predict_usage() {
  return "usage: mc_predict --checkpoint W.safetensors [--config FILE.yaml] [key=value ...]\n"
         "                  (--ct CT.nii.gz --seg SEG.nii.gz [--label-id N] | --crop L1.nii.gz |\n"
         "                   --ct-dir DIR [--seg-dir DIR])\n"
         "                  [--raw] [--tau2 X] [--out FILE] [--no-progress]\n\n"
         "Classifies L1 vertebrae with a trained model, preprocessing each scan exactly as mc_prep\n"
         "does (data.* keys of the config).\n"
         "  --checkpoint W       weights (safetensors, PyTorch key names; \"module.\" prefixes are fine)\n"
         "  --config FILE        the run's config; default: the config stored in\n"
         "                       <tag>.state.safetensors beside the weights by mc_train\n"
         "  --ct, --seg          one CT and its segmentation (multi-label: --label-id, default\n"
         "                       data.raw.label_id; 31 = TotalSegmentator v2 vertebrae_L1)\n"
         "  --crop FILE          a CT that is already the L1 crop (no segmentation)\n"
         "  --ct-dir, --seg-dir  every scan of a folder, paired as mc_prep pairs them -> CSV\n"
         "  --tau2 X             post-hoc adjustment softmax(logits - X log prior); default\n"
         "                       posthoc.tau2 of the config, 0 = none. The prior (training class\n"
         "                       counts) comes from the checkpoint's state metadata, else the train\n"
         "                       cache; with neither, probabilities are unadjusted and a note says so\n"
         "  --raw                also print the logits\n"
         "  --out FILE           write the JSON (one scan) or CSV (a folder) there, not to stdout\n"
         "Output: JSON {id, class, class_name, probabilities{name: p}, tau2[, logits][, note]};\n"
         "a folder gives CSV id,class,class_name,p_<name>...[,logit_<name>...].\n";
}

PredictCommand parse_predict_command(const std::vector<std::string>& args) {
  PredictCommand c;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i], v;
    const bool has_value = a.starts_with("--") && a.find('=') != std::string::npos;
    if (has_value) v = a.substr(a.find('=') + 1), a = a.substr(0, a.find('='));
    auto value = [&]() -> std::string {
      if (has_value) return v;
      MC_CHECK(i + 1 < args.size(), a, " needs a value");
      return args[++i];
    };
    if (a == "--help" || a == "-h") c.help = true;
    else if (a == "--raw") c.raw = true;
    else if (a == "--no-progress") c.progress = false;
    else if (a == "--checkpoint") c.checkpoint = value();
    else if (a == "--config") c.config = value();
    else if (a == "--ct") c.ct = value();
    else if (a == "--seg") c.seg = value();
    else if (a == "--crop") c.crop = value();
    else if (a == "--ct-dir") c.ct_dir = value();
    else if (a == "--seg-dir") c.seg_dir = value();
    else if (a == "--out") c.out = value();
    else if (a == "--label-id" || a == "--tau2") {
      const std::string s = value();
      double d = 0;
      const auto r = std::from_chars(s.data(), s.data() + s.size(), d);
      MC_CHECK(r.ec == std::errc() && r.ptr == s.data() + s.size() && std::isfinite(d), a, ": '", s,
               "' is not a number");
      if (a == "--tau2") c.tau2 = d;
      else {
        MC_CHECK(d == std::floor(d) && d >= 0 && d < 1e6, "--label-id: '", s, "' is not a label id");
        c.label_id = int64_t(d);
      }
    } else if (!a.starts_with("-") && a.find('=') != std::string::npos) c.overrides.push_back(a);
    else MC_FAIL("unknown argument '", args[i], "'");
  }
  if (c.help) return c;
  MC_CHECK(!c.checkpoint.empty(), "--checkpoint W.safetensors is required");
  const int modes = !c.ct.empty() + !c.crop.empty() + !c.ct_dir.empty();
  MC_CHECK(modes == 1, "give exactly one of --ct CT --seg SEG, --crop L1 or --ct-dir DIR");
  MC_CHECK(c.ct.empty() || !c.seg.empty(), "--ct needs --seg SEG.nii.gz (or use --crop for an L1 crop)");
  MC_CHECK(c.seg.empty() || !c.ct.empty(), "--seg goes with --ct");
  MC_CHECK(c.seg_dir.empty() || !c.ct_dir.empty(), "--seg-dir goes with --ct-dir");
  MC_CHECK(!c.label_id || c.crop.empty(), "--label-id has no meaning with --crop");
  return c;
}

int run_predict(const PredictCommand& cmd, std::ostream& out, std::ostream& err) {
  if (cmd.help) {
    out << predict_usage();
    return 0;
  }
  for (const auto& [opt, path] : {std::pair{"--ct", cmd.ct}, {"--seg", cmd.seg}, {"--crop", cmd.crop}})
    MC_CHECK(path.empty() || fs::is_regular_file(path), opt, ": file '", path, "' not found");
  MC_CHECK(cmd.ct_dir.empty() || fs::is_directory(cmd.ct_dir), "--ct-dir: folder '", cmd.ct_dir, "' not found");
  MC_CHECK(cmd.seg_dir.empty() || fs::is_directory(cmd.seg_dir), "--seg-dir: folder '", cmd.seg_dir, "' not found");
  const Config cfg = checkpoint_config(cmd.checkpoint, cmd.config, cmd.overrides);
  PreprocessOptions opts = preprocess_options_from_config(cfg);
  if (cmd.label_id) opts.label_id = *cmd.label_id;
  if (!cmd.crop.empty()) opts.precropped = true;
  LoadedModel m = load_model(cfg, cmd.checkpoint);
  const double tau2 = cmd.tau2.value_or(cfg.posthoc.tau2);
  const TrainingPrior prior = tau2 != 0 ? training_prior(cfg, cmd.checkpoint) : TrainingPrior{};
  if (tau2 != 0)
    err << (prior.usable() ? "post-hoc adjustment tau2 = " + shortest(tau2) + ", training prior from " + prior.source
                           : "no post-hoc adjustment: training prior: " + prior.source)
        << "\n";
  const auto names = class_names_for(m.num_classes);
  auto emit = [&](const std::string& text) {
    if (cmd.out.empty()) out << text;
    else plot::write_text_atomic(cmd.out, text);
  };

  if (cmd.ct_dir.empty()) {
    const ScanInput in = cmd.crop.empty() ? ScanInput{stem_of(cmd.ct), cmd.ct, cmd.seg}
                                          : ScanInput{stem_of(cmd.crop), cmd.crop, ""};
    emit(prediction_json(predict_scan(m, prepare_input(in, opts), in.id, prior, tau2), names, cmd.raw) + "\n");
    return 0;
  }
  const auto inputs = folder_inputs(cmd.ct_dir, cmd.seg_dir, opts);
  MC_CHECK(!inputs.empty(), "--ct-dir: no CT scans (<id>.nii.gz or <id>/ct.nii.gz) in '", cmd.ct_dir, "'");
  std::string csv = prediction_csv_header(names, cmd.raw);
  std::unique_ptr<Progress> bar;
  if (cmd.progress) bar = std::make_unique<Progress>("predict", int64_t(inputs.size()));
  int64_t failed = 0;
  for (const ScanInput& in : inputs) {
    try {
      csv += prediction_csv_row(predict_scan(m, prepare_input(in, opts), in.id, prior, tau2), names, cmd.raw);
    } catch (const Error& e) {
      ++failed;
      err << "mc_predict: " << e.what() << "\n";
    }
    if (bar) bar->tick();
  }
  if (bar) bar->finish();
  emit(csv);
  if (failed) err << "mc_predict: " << failed << " of " << inputs.size() << " scans failed (named above)\n";
  return failed ? 1 : 0;
}

}  // namespace mc
