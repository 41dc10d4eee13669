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
#include "pipeline/crossval.h"
#include "pipeline/saliency.h"
#include "io/progress.h"
#include "io/text.h"
#include "eval/calibration.h"
#include "losses/posthoc.h"

namespace mc::pipeline {
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
                                     const io::PreprocessOptions& opts) {
  io::PrepOptions po;
  po.ct_dir = ct_dir;
  po.seg_dir = seg_dir;
  po.preprocess = opts;
  std::vector<ScanInput> v;
  for (const std::string& id : io::list_ct_subjects(ct_dir)) {
    const io::SubjectFiles f = io::find_subject_files(po, id);
    v.push_back({id, f.ct, f.seg, f.binary_mask});
  }
  return v;
}

io::Preprocessed preprocess_input(const ScanInput& in, const io::PreprocessOptions& opts) {
  io::PreprocessOptions o = opts;
  if (in.seg.empty()) {
    MC_CHECK(o.precropped, "subject '", in.id, "': no segmentation for ", in.ct,
             " (give a mask, or --crop for a scan that is already the L1 crop)");
  } else {
    o.precropped = false;
    if (in.binary_mask) o.label_id = -1;
  }
  try {
    return io::preprocess_files(in.ct, in.seg, o);
  } catch (const Error& e) {
    throw Error("subject '" + in.id + "' (" + in.ct + (in.seg.empty() ? "" : ", " + in.seg) +
                "): " + e.what());
  }
}

Tensor cube_model_input(const Tensor& c) {
  // mc_prep stores f16 (io/cache.h); rounding the same way gives the model the inputs it knows.
  Tensor cube = c.to(DType::F16).to(DType::F32);
  Shape s = cube.shape();
  s.insert(s.begin(), 1);
  return cube.view(s);
}

Tensor prepare_input(const ScanInput& in, const io::PreprocessOptions& opts) {
  return cube_model_input(preprocess_input(in, opts).cube);
}

namespace {
// A NaN logit would still have an argmax: no class for this scan, an error naming it.
void check_finite_logits(const std::vector<double>& logits, const std::string& id) {
  for (size_t k = 0; k < logits.size(); ++k)
    MC_CHECK(std::isfinite(logits[k]), "subject '", id, "': the model gave a non-finite logit (",
             io::shortest(logits[k]), " for class ", k, "): no prediction for this scan");
}
}  // namespace

ScanPrediction prediction_from_logits(const std::vector<double>& logits, const std::string& id,
                                      const TrainingPrior& prior, double tau2, double temperature) {
  ScanPrediction p;
  p.id = id;
  p.logits = logits;
  check_finite_logits(p.logits, id);
  const int64_t K = int64_t(logits.size());
  if (tau2 != 0 && prior.usable()) {
    p.tau2 = tau2;
  } else if (tau2 != 0) {
    p.note = "no post-hoc adjustment (tau2 " + io::shortest(tau2) + " asked): training prior: " + prior.source;
  }
  p.temperature = temperature;
  p.probabilities = eval::calibrated_probabilities(logits, K, std::vector<double>(prior.counts.begin(), prior.counts.end()),
                                             p.tau2, temperature);
  p.cls = 0;
  for (size_t k = 1; k < p.probabilities.size(); ++k)
    if (p.probabilities[k] > p.probabilities[size_t(p.cls)]) p.cls = int64_t(k);
  return p;
}

ScanPrediction predict_scan(LoadedModel& m, const Tensor& input, const std::string& id,
                            const TrainingPrior& prior, double tau2, double temperature,
                            const std::vector<Flip>& flips) {
  MC_CHECK(input.dim() == 5 && input.size(0) == 1, "predict: input must be [1, C, D, H, W], got ",
           shape_str(input.shape()));
  MC_CHECK(input.size(1) == m.in_chans, "subject '", id, "': the preprocessed volume has ",
           input.size(1), " channel(s) (one per data.windows entry) but the model takes ",
           m.in_chans, " (model.in_chans)");
  Tensor logits;
  if (!flips.empty()) {
    logits = tta_logits(*m.model, input, m.device, flips);
  } else {
    m.model->eval();
    NoGradGuard ng;
    logits = m.model->forward(model_input(input, m.device)).to(Device::cpu()).to(DType::F32);
  }
  std::vector<double> l;
  for (float v : logits.to_vector<float>()) l.push_back(v);
  if (m.task.regression()) {  // one output: the T-score, and the class it falls in
    ScanPrediction p;
    p.id = id;
    p.logits = l;
    check_finite_logits(p.logits, id);
    p.tscore = p.logits.at(0);
    p.cls = m.task.classify(p.tscore);
    return p;
  }
  return prediction_from_logits(l, id, prior, tau2, temperature);
}

