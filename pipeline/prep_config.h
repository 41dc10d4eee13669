// The run config's data section as mc_prep's options, so one YAML file drives preparation,
// training and evaluation with the same preprocessing.
#pragma once
#include "pipeline/config.h"
#include "io/prep.h"

namespace mc::pipeline {
// data.raw.* -> scans, masks, labels; data.{volume, spacing_mm, margin_mm, resize, windows,
// mask_outside, tscore_thresholds, split} -> preprocessing and splits; caches go to
// data.cache_dir (named as split_cache_path expects).
io::PrepOptions prep_options_from_config(const Config& c);
io::PreprocessOptions preprocess_options_from_config(const Config& c);
}  // namespace mc::pipeline
