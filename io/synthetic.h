// Generated CT data for tests, demos and smoke training: CT-like scans of the lumbar spine whose
// L1 trabecular density follows a T-score, with TotalSegmentator-style multi-label
// segmentations and a labels.csv (id,tscore).
//
// Each subject: a field of `size`^3 voxels (in-plane 1.1-1.6 mm, slices 1.5-2.5 mm, stored RAS
// or LPS at random) holding five vertebrae L3..T11 (TotalSegmentator v2 ids 29..33, L1 = 31)
// along a slightly tilted and rotated spine: elliptic-cylinder bodies with a cortical shell and
// endplates, pedicles, arch, spinous and transverse processes, discs, the spinal canal, aorta,
// vena cava, psoas muscles and fat. The L1 trabecular bone is about 150 + 45 T HU (plus a
// per-subject spread of 12 HU and texture), so classes overlap near the thresholds;
// neighbouring levels are a few HU denser (lower) or lighter (higher), like real spines.
// Partial-volume averaging (2x2x2 subsamples), a slight blur and Gaussian noise (20-40 HU)
// finish the scan. T-scores follow a long-tailed mix like the paper's data (12% osteoporosis /
// 35% osteopenia / 53% normal). Everything is deterministic for (seed, subject index), and
// independent of the number of worker threads.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "io/labels.h"
#include "io/nifti.h"

namespace mc::io {

class Progress;

struct SyntheticOptions {
  int64_t count = 200;
  int64_t size = 64;     // voxels per side of each scan
  uint64_t seed = 0;
  int workers = 2;
  std::array<double, kNumClasses> class_mix = {0.12, 0.35, 0.53};  // osteoporosis, -penia, normal
  // A binary task besides the T-score: labels.csv also gets a class column, binary_classes[0]
  // for T <= binary_threshold, else binary_classes[1] (empty: no class column).
  std::vector<std::string> binary_classes;
  double binary_threshold = -2.5;
};

struct SyntheticSubject {
  std::string id;
  double tscore = 0;
  int64_t label = -1;
  double l1_trabecular_hu = 0;  // the noise-free density the scan was drawn with
  Volume ct;                    // HU, integers
  Volume seg;                   // TotalSegmentator v2 vertebra ids
};

std::string synthetic_id(int64_t index);  // "syn00042"
// The subject's T-score alone (cheap: no volume), rounded to 0.1 and inside its class band.
double synthetic_tscore(uint64_t seed, int64_t index, const SyntheticOptions& opts = {});
SyntheticSubject make_synthetic_subject(uint64_t seed, int64_t index, const SyntheticOptions& opts);

// Writes DIR/ct/<id>.nii.gz (int16), DIR/seg/<id>.nii.gz (uint8) and DIR/labels.csv (id,tscore
// and, with binary_classes, class).
// Returns the subjects without their volumes.
std::vector<SyntheticSubject> write_synthetic_dataset(const std::string& dir,
                                                      const SyntheticOptions& opts,
                                                      Progress* progress = nullptr);

// Class counts and the mc_prep command that prepares the generated data.
std::string synthetic_summary(const std::vector<SyntheticSubject>& subjects, const std::string& dir);

}  // namespace mc::io
