#include "pipeline/prep_config.h"

namespace mc {

PreprocessOptions preprocess_options_from_config(const Config& c) {
  const auto& d = c.data;
  PreprocessOptions p;
  p.label_id = d.raw.mask_mode == Config::Raw::MaskMode::Binary ? -1 : d.raw.label_id;
  p.precropped = d.raw.mask_mode == Config::Raw::MaskMode::Precropped;
  p.margin_mm = d.margin_mm;
  p.spacing_mm = d.spacing_mm;
  p.volume = d.volume;
  p.resize = parse_resize_mode(std::string(to_string(d.resize)));
  p.windows.clear();
  for (const auto& w : d.windows) p.windows.push_back(HUWindow{w.level, w.width});
  p.mask_outside = d.mask_outside;
  return p;
}

PrepOptions prep_options_from_config(const Config& c) {
  const auto& d = c.data;
  PrepOptions o;
  o.ct_dir = d.raw.ct_dir;
  o.seg_dir = d.raw.seg_dir;
  o.labels_csv = d.raw.labels_csv;
  o.out_dir = d.cache_dir;
  o.preprocess = preprocess_options_from_config(c);
  o.bands.osteoporosis_max = d.tscore_thresholds.at(0);
  o.bands.normal_min = d.tscore_thresholds.at(1);
  switch (d.split.mode) {
    case Config::Split::Mode::File: o.split_file = d.split.file; break;
    case Config::Split::Mode::KFold: o.folds = d.split.folds; break;
    case Config::Split::Mode::Ratio:
      o.ratios = SplitRatios{d.split.ratios.at(0), d.split.ratios.at(1), d.split.ratios.at(2)};
      break;
  }
  o.seed = uint64_t(c.train.seed);
  o.workers = std::max(2, d.num_workers);
  return o;
}

}  // namespace mc