ScanPrediction ensemble_prediction(const std::vector<ScanPrediction>& members, const io::Task& task) {
  MC_CHECK(!members.empty(), "ensemble: no members");
  if (members.size() == 1) return members[0];
  ScanPrediction e = members[0];
  if (task.regression()) {  // the mean predicted T-score, and the class it falls in
    for (size_t i = 1; i < members.size(); ++i) {
      MC_CHECK(std::isfinite(members[i].tscore), "ensemble: member ", i, " has no T-score (a classification head?)");
      e.tscore += members[i].tscore;
    }
    e.tscore /= double(members.size());
    e.logits = {e.tscore};
    e.cls = task.classify(e.tscore);
    return e;
  }
  const size_t K = e.probabilities.size();
  for (size_t i = 1; i < members.size(); ++i) {
    MC_CHECK(members[i].probabilities.size() == K && members[i].logits.size() == e.logits.size(),
             "ensemble: members disagree on the number of classes");
    for (size_t k = 0; k < K; ++k) e.probabilities[k] += members[i].probabilities[k];
    for (size_t k = 0; k < e.logits.size(); ++k) e.logits[k] += members[i].logits[k];
    if (e.note.empty()) e.note = members[i].note;
  }
  const double n = double(members.size());
  for (double& v : e.probabilities) v /= n;
  for (double& v : e.logits) v /= n;
  e.cls = 0;
  for (size_t k = 1; k < K; ++k)
    if (e.probabilities[k] > e.probabilities[size_t(e.cls)]) e.cls = int64_t(k);
  return e;
}

std::string prediction_json(const ScanPrediction& p, const std::vector<std::string>& names, bool raw) {
  if (std::isfinite(p.tscore)) {
    io::Json j{{"id", p.id}, {"tscore", p.tscore}, {"class", p.cls}, {"class_name", names.at(size_t(p.cls))}};
    return io::json_text(j);
  }
  io::Json probabilities = io::Json::object();
  for (size_t k = 0; k < p.probabilities.size(); ++k) probabilities[names.at(k)] = p.probabilities[k];
  io::Json j{{"id", p.id}, {"class", p.cls}, {"class_name", names.at(size_t(p.cls))},
         {"probabilities", std::move(probabilities)}, {"tau2", p.tau2},
         {"temperature", p.temperature}};
  if (raw) j["logits"] = p.logits;
  if (!p.note.empty()) j["note"] = p.note;
  return io::json_text(j);
}

std::string prediction_csv_header(const std::vector<std::string>& names, bool raw, bool regression) {
  if (regression) return "id,tscore,class,class_name\n";
  std::string s = "id,class,class_name";
  for (const auto& n : names) s += "," + io::csv_field("p_" + n);
  if (raw)
    for (const auto& n : names) s += "," + io::csv_field("logit_" + n);
  return s + "\n";
}

std::string prediction_csv_row(const ScanPrediction& p, const std::vector<std::string>& names, bool raw) {
  if (std::isfinite(p.tscore))
    return io::csv_field(p.id) + "," + io::shortest(p.tscore) + "," + std::to_string(p.cls) + "," + io::csv_field(names.at(size_t(p.cls))) + "\n";
  std::string s = io::csv_field(p.id) + "," + std::to_string(p.cls) + "," + io::csv_field(names.at(size_t(p.cls)));
  for (double v : p.probabilities) s += "," + io::shortest(v);
  if (raw)
    for (double v : p.logits) s += "," + io::shortest(v);
  return s + "\n";
}

