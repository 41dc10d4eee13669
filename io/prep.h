// The library behind mc_prep: a data set of CT scans + segmentations + labels -> one cache per
// split (io/cache.h) and a manifest CSV, decoded once so training never touches NIfTI.
//
// Pairing rule. Subject ids come from the CT directory and from the labels table:
//   CT:   <ct_dir>/<id>.nii.gz | <id>.nii                      (flat)
//         <ct_dir>/<id>/ct.nii.gz | ct.nii                      (TotalSegmentator style)
//         <ct_dir>/<id>/ct/                                     a DICOM series folder
//         <ct_dir>/<id>/                                        itself, when it holds DICOM
//                                                               files (slices, or sub-folders
//                                                               of them as archives export)
//   mask, first match in <seg_dir> (default: ct_dir for the per-subject layout):
//         <seg_dir>/<id>.nii.gz | <id>.nii                      multi-label, uses label_id
//         <seg_dir>/<id>/segmentations.nii.gz                   multi-label (TotalSegmentator --ml)
//         <seg_dir>/<id>/segmentations/<mask_name>.nii.gz       binary (TotalSegmentator output)
//         <seg_dir>/<id>/<mask_name>.nii.gz                     binary
//   (a flat <id>.nii.gz in seg_dir counts only when seg_dir differs from ct_dir).
// With preprocess.precropped no mask is needed: the CT is the L1 crop.
//
// Besides the cube, each subject's vertebrae are measured (io/prep_hu.h, data.hu.*): body and
// trabecular-ROI HU per vertebra into the manifest. A measurement that fails leaves those
// cells empty with the reason in hu_note; the subject's cube is kept.
//
// A subject that cannot be used (no scan, no mask, no label, unreadable file, empty mask,
// grids that differ) gets a manifest row with status "skipped" or "failed" and the reason,
// and the run goes on. Splits are assigned before preprocessing, from the subjects that have
// a scan, a mask and a label, so one failing file never reshuffles the others.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/labels.h"
#include "io/prep_hu.h"
#include "io/preprocess.h"
#include "io/split.h"

namespace mc::io {

struct PrepOptions {
  std::string ct_dir, seg_dir, labels_csv, out_dir;
  std::string mask_name = "vertebrae_L1";  // per-structure TotalSegmentator mask file stem
  PreprocessOptions preprocess;
  Task task;  // the classes and how labels map to them (WHO bands by default)
  std::string split_file;  // CSV id,split; when empty: ratios, or folds when folds >= 2
  SplitRatios ratios;
  int folds = 0;
  uint64_t seed = 0;
  int workers = 2;
  bool save_crops = false;  // also write each cube's first channel as <out>/crops/<id>.nii.gz
  bool progress = true;     // progress bar on stderr
  HuOptions hu;             // per-vertebra HU measurements for the manifest
};

struct SubjectFiles {
  std::string id, ct, seg;  // empty path: not found
  bool binary_mask = false; // seg is a per-structure mask, not a multi-label map
};

struct ManifestRow {
  std::string id;
  int64_t label = -1;
  double tscore = std::nan("");
  std::string split;
  SubjectStats stats;
  std::string status;  // "ok", "skipped" (not attempted) or "failed" (attempted, error)
  std::string reason;
  std::string ct, seg;
  std::optional<SpineHU> hu;  // per-vertebra measurements (empty: not measured)
  std::string hu_note;        // why not, or which fallback was taken
};

struct PrepResult {
  std::vector<ManifestRow> rows;                 // sorted by id
  std::map<std::string, int64_t> split_counts;   // usable subjects per split
  std::map<std::string, std::string> caches;     // split -> cache path
  std::string manifest;
  int64_t ok = 0, skipped = 0, failed = 0;
};

// Finds the files of one subject by the pairing rule.
SubjectFiles find_subject_files(const PrepOptions& opts, const std::string& id);
// Subject ids with a CT in ct_dir (either layout), sorted.
std::vector<std::string> list_ct_subjects(const std::string& ct_dir);

// Runs the whole preparation; throws only for problems of the run itself (bad options,
// unreadable labels or split file, an output that cannot be written).
PrepResult run_prep(const PrepOptions& opts);

// The command line of mc_prep: pipeline/prep_cli.h.

// The manifest: id,label,class (the label's name in `task`),tscore,split,voxels,volume_ml,
// mean_hu,median_hu (the whole L1 mask), then hu_columns(*hu) when given, then status,reason.
void write_manifest(const std::string& path, const std::vector<ManifestRow>& rows,
                    const Task& task = Task::who(),
                    const std::optional<RoiOptions>& hu = std::nullopt);
// The measuring options of run_prep (none with hu.enabled off or precropped scans).
std::optional<RoiOptions> prep_roi_options(const PrepOptions& opts);
std::string prep_summary(const PrepResult& r, const Task& task = Task::who());  // a few lines for the terminal
std::map<std::string, std::string> cache_meta(const PrepOptions& opts, const std::string& split);

}  // namespace mc::io
