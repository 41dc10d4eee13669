#include "pipeline/prep_config.h"

#include <algorithm>

namespace mc::pipeline {

io::PreprocessOptions preprocess_options_from_config(const Config& c) {
  io::PreprocessOptions p = c.data.preprocess;
  if (c.data.raw.mask_mode == Config::Raw::MaskMode::Binary) p.label_id = -1;
  p.precropped = c.data.raw.mask_mode == Config::Raw::MaskMode::Precropped;
  return p;
}

io::PrepOptions prep_options_from_config(const Config& c) {
  const auto& d = c.data;
  io::PrepOptions o;
  o.ct_dir = d.raw.ct_dir;
  o.seg_dir = d.raw.seg_dir;
  o.labels_csv = d.raw.labels_csv;
  o.out_dir = d.cache_dir;
  o.preprocess = preprocess_options_from_config(c);
  o.task = task_of(c);
  o.hu = d.hu;
  switch (d.split.mode) {
    case Config::Split::Mode::File: o.split_file = d.split.file; break;
    case Config::Split::Mode::KFold: o.folds = d.split.folds; break;
    case Config::Split::Mode::Ratio:
      o.ratios = io::SplitRatios{d.split.ratios.at(0), d.split.ratios.at(1), d.split.ratios.at(2)};
      break;
  }
  o.seed = uint64_t(c.train.seed);
  o.workers = std::max(2, c.loader.workers);
  return o;
}

}  // namespace mc::pipeline
