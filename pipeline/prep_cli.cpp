#include "pipeline/prep_cli.h"

#include <optional>
#include <ostream>
#include <thread>

#include "pipeline/config.h"
#include "pipeline/prep_config.h"
#include "io/progress.h"
#include "io/synthetic.h"
#include "io/text.h"
#include "pipeline/cli.h"

namespace mc::pipeline {
namespace {

const char* kUsage =
    "usage: mc_prep --ct-dir DIR [--seg-dir DIR] [--labels CSV] --out DIR [options]\n"
    "       mc_prep --synthetic N --out DIR [--seed S] [--size 64] [--workers N]\n"
    "       mc_prep --config RUN.yaml [key=value ...]   (data.* of a run config; caches to data.cache_dir)\n"
    "       mc_prep --to-nifti DICOM_DIR OUT.nii.gz [--series-uid UID]   (the series as we read it)\n";

const char* kAbout =
    "mc_prep: CT scans + segmentations + T-scores -> preprocessed L1 cubes, one cache per split\n\n"
    "Pairing: <ct-dir>/<id>.nii.gz with <seg-dir>/<id>.nii.gz, or TotalSegmentator style\n"
    "<ct-dir>/<id>/ct.nii.gz with <seg-dir>/<id>/segmentations.nii.gz or\n"
    "<seg-dir>/<id>/segmentations/<mask-name>.nii.gz. A CT may be a DICOM series folder instead\n"
    "of a .nii.gz: <ct-dir>/<id>/ (slices, or sub-folders of them) or <ct-dir>/<id>/ct/.\n"
    "The manifest also holds per-vertebra HU of the vertebral body and its trabecular ROI.";
const char* kData = "data";

// The options, bound to `c` (strings where io/ parses the value and names the problem).
struct Options {
  std::unique_ptr<CLI::App> app;
  std::vector<std::string> windows;
  std::string resize, bands, ratios, body_map, calibration;
  std::vector<std::string> to_nifti;
};

Options make_options(PrepCommand& c) {
  Options o;
  o.app = cli::make_app("mc_prep", kUsage, kAbout,
                        "Exit status: 0 when at least one subject was prepared, 1 when none, 2 on a usage error.");
  CLI::App& a = *o.app;
  io::PrepOptions& p = c.prep;
  const auto integer = cli::integer('"'), number = cli::number('"');
  a.add_option("--ct-dir", p.ct_dir, "CT scans")->type_name("DIR")->group(kData);
  a.add_option("--seg-dir", p.seg_dir, "segmentations (default: the CT directory, per-subject layout)")->type_name("DIR")->group(kData);
  a.add_option("--labels", p.labels_csv, "id + tscore (or class name/index); WHO bands give the class")->type_name("CSV")->group(kData);
  a.add_option("--label-id", p.preprocess.label_id, "label of L1 in the segmentation (default 31 = TotalSegmentator v2;\n"
               "v1: 22, VerSe: 20; -1: any non-zero voxel)")->type_name("N")->check(integer)->group(kData);
  a.add_option("--mask-name", p.mask_name, "per-structure mask file stem (default vertebrae_L1)")->type_name("NAME")->group(kData);
  a.add_flag("--precropped", p.preprocess.precropped, "the CT files are already L1 crops: no segmentation")->group(kData);
  a.add_option("--tscore-bands", o.bands, "osteoporosis T <= A, normal T >= B (default -2.5,-1)")->type_name("A,B")->group(kData);
  a.add_option("--series-uid", p.preprocess.dicom_series, "SeriesInstanceUID to read when a DICOM folder holds several series")
      ->type_name("UID")->group(kData);
  const char* hu = "vertebral-body HU (manifest)";
  a.add_option("--vertebrae", p.hu.vertebrae, "vertebrae to measure (default L1-L5; e.g. T12,L1)")->type_name("LIST")->group(hu);
  a.add_option("--vertebra-labels", p.hu.labels, "label scheme of the segmentation: totalseg_v2, totalseg_v1, verse,\n"
               "auto (default: from --label-id)")->type_name("SCHEME")->group(hu);
  a.add_option("--body-seg", p.hu.body_seg, "body segmentation per subject, {id} = subject id (default: bodies estimated)")
      ->type_name("PATTERN")->group(hu);
  a.add_option("--body-map", o.body_map, "per_vertebra (vertebrae_pp labels, L1 = 20; default) or bodies\n"
               "(vertebrae_body task: bodies = --body-label)")->type_name("KIND")->group(hu);
  a.add_option("--body-label", p.hu.body_label, "label of the bodies with --body-map bodies (default 1)")->type_name("N")->check(integer)->group(hu);
  a.add_option("--roi-margin", p.hu.margin_mm, "erosion of the body into its trabecular ROI (default 3)")->type_name("MM")->check(number)->group(hu);
  a.add_option("--calibration", o.calibration, "scanner calibration: BMD mg/cm^3 = SLOPE * HU + INTERCEPT")->type_name("SLOPE,INTERCEPT")->group(hu);
  a.add_flag_callback("--no-hu", [&p] { p.hu.enabled = false; }, "no per-vertebra HU measurements")->group(hu);
  const char* pre = "preprocessing";
  a.add_option("--volume", p.preprocess.volume, "cube side in voxels (default 96)")->type_name("V")->check(integer)->group(pre);
  a.add_option("--spacing", p.preprocess.spacing_mm, "voxel size in pad mode (default 1.25)")->type_name("MM")->check(number)->group(pre);
  a.add_option("--margin", p.preprocess.margin_mm, "margin around the L1 bounding box (default 5)")->type_name("MM")->check(number)->group(pre);
  a.add_option("--resize", o.resize, "pad (keep spacing, pad/crop to V; default), fit (longest side = V),\n"
               "stretch (each axis to V)")->type_name("MODE")->group(pre);
  a.add_option("--window", o.windows, "HU window level,width; repeat for more channels (default 400,2000)")
      ->type_name("L,W")->allow_extra_args(false)->group(pre);
  a.add_flag("--mask-outside", p.preprocess.mask_outside, "zero everything outside the L1 mask")->group(pre);
  a.add_flag_callback("--no-antialias", [&p] { p.preprocess.antialias = false; }, "no Gaussian prefilter when shrinking")->group(pre);
  const char* splits = "splits";
  a.add_option("--split-ratios", o.ratios, "stratified train,val,test (default 0.8,0.1,0.1)")->type_name("A,B,C")->group(splits);
  a.add_option("--folds", p.folds, "stratified K folds (fold0..foldK-1) instead")->type_name("K")->check(integer)->group(splits);
  a.add_option("--split-file", p.split_file, "fixed assignment: id,split")->type_name("CSV")->group(splits);
  a.add_option("--seed", p.seed, "seed of the split and of --synthetic (default 0)")->type_name("S")->check(integer)->group(splits);
  const char* run = "run";
  a.add_option("--out", p.out_dir, "writes <split>.safetensors (io/cache.h format) and manifest.csv")->type_name("DIR")->group(run);
  a.add_option("--workers", p.workers, "threads (default: all cores, at least 2)")->type_name("N")->check(integer)->group(run);
  a.add_flag("--save-crops", p.save_crops, "also write <out>/crops/<id>.nii.gz (first channel) to inspect")->group(run);
  a.add_flag_callback("--no-progress", [&p] { p.progress = false; }, "no progress bar")->group(run);
  a.add_option("--synthetic", c.synthetic, "generate N CT-like subjects (ct/, seg/, labels.csv) into --out")->type_name("N")->check(integer)->group(run);
  a.add_option("--binary", c.synthetic_binary, "with --synthetic: labels.csv also gets a class column, A for\n"
               "T <= -2.5 (osteoporosis), else B: a binary task (data.classes: [A, B])")->type_name("A,B")->group(run);
  a.add_option("--size", c.synthetic_size, "voxels per side of synthetic scans (default 64)")->type_name("N")->check(integer)->group(run);
  a.add_option("--to-nifti", o.to_nifti, "write the CT (a DICOM series folder) as read, to inspect; nothing else")
      ->expected(2)->type_name("CT OUT.nii.gz")->group(run);
  a.add_option("--config", c.config, "the run config: data.* sets everything above; then only key=value\n"
               "overrides may follow")->type_name("RUN.yaml")->group(run);
  return o;
}

}  // namespace

std::string prep_usage() {
  PrepCommand c;
  return make_options(c).app->help();
}

PrepCommand parse_prep_command(const std::vector<std::string>& args) {
  PrepCommand c;
  io::PrepOptions& o = c.prep;
  o.workers = std::max(2, int(std::thread::hardware_concurrency()));
  Options opts = make_options(c);
  const cli::Parsed parsed = cli::parse(*opts.app, args);
  if (parsed.help) {
    c.help = true;
    return c;
  }
  const std::string bad = cli::take_overrides(parsed.rest, c.overrides);
  MC_CHECK(bad.empty(), "unknown option \"", bad, "\" (see --help)");
  if (!c.config.empty()) {
    for (const CLI::Option* opt : opts.app->get_options())
      MC_CHECK(opt->count() == 0 || opt->get_name() == "--config", "--config takes every setting from the run config: ",
               opt->get_name(), " cannot go with it (override data.* keys as key=value)");
    c.prep = prep_options_from_config(load_config(c.config, c.overrides));
    return c;
  }
  MC_CHECK(c.overrides.empty(), "key=value overrides need --config (got \"", c.overrides[0], "\")");
  if (!opts.to_nifti.empty()) {
    MC_CHECK(opts.to_nifti.size() == 2, "--to-nifti takes two arguments: the CT (a DICOM folder) and OUT.nii.gz");
    for (const CLI::Option* opt : opts.app->get_options())
      MC_CHECK(opt->count() == 0 || opt->get_name() == "--to-nifti" || opt->get_name() == "--series-uid",
               "--to-nifti goes only with --series-uid, not with ", opt->get_name());
    c.to_nifti_ct = opts.to_nifti[0], c.to_nifti_out = opts.to_nifti[1];
    const std::string& out = c.to_nifti_out;
    MC_CHECK(out.ends_with(".nii") || out.ends_with(".nii.gz"), "--to-nifti: the output '", out,
             "' must end in .nii or .nii.gz");
    return c;
  }
  if (!opts.body_map.empty()) {
    MC_CHECK(opts.body_map == "per_vertebra" || opts.body_map == "bodies", "--body-map: \"", opts.body_map,
             "\": expected per_vertebra or bodies");
    o.hu.body_map = opts.body_map == "bodies" ? io::BodyMap::Bodies : io::BodyMap::PerVertebra;
  }
  if (!opts.calibration.empty()) {
    const auto v = io::parse_numbers(opts.calibration);
    MC_CHECK(v && v->size() == 2, "--calibration: \"", opts.calibration, "\": expected SLOPE,INTERCEPT (e.g. 0.8,-2)");
    o.hu.calibration = *v;
  }
  if (!opts.resize.empty()) o.preprocess.resize = io::parse_resize_mode(opts.resize);
  if (!opts.windows.empty()) {
    o.preprocess.windows.clear();
    for (const std::string& w : opts.windows) o.preprocess.windows.push_back(io::parse_window(w));
  }
  if (!opts.bands.empty()) {
    const auto v = io::parse_numbers(opts.bands);
    MC_CHECK(v && v->size() == 2, "--tscore-bands: \"", opts.bands, "\": expected A,B (e.g. -2.5,-1)");
    MC_CHECK((*v)[0] < (*v)[1], "--tscore-bands: A must be below B");
    o.task.thresholds = *v;
  }
  if (!opts.ratios.empty()) o.ratios = io::parse_split_ratios(opts.ratios);
  MC_CHECK(!o.out_dir.empty(), "--out is required (see --help)");
  MC_CHECK(o.workers >= 1, "--workers must be at least 1");
  MC_CHECK(c.synthetic_binary.empty() || c.synthetic != 0, "--binary goes with --synthetic N");
  if (!c.synthetic_binary.empty()) {
    const size_t comma = c.synthetic_binary.find(',');
    MC_CHECK(comma != std::string::npos && comma > 0 && comma + 1 < c.synthetic_binary.size() &&
                 c.synthetic_binary.find(',', comma + 1) == std::string::npos,
             "--binary: \"", c.synthetic_binary, "\": expected two class names A,B");
  }
  if (c.synthetic != 0) {
    MC_CHECK(c.synthetic > 0, "--synthetic must be positive");
    MC_CHECK(c.synthetic_size >= 16, "--size must be at least 16");
    return c;
  }
  MC_CHECK(!o.ct_dir.empty(), "--ct-dir is required (see --help)");
  MC_CHECK(o.folds == 0 || o.folds >= 2, "--folds must be at least 2");
  MC_CHECK(o.preprocess.volume >= 8, "--volume must be at least 8");
  MC_CHECK(o.preprocess.spacing_mm > 0, "--spacing must be positive");
  MC_CHECK(o.preprocess.margin_mm >= 0, "--margin must not be negative");
  return c;
}

int run_prep_command(const PrepCommand& cmd, std::ostream& out) {
  const io::PrepOptions& o = cmd.prep;
  if (!cmd.to_nifti_ct.empty()) {
    std::string summary;
    const io::Volume ct = io::read_ct_for(cmd.to_nifti_ct, o.preprocess, &summary);
    io::write_nifti(cmd.to_nifti_out, ct);
    out << "read " << summary << "\nwrote " << cmd.to_nifti_out << " (" << ct.nx() << " x " << ct.ny() << " x "
        << ct.nz() << ", spacing " << io::fixed(ct.spacing()[0], 3) << " x " << io::fixed(ct.spacing()[1], 3) << " x "
        << io::fixed(ct.spacing()[2], 3) << " mm, HU as float32)\n";
    return 0;
  }
  if (cmd.synthetic > 0) {
    io::SyntheticOptions s;
    s.count = cmd.synthetic, s.size = cmd.synthetic_size, s.seed = o.seed, s.workers = o.workers;
    if (!cmd.synthetic_binary.empty()) {  // "A,B", checked by parse_prep_command
      const size_t comma = cmd.synthetic_binary.find(',');
      s.binary_classes = {cmd.synthetic_binary.substr(0, comma), cmd.synthetic_binary.substr(comma + 1)};
    }
    std::optional<io::Progress> bar;
    if (o.progress) bar.emplace("synthetic", s.count);
    const auto subjects = io::write_synthetic_dataset(o.out_dir, s, bar ? &*bar : nullptr);
    if (bar) bar->finish();
    out << io::synthetic_summary(subjects, o.out_dir);
    return 0;
  }
  const io::PrepResult r = io::run_prep(o);
  out << io::prep_summary(r, o.task);
  return r.ok > 0 ? 0 : 1;
}

}  // namespace mc::pipeline
