// Vertebral-body HU for opportunistic osteoporosis screening: per vertebra, the body and its
// trabecular ROI, with volume and HU statistics, and volumetric BMD when a scanner calibration
// is given (REFERENCE.md, "Opportunistic CT screening by HU").
//
// Body, by what is given:
//   a per-vertebra body map (BodyMap::PerVertebra; TotalSegmentator's vertebrae_pp labels,
//     VerSe numbering 19 T12, 20 L1 ... 24 L5): body = (bodies == that vertebra's label);
//   a bodies-vs-discs map (BodyMap::Bodies; TotalSegmentator's vertebrae_body task, 1 = bodies,
//     2 = discs): body = (vertebrae == label) and (bodies == body_label);
//   nothing: our estimate. body = the opening of the vertebra mask by a ball of radius
//     estimate_radius_mm (erosion then dilation by Euclidean distance in mm), then its largest
//     6-connected component. The posterior elements (pedicles, laminae, processes), thinner
//     than 2 r, vanish; the body, 30-50 mm across, keeps its shape. On example_ct (3 mm voxels)
//     r = 7.5 mm gives Dice 0.87-0.92 against the vertebrae_pp bodies of L1-L5.
// Trabecular ROI: the body eroded by margin_mm, i.e. the body voxels whose distance (between
//   voxel centres, in mm through the affine's spacing) to the nearest voxel outside the body
//   exceeds margin_mm: erosion by a closed ball, exact over anisotropic voxels (io/morphology.h).
//   It leaves the cortex and the partial-volume rim out. Voxels beyond the scan's edge do not
//   count as outside (a body cut by the scan is flagged in touches_edge).
// TotalSegmentator's ROI, to compare with its spine report (totalseg_spine_report, whose
//   90.25 HU rule reads this median): the body eroded by scipy.ndimage.binary_erosion with
//   get_erosion_struct_elem(4 mm), on the CT turned to RAS (nibabel's as_closest_canonical).
//   That kernel is the offsets of np.ogrid[-r:r+1] (r = 4 mm / spacing per axis, kernel centre
//   at index n // 2) inside the ellipsoid sum (g / r)^2 <= 1: not symmetric when r is not an
//   integer (3 mm voxels: offsets {-1, 0} along each RAS axis, a 2 x 2 x 2 cube). Here it is
//   built the same way and mapped onto the CT's own axes. On example_ct with the vertebrae_pp
//   bodies it gives spine_report.json's intensity and intensity_median of L1-L5 exactly.
// Statistics on the CT's own grid: voxels, volume (ml), mean, median (numpy's: the mean of the
//   two middle values for an even count) and SD (sample, n - 1) of HU.
// BMD (mg/cm^3) = slope * HU + intercept of the ROI mean, when a calibration is configured;
//   ACR QCT categories: > 120 normal, 80-120 osteopenia, < 80 osteoporosis. QCT reports the
//   mean of two vertebrae (L1 and L2 here) as well.
#pragma once
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "io/nifti.h"

namespace mc::io {

using LabelScheme = std::map<std::string, int64_t>;  // vertebra name ("L1") -> label id
// "totalseg_v2" (total task: C1 50 ... T12 32, L1 31 ... L5 27), "totalseg_v1" (C1 41 ...
// T12 23, L1 22 ... L5 18), "verse" (C1 1 ... T12 19, L1 20 ... L5 24; also vertebrae_pp).
LabelScheme label_scheme(const std::string& name);
// "L1-L5", "T12,L1", "L1": names in spine order; an unknown name is an error.
std::vector<std::string> parse_vertebrae(const std::string& spec);

enum class BodySource { PerVertebra, Bodies, Estimate };
const char* body_source_name(BodySource s);  // "body map", "body label", "estimate"
enum class BodyMap { PerVertebra, Bodies };

struct BmdCalibration {
  double slope = 0, intercept = 0;  // mg/cm^3 = slope * HU + intercept
};
enum class QctCategory { Normal, Osteopenia, Osteoporosis };
const char* qct_category_name(QctCategory c);  // "normal", "osteopenia", "osteoporosis"
QctCategory qct_category(double bmd_mg_cm3);

struct RoiOptions {
  std::vector<std::string> vertebrae = {"L1", "L2", "L3", "L4", "L5"};
  LabelScheme vertebra_labels = label_scheme("totalseg_v2");  // of the vertebrae segmentation
  BodyMap body_map = BodyMap::PerVertebra;                    // how a body segmentation reads
  LabelScheme body_labels = label_scheme("verse");            // BodyMap::PerVertebra
  int64_t body_label = 1;                                     // BodyMap::Bodies
  double margin_mm = 3.0;            // erosion of the body into its trabecular ROI
  double estimate_radius_mm = 7.5;   // opening radius of the body estimate
  std::optional<BmdCalibration> calibration;
  double grid_tol_mm = 1e-3;         // CT and segmentations must share a grid
};

// TotalSegmentator's spine report erodes each body by this much before its HU statistics.
inline constexpr double kTotalSegmentatorErosionMm = 4.0;

struct HUStats {
  int64_t voxels = 0;
  double volume_ml = 0;
  double mean = std::nan(""), median = std::nan(""), sd = std::nan("");
};

struct VertebraHU {
  std::string name;
  int64_t label = -1;        // its label in the map the body came from
  bool found = false;        // the label is present
  BodySource source = BodySource::Estimate;
  HUStats body, roi;         // the whole body; its trabecular ROI
  HUStats ts;                // the body as TotalSegmentator's spine report erodes it (above)
  bool touches_edge = false; // the body reaches the scan's edge: it may be cut off
  std::optional<double> bmd; // mg/cm^3 of the ROI mean (with a calibration)
  std::optional<QctCategory> qct;
  std::string note;          // why something is missing
};

struct SpineHU {
  std::vector<VertebraHU> vertebrae;      // in the order asked for
  std::optional<double> bmd_l1_l2;        // mean of the L1 and L2 ROI BMD when both exist
  std::optional<QctCategory> qct_l1_l2;
};

// The bodies and ROIs as label maps on the CT's grid: voxel = 1 + the vertebra's position in
// RoiOptions::vertebrae, 0 elsewhere (for inspection, e.g. written with write_nifti).
struct RoiMasks {
  Volume body, roi;
};

// ct: HU. vertebrae: a multi-label vertebra map (opts.vertebra_labels); it may be null only
// with a per-vertebra body map. bodies: null for our estimate. All on one grid (else an error
// naming the files). A vertebra absent from its map is reported with found = false and a note.
SpineHU measure_vertebrae(const Volume& ct, const Volume* vertebrae, const Volume* bodies,
                          const RoiOptions& opts, RoiMasks* masks = nullptr);
// Statistics of ct over a mask of the same size (voxels != 0), as defined above.
HUStats hu_stats(const Volume& ct, const std::vector<int64_t>& voxels);

}  // namespace mc::io
