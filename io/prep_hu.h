// mc_prep's per-vertebra HU measurements (io/vertebra_roi.h) for the manifest: what the run
// config's data.hu.* asks for, and the manifest columns it fills.
//
// Columns, for each vertebra V of `vertebrae` (e.g. L1):
//   V_body_source   where the body came from: "body map", "body label" or "estimate"
//   V_body_voxels, V_body_ml, V_body_mean_hu, V_body_median_hu      the whole body
//   V_roi_voxels, V_roi_ml, V_roi_mean_hu, V_roi_median_hu, V_roi_sd_hu
//                   its trabecular ROI (the body eroded by roi_margin_mm)
//   V_ts_voxels, V_ts_ml, V_ts_mean_hu, V_ts_median_hu
//                   the body as TotalSegmentator's spine report erodes it (4 mm, its kernel):
//                   the figures of its spine_report.json (intensity, intensity_median)
//   V_bmd, V_qct    with a calibration: mg/cm^3 of the ROI mean and its ACR QCT category
// then roi_margin_mm, bmd_l1_l2 and qct_l1_l2 (with a calibration), and hu_note (why a
// vertebra has no figures). Empty cells: not measured.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "io/preprocess.h"
#include "io/vertebra_roi.h"

namespace mc::io {

struct HuOptions {
  bool enabled = true;
  std::string vertebrae = "L1-L5";  // parse_vertebrae()
  // Label scheme of the vertebrae segmentation: totalseg_v2, totalseg_v1, verse, or auto
  // (from the L1 label: 31 totalseg_v2, 22 totalseg_v1, 20 verse).
  std::string labels = "auto";
  // Body segmentation per subject, a path in which {id} stands for the subject id
  // ("seg/{id}_vertebrae_pp.nii.gz"); "" = our own body estimate.
  std::string body_seg;
  BodyMap body_map = BodyMap::PerVertebra;  // how body_seg reads (io/vertebra_roi.h)
  int64_t body_label = 1;                   // BodyMap::Bodies: the label of the bodies
  double margin_mm = 3;
  double estimate_radius_mm = 7.5;
  std::vector<double> calibration;  // [] or [slope, intercept]: mg/cm^3 = slope * HU + intercept
};

// The measuring options for a subject whose L1 label is `l1_label` (binary mask: < 0, then
// only L1 is measured, as label 1). Errors name the data.hu key at fault.
RoiOptions roi_options(const HuOptions& h, int64_t l1_label);
// body_seg with {id} replaced; "" when no body segmentation is configured.
std::string body_seg_path(const HuOptions& h, const std::string& id);

std::vector<std::string> hu_columns(const RoiOptions& o);
// One cell per hu_columns() entry ("" for everything when hu is empty).
std::vector<std::string> hu_cells(const std::optional<SpineHU>& hu, const RoiOptions& o,
                                  const std::string& note);

}  // namespace mc::io
