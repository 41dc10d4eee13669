// mc_predict's command line (CLI11): the options and the rules that tie them together.
#include <cmath>

#include "io/text.h"
#include "pipeline/cli.h"
#include "pipeline/predict.h"

namespace mc::pipeline {
namespace {

const char* kUsage =
    "usage: mc_predict --checkpoint W.safetensors|CV_DIR [--ensemble W2|CV_DIR ...] [--config FILE.yaml] [key=value ...]\n"
    "                  (--ct CT.nii.gz|DICOM_DIR --seg SEG.nii.gz [--label-id N] | --crop L1.nii.gz |\n"
    "                   --ct-dir DIR [--seg-dir DIR] | --tensor X.npy|X.safetensors)\n"
    "                  [--raw] [--tau2 X] [--temperature T] [--tta] [--out FILE] [--no-progress]\n"
    "                  [--saliency MAP.nii.gz [--saliency-class C] [--saliency-stage N]]\n";

struct Options {
  std::unique_ptr<CLI::App> app;
  std::string label_id, tau2, temperature;  // checked below, with mc_predict's own words
};

Options make_options(PredictCommand& c) {
  Options o;
  o.app = cli::make_app(
      "mc_predict", kUsage,
      "Classifies L1 vertebrae with a trained model, preprocessing each scan exactly as mc_prep\n"
      "does (data.* keys of the config).",
      "Output: JSON {id, class, class_name, probabilities{name: p}, tau2, temperature[, logits][, note]};\n"
      "probabilities = softmax((logits - tau2 log prior) / temperature);\n"
      "a folder gives CSV id,class,class_name,p_<name>...[,logit_<name>...]. A regression head\n"
      "gives {id, tscore, class, class_name} (CSV id,tscore,class,class_name).");
  CLI::App& a = *o.app;
  a.add_option("--checkpoint", c.checkpoint, "weights (safetensors, PyTorch key names; \"module.\" prefixes are fine),\n"
               "or a cross-validation run folder (mc_train --folds K): the ensemble of its fold models")->type_name("W");
  a.add_option("--ensemble", c.ensemble, "more checkpoints (or cross-validation folders) of the same config:\n"
               "the prediction is the mean of every model's probabilities")->type_name("W ...");
  a.add_option("--config", c.config, "the run's config; default: the config stored in\n"
               "<tag>.state.safetensors beside the weights by mc_train")->type_name("FILE");
  a.add_option("--ct", c.ct, "one CT (NIfTI, or the folder of a DICOM series: data.raw.dicom_series\n"
               "picks one of several) and its segmentation (multi-label: --label-id, default\n"
               "data.raw.label_id; 31 = TotalSegmentator v2 vertebrae_L1)")->type_name("CT");
  a.add_option("--seg", c.seg, "the segmentation of --ct")->type_name("SEG");
  a.add_option("--label-id", o.label_id, "label of L1 in --seg")->type_name("N");
  a.add_option("--crop", c.crop, "a CT that is already the L1 crop (no segmentation; NIfTI or DICOM folder)")->type_name("CT");
  a.add_option("--ct-dir", c.ct_dir, "every scan of a folder, paired as mc_prep pairs them -> CSV")->type_name("DIR");
  a.add_option("--seg-dir", c.seg_dir, "the masks of --ct-dir (default: the CT folder)")->type_name("DIR");
  a.add_option("--tensor", c.tensor, "a prepared model input, .npy or a one-tensor .safetensors,\n"
               "[C,D,H,W] or [N,C,D,H,W], run as it is (no preprocessing): one JSON\n"
               "line per sample with logits and probabilities")->type_name("FILE");
  a.add_option("--tau2", o.tau2, "post-hoc adjustment softmax(logits - X log prior); default\n"
               "posthoc.tau2 of the config, 0 = none. The prior (training class\n"
               "counts) comes from the checkpoint's state metadata, else the train\n"
               "cache; with neither, probabilities are unadjusted and a note says so")->type_name("X");
  a.add_option("--temperature", o.temperature, "divide the (adjusted) scores by T before the softmax;\n"
               "default: the temperature mc_train fitted on validation and stored in\n"
               "the checkpoint's state (1 = none)")->type_name("T");
  a.add_option("--saliency", c.saliency, "one scan: write a Grad-CAM map (last convolutional stage)\n"
               "on the scan's own grid and affine, values in [0, 1], and MAP.png:\n"
               "three orthogonal slices through its peak over the CT")->type_name("MAP.nii.gz");
  a.add_option("--saliency-class", c.saliency_class, "the class the map explains (index or name);\n"
               "default: the predicted class")->type_name("C");
  a.add_option("--saliency-stage", c.saliency_stage, "ResNet stage to explain, 1..4 (layer1..layer4);\n"
               "default: layer4, or the last stage with a grid of >= 2 voxels per axis")->type_name("N");
  a.add_flag("--tta", c.tta, "test-time augmentation: mean logits over the flips training used");
  a.add_flag("--raw", c.raw, "also print the logits");
  a.add_option("--out", c.out, "write the JSON (one scan) or CSV (a folder) there, not to stdout")->type_name("FILE");
  a.add_flag_callback("--no-progress", [&c] { c.progress = false; }, "no progress bar");
  return o;
}

double number(const char* opt, const std::string& s) {
  const auto d = io::parse_double(s);
  MC_CHECK(d && std::isfinite(*d), opt, ": '", s, "' is not a number");
  return *d;
}

}  // namespace

std::string predict_usage() {
  PredictCommand c;
  return make_options(c).app->help();
}

PredictCommand parse_predict_command(const std::vector<std::string>& args) {
  PredictCommand c;
  Options o = make_options(c);
  const cli::Parsed parsed = cli::parse(*o.app, args);
  if (parsed.help) {
    c.help = true;
    return c;
  }
  const std::string bad = cli::take_overrides(parsed.rest, c.overrides);
  MC_CHECK(bad.empty(), "unknown argument '", bad, "'");
  if (!o.tau2.empty()) c.tau2 = number("--tau2", o.tau2);
  if (!o.temperature.empty()) {
    c.temperature = number("--temperature", o.temperature);
    MC_CHECK(*c.temperature > 0, "--temperature: ", o.temperature, " must be > 0");
  }
  if (!o.label_id.empty()) {
    const double d = number("--label-id", o.label_id);
    MC_CHECK(d == std::floor(d) && d >= 0 && d < 1e6, "--label-id: '", o.label_id, "' is not a label id");
    c.label_id = int64_t(d);
  }
  MC_CHECK(!c.checkpoint.empty(), "--checkpoint W.safetensors is required");
  const int modes = !c.ct.empty() + !c.crop.empty() + !c.ct_dir.empty() + !c.tensor.empty();
  MC_CHECK(modes == 1, "give exactly one of --ct CT --seg SEG, --crop L1, --ct-dir DIR or --tensor FILE");
  MC_CHECK(c.ct.empty() || !c.seg.empty(), "--ct needs --seg SEG.nii.gz (or use --crop for an L1 crop)");
  MC_CHECK(c.seg.empty() || !c.ct.empty(), "--seg goes with --ct");
  MC_CHECK(c.seg_dir.empty() || !c.ct_dir.empty(), "--seg-dir goes with --ct-dir");
  MC_CHECK(!c.label_id || c.crop.empty(), "--label-id has no meaning with --crop");
  MC_CHECK(c.saliency.empty() || c.ct_dir.empty(), "--saliency maps one scan (--ct or --crop), not a folder");
  MC_CHECK(c.saliency.empty() || c.saliency.ends_with(".nii.gz") || c.saliency.ends_with(".nii"),
           "--saliency: '", c.saliency, "' must end in .nii.gz or .nii");
  MC_CHECK(c.saliency_class.empty() || !c.saliency.empty(), "--saliency-class goes with --saliency");
  MC_CHECK(c.saliency_stage >= 0 && c.saliency_stage <= 4, "--saliency-stage: ", c.saliency_stage, " is not 1..4");
  return c;
}

}  // namespace mc::pipeline