Tensor read_model_tensor(const std::string& path) {
  Tensor t;
  if (path.ends_with(".npy")) {
    t = io::read_npy(path);
  } else {
    MC_CHECK(path.ends_with(".safetensors"), "--tensor: '", path, "' is neither .npy nor .safetensors");
    StateDict sd = io::load_safetensors(path);
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
                                double tau2, double temperature) {
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
    ScanPrediction p = predict_scan(m, one, N == 1 ? id : id + "[" + std::to_string(i) + "]", prior, tau2, temperature);
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
    MC_CHECK(path.empty() || io::is_ct_source(path), opt, ": '", path,
             "' is neither a NIfTI file (.nii, .nii.gz) nor a folder (a DICOM series)");
  }
  for (const auto& [opt, path] : {std::pair{"--seg", cmd.seg}, {"--tensor", cmd.tensor}})
    MC_CHECK(path.empty() || fs::is_regular_file(path), opt, ": file '", path, "' not found");
  MC_CHECK(cmd.ct_dir.empty() || fs::is_directory(cmd.ct_dir), "--ct-dir: folder '", cmd.ct_dir, "' not found");
  MC_CHECK(cmd.seg_dir.empty() || fs::is_directory(cmd.seg_dir), "--seg-dir: folder '", cmd.seg_dir, "' not found");
  // Cross-validation folders stand for their fold models: the first is the checkpoint, the
  // others join the ensemble.
  std::vector<std::string> given{cmd.checkpoint}, weights;
  given.insert(given.end(), cmd.ensemble.begin(), cmd.ensemble.end());
  for (const std::string& w : given) {
    if (!is_crossval_dir(w)) {
      weights.push_back(w);
      continue;
    }
    const auto folds = fold_checkpoints(w);
    weights.insert(weights.end(), folds.begin(), folds.end());
  }
  const std::string checkpoint = weights.front();
  const std::vector<std::string> ensemble(weights.begin() + 1, weights.end());
  const Config cfg = checkpoint_config(checkpoint, cmd.config, cmd.overrides);
  io::PreprocessOptions opts = preprocess_options_from_config(cfg);
  if (cmd.label_id) opts.label_id = *cmd.label_id;
  if (!cmd.crop.empty()) opts.precropped = true;
  LoadedModel m = load_model(cfg, checkpoint);
  const double tau2 = cmd.tau2.value_or(cfg.posthoc.tau2);
  const TrainingPrior prior = tau2 != 0 ? training_prior(cfg, checkpoint) : TrainingPrior{};
  if (tau2 != 0)
    err << (prior.usable() ? "post-hoc adjustment tau2 = " + io::shortest(tau2) + ", training prior from " + prior.source
                           : "no post-hoc adjustment: training prior: " + prior.source)
        << "\n";
  // Temperature scaling calibrates class probabilities; a regression head has none.
  MC_CHECK(!(m.task.regression() && cmd.temperature), "--temperature: the model has a regression head (",
           m.task.describe(), "); temperature scaling applies to class probabilities only");
  const CheckpointTemperature fitted = m.task.regression() ? CheckpointTemperature{} : checkpoint_temperature(checkpoint);
  const double temperature = cmd.temperature.value_or(fitted.value);
  if (temperature != 1)
    err << "temperature scaling T = " << io::shortest(temperature)
        << (cmd.temperature ? " (--temperature)" : " (" + fitted.source + ", fitted at tau2 = " + io::shortest(fitted.tau2) + ")")
        << "\n";
  if (!cmd.temperature && fitted.present() && fitted.tau2 != tau2)
    err << "note: the temperature was fitted at tau2 = " << io::shortest(fitted.tau2) << ", this run adjusts with tau2 = "
        << io::shortest(tau2) << "\n";
  const std::vector<Flip> flips = cmd.tta ? tta_flips(cfg) : std::vector<Flip>{};
  if (cmd.tta) err << "test-time augmentation: mean logits over " << flips_text(flips) << "\n";
  const auto& names = m.task.classes;
  // Ensemble members beyond the first: the same config, each with its own prior and temperature.
  struct Member {
    LoadedModel model;
    TrainingPrior prior;
    double temperature = 1;
  };
  std::vector<Member> more;
  for (const std::string& w : ensemble) {
    MC_CHECK(fs::is_regular_file(w), "--ensemble: checkpoint '", w, "' not found");
    Member mb{load_model(cfg, w), tau2 != 0 ? training_prior(cfg, w) : TrainingPrior{}, 1};
    mb.temperature = m.task.regression() ? 1 : cmd.temperature.value_or(checkpoint_temperature(w).value);
    MC_CHECK(mb.model.num_classes == m.num_classes && mb.model.task == m.task, "--ensemble: '", w, "' has ",
             mb.model.task.describe(), "; --checkpoint has ", m.task.describe());
    more.push_back(std::move(mb));
  }
  if (!more.empty()) err << "ensemble of " << more.size() + 1 << " models: mean of their probabilities\n";
  auto predict_one = [&](const Tensor& x, const std::string& id) {
    std::vector<ScanPrediction> v{predict_scan(m, x, id, prior, tau2, temperature, flips)};
    for (Member& mb : more) v.push_back(predict_scan(mb.model, x, id, mb.prior, tau2, mb.temperature, flips));
    return ensemble_prediction(v, m.task);
  };
  auto emit = [&](const std::string& text) {
    if (cmd.out.empty()) out << text;
    else io::write_atomic(cmd.out, text);
  };

  if (!cmd.tensor.empty()) {
    MC_CHECK(more.empty() && flips.empty(), "--tensor: one model on the tensor as given (no --ensemble, no --tta)");
    emit(predict_tensor_json(m, read_model_tensor(cmd.tensor), fs::path(cmd.tensor).stem().string(), prior, tau2, temperature));
    return 0;
  }
  if (cmd.ct_dir.empty()) {
    const ScanInput in = cmd.crop.empty() ? ScanInput{stem_of(cmd.ct), cmd.ct, cmd.seg}
                                          : ScanInput{stem_of(cmd.crop), cmd.crop, ""};
    const ScanPrediction pred = predict_one(prepare_input(in, opts), in.id);
    if (!cmd.saliency.empty()) {
      int64_t cls = -1;  // the predicted class (of the adjusted, calibrated probabilities)
      // A regression head has one output, the T-score: its Grad-CAM shows what raises it.
      MC_CHECK(!(m.task.regression() && !cmd.saliency_class.empty()), "--saliency-class: the model has a regression head (",
               m.task.describe(), "): its one output, the T-score, is what --saliency explains");
      if (m.task.regression()) {
        cls = 0;
      } else if (cmd.saliency_class.empty()) {
        cls = pred.cls;
      } else {
        for (size_t k = 0; k < names.size(); ++k)
          if (names[k] == cmd.saliency_class || std::to_string(k) == cmd.saliency_class) cls = int64_t(k);
        std::string allowed;
        for (size_t k = 0; k < names.size(); ++k) allowed += (k ? ", " : "") + std::to_string(k) + " " + names[k];
        MC_CHECK(cls >= 0, "--saliency-class: '", cmd.saliency_class, "' is not a class of the model (", allowed, ")");
      }
      if (!more.empty()) err << "saliency: of the first model (--checkpoint) only\n";
      const Saliency sal = write_saliency(m, in, opts, cls, cmd.saliency, saliency_png_path(cmd.saliency), cmd.saliency_stage);
      err << "saliency: Grad-CAM of " << (m.task.regression() ? "the T-score" : "class " + names[size_t(cls)]) << " at layer" << sal.stage << " ("
          << shape_str(sal.cam.map.shape()) << " grid"
          << (cmd.saliency_stage == 0 && sal.stage != 4 ? "; layer4's grid is a single voxel for this cube size" : "")
          << ") -> " << sal.nifti << ", " << sal.png << "\n";
    }
    emit(prediction_json(pred, names, cmd.raw) + "\n");
    return 0;
  }
  const auto inputs = folder_inputs(cmd.ct_dir, cmd.seg_dir, opts);
  MC_CHECK(!inputs.empty(), "--ct-dir: no CT scans (<id>.nii.gz, <id>/ct.nii.gz or a DICOM series folder <id>/) in '",
           cmd.ct_dir, "'");
  std::string csv = prediction_csv_header(names, cmd.raw, m.task.regression());
  std::unique_ptr<io::Progress> bar;
  if (cmd.progress) bar = std::make_unique<io::Progress>("predict", int64_t(inputs.size()));
  int64_t failed = 0;
  for (const ScanInput& in : inputs) {
    try {
      csv += prediction_csv_row(predict_one(prepare_input(in, opts), in.id), names, cmd.raw);
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

}  // namespace mc::pipeline
