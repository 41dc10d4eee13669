#include "pipeline/predict.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "engine/autograd.h"
#include "io/atomic_file.h"
#include "io/csv.h"
#include "io/ct_source.h"
#include "io/json.h"
#include "io/npy.h"
#include "io/safetensors.h"
#include "io/prep.h"
#include "pipeline/prep_config.h"
#include "io/progress.h"
#include "io/text.h"
#include "losses/posthoc.h"

namespace mc {
namespace fs = std::filesystem;
namespace {

std::string stem_of(const std::string& path) {
  std::string name = fs::path(path).lexically_normal().filename().string();
  if (name.empty()) name = fs::path(path).lexically_normal().parent_path().filename().string();  // "dir/"
  for (const char* ext : {".nii.gz", ".nii"})
    if (name.size() > std::strlen(ext) && name.ends_with(ext)) return name.substr(0, name.size() - std::strlen(ext));
  return name;
}

}  // namespace

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
    logits = m.model->forward(model_input(input, m.device)).to(Device::cpu()).to(DType::F32);
  }
  ScanPrediction p;
  p.id = id;
  for (float v : logits.to_vector<float>()) p.logits.push_back(v);
  // A NaN logit would still have an argmax: no class for this scan, an error naming it.
  for (size_t k = 0; k < p.logits.size(); ++k)
    MC_CHECK(std::isfinite(p.logits[k]), "subject '", id, "': the model gave a non-finite logit (",
             shortest(p.logits[k]), " for class ", k, "): no prediction for this scan");
  if (m.task.regression()) {  // one output: the T-score, and the class it falls in
    p.tscore = p.logits.at(0);
    p.cls = m.task.classify(p.tscore);
    return p;
  }
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
  if (std::isfinite(p.tscore)) {
    Json j{{"id", p.id}, {"tscore", p.tscore}, {"class", p.cls}, {"class_name", names.at(size_t(p.cls))}};
    return json_text(j);
  }
  Json probabilities = Json::object();
  for (size_t k = 0; k < p.probabilities.size(); ++k) probabilities[names.at(k)] = p.probabilities[k];
  Json j{{"id", p.id}, {"class", p.cls}, {"class_name", names.at(size_t(p.cls))},
         {"probabilities", std::move(probabilities)}, {"tau2", p.tau2}};
  if (raw) j["logits"] = p.logits;
  if (!p.note.empty()) j["note"] = p.note;
  return json_text(j);
}

std::string prediction_csv_header(const std::vector<std::string>& names, bool raw, bool regression) {
  if (regression) return "id,tscore,class,class_name\n";
  std::string s = "id,class,class_name";
  for (const auto& n : names) s += "," + csv_field("p_" + n);
  if (raw)
    for (const auto& n : names) s += "," + csv_field("logit_" + n);
  return s + "\n";
}

std::string prediction_csv_row(const ScanPrediction& p, const std::vector<std::string>& names, bool raw) {
  if (std::isfinite(p.tscore))
    return csv_field(p.id) + "," + shortest(p.tscore) + "," + std::to_string(p.cls) + "," + csv_field(names.at(size_t(p.cls))) + "\n";
  std::string s = csv_field(p.id) + "," + std::to_string(p.cls) + "," + csv_field(names.at(size_t(p.cls)));
  for (double v : p.probabilities) s += "," + shortest(v);
  if (raw)
    for (double v : p.logits) s += "," + shortest(v);
  return s + "\n";
}

Tensor read_model_tensor(const std::string& path) {
  Tensor t;
  if (path.ends_with(".npy")) {
    t = read_npy(path);
  } else {
    MC_CHECK(path.ends_with(".safetensors"), "--tensor: '", path, "' is neither .npy nor .safetensors");
    StateDict sd = load_safetensors(path);
    MC_CHECK(sd.size() == 1, "--tensor: '", path, "' holds ", sd.size(), " tensors; it must hold exactly one, the input");
    t = sd[0].second.to(DType::F32);
  }
  MC_CHECK(t.dim() == 4 || t.dim() == 5, "--tensor: '", path, "' has shape ", shape_str(t.shape()),
           "; expected [C, D, H, W] or [N, C, D, H, W]");
  if (t.dim() == 4) {
    Shape s = t.shape();
    s.insert(s.begin(), 1);
    t = t.view(s);
  }
  return t;
}

std::string predict_tensor_json(LoadedModel& m, const Tensor& input, const std::string& id, const TrainingPrior& prior,
                                double tau2) {
  MC_CHECK(input.dim() == 5 && input.size(1) == m.in_chans, "--tensor: input ", shape_str(input.shape()), " has ",
           input.size(1), " channel(s) but the model takes ", m.in_chans, " (model.in_chans)");
  const int64_t N = input.size(0);
  const int64_t per = input.numel() / N;
  std::string out;
  for (int64_t i = 0; i < N; ++i) {
    Shape s = input.shape();
    s[0] = 1;
    Tensor one = Tensor::empty(s, DType::F32);
    std::memcpy(one.data<float>(), input.data<float>() + i * per, size_t(per) * sizeof(float));
    ScanPrediction p = predict_scan(m, one, N == 1 ? id : id + "[" + std::to_string(i) + "]", prior, tau2);
    out += prediction_json(p, m.task.classes, /*raw=*/true) + "\n";
  }
  return out;
}

int run_predict(const PredictCommand& cmd, std::ostream& out, std::ostream& err) {
  if (cmd.help) {
    out << predict_usage();
    return 0;
  }
  for (const auto& [opt, path] : {std::pair{"--ct", cmd.ct}, {"--crop", cmd.crop}}) {
    MC_CHECK(path.empty() || fs::exists(path), opt, ": file '", path, "' not found");
    MC_CHECK(path.empty() || is_ct_source(path), opt, ": '", path,
             "' is neither a NIfTI file (.nii, .nii.gz) nor a folder (a DICOM series)");
  }
  for (const auto& [opt, path] : {std::pair{"--seg", cmd.seg}, {"--tensor", cmd.tensor}})
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
  const auto& names = m.task.classes;
  auto emit = [&](const std::string& text) {
    if (cmd.out.empty()) out << text;
    else write_atomic(cmd.out, text);
  };

  if (!cmd.tensor.empty()) {
    emit(predict_tensor_json(m, read_model_tensor(cmd.tensor), fs::path(cmd.tensor).stem().string(), prior, tau2));
    return 0;
  }
  if (cmd.ct_dir.empty()) {
    const ScanInput in = cmd.crop.empty() ? ScanInput{stem_of(cmd.ct), cmd.ct, cmd.seg}
                                          : ScanInput{stem_of(cmd.crop), cmd.crop, ""};
    emit(prediction_json(predict_scan(m, prepare_input(in, opts), in.id, prior, tau2), names, cmd.raw) + "\n");
    return 0;
  }
  const auto inputs = folder_inputs(cmd.ct_dir, cmd.seg_dir, opts);
  MC_CHECK(!inputs.empty(), "--ct-dir: no CT scans (<id>.nii.gz, <id>/ct.nii.gz or a DICOM series folder <id>/) in '",
           cmd.ct_dir, "'");
  std::string csv = prediction_csv_header(names, cmd.raw, m.task.regression());
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
