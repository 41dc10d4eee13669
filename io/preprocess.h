// CT + segmentation -> one preprocessed L1 cube [C, V, V, V] in [0, 1].
//
// Steps (preprocess()):
//   1. the mask: segmentation == label_id (multi-label), != 0 (binary), or the whole volume
//      (a pre-cropped L1 volume, no segmentation);
//   2. check CT and mask share a grid (dims and affine within grid_tol_mm), else an error
//      naming both files; an empty mask is an error naming the label and the file;
//   3. statistics on the ORIGINAL grid (voxels, ml, mean and median HU) for the manifest;
//   4. both reoriented identically to RAS-canonical voxel order (nibabel's
//      as_closest_canonical), so every cube has D = inferior->superior, H = posterior->anterior,
//      W = left->right, whatever orientation the scanner stored;
//   5. crop to the mask's bounding box + margin_mm (clamped to the scan);
//   6. ONE trilinear resampling of the crop into the V^3 cube (interpolating once, not
//      twice): isotropic voxels whose size depends on `resize`:
//        Pad     - spacing_mm; the crop is centred and padded (or centre-cropped) to V;
//                  keeps physical size comparable across subjects (default);
//        Fit     - the crop's longest side fills V (isotropic), the rest padded;
//        Stretch - each axis resized to V on its own (anisotropic);
//      outside the crop is pad_hu (air). When shrinking, a Gaussian prefilter
//      (sigma = (step - 1) / 2 voxels, as skimage's anti_aliasing) avoids aliasing noise;
//   7. each HU window (level, width) becomes a channel: clamp((HU - level + width/2) / width);
//   8. optionally zero outside the mask (nearest-neighbour mask on the same grid).
// Defaults: 96^3 at 1.25 mm (a 120 mm field holds a whole L1 with its processes), margin 5 mm,
// one bone window L 400 / W 2000 (REFERENCE.md).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "io/nifti.h"

namespace mc::io {

struct HUWindow {
  double level = 400, width = 2000;
  bool operator==(const HUWindow&) const = default;
};
enum class ResizeMode { Pad, Fit, Stretch };
const char* resize_mode_name(ResizeMode m);
ResizeMode parse_resize_mode(const std::string& s);  // "pad", "fit", "stretch"
HUWindow parse_window(const std::string& s);         // "400,2000"

struct PreprocessOptions {
  int64_t label_id = 31;    // TotalSegmentator v2 vertebrae_L1 (v1: 22, VerSe: 20); < 0: binary mask
  bool precropped = false;  // the CT is already an L1 crop: no segmentation
  double margin_mm = 5;
  double spacing_mm = 1.25;  // Pad mode's voxel size
  int64_t volume = 96;       // cube side V
  ResizeMode resize = ResizeMode::Pad;
  std::vector<HUWindow> windows = {HUWindow{}};
  bool mask_outside = false;  // zero every channel outside the mask
  bool antialias = true;
  double pad_hu = -1024;       // fill outside the crop
  double grid_tol_mm = 1e-3;   // CT and mask affines may differ by this much
  // SeriesInstanceUID to read when a CT is a DICOM folder holding several series (config key
  // data.raw.dicom_series); "" = the folder must hold one.
  std::string dicom_series;
  // Sanity bounds, each a per-subject failure with its reason: a CT voxel edge outside this
  // range (mm) is a unit error (metres, microns) or a broken header (a 1e-6 mm sform would
  // make the anti-aliasing blur run for minutes); a scan narrower than min_fov_mm along an
  // axis cannot hold a vertebra.
  std::array<double, 2> spacing_range_mm{0.05, 20};
  double min_fov_mm = 10;
};

struct SubjectStats {
  int64_t voxels = 0;
  double volume_ml = 0, mean_hu = 0, median_hu = 0;
};

struct Preprocessed {
  Tensor cube;  // f32 [C, V, V, V] in [0, 1]
  Affine cube_affine = identity_affine();  // cube voxel (W, H, D index) -> world mm
  SubjectStats stats;
  std::string note;  // e.g. "crop 130 mm > field 120 mm: centre-cropped"
  // The CT's own grid as read (dims nx, ny, nz and voxel -> world), for maps written back onto it.
  std::vector<int64_t> scan_dims;
  Affine scan_affine = identity_affine();
};

// seg may be null only with opts.precropped.
Preprocessed preprocess(const Volume& ct, const Volume* seg, const PreprocessOptions& opts);
// Reads the files (the CT: a NIfTI file or a DICOM series folder, io/ct_source.h), then
// preprocess(); seg_path is ignored when opts.precropped.
Preprocessed preprocess_files(const std::string& ct_path, const std::string& seg_path,
                              const PreprocessOptions& opts);
// A CT and a volume on its grid as read for preprocessing: the CT by read_ct, a segmentation
// made on another grid of the same voxels (e.g. on dcm2niix's conversion of the DICOM series:
// rows reversed) put onto the CT's grid by conform_to. `summary` is read_ct's one line for logs
// (never patient data).
Volume read_ct_for(const std::string& ct_path, const PreprocessOptions& opts,
                   std::string* summary = nullptr);
Volume read_on_grid(const std::string& path, const Volume& ct, const PreprocessOptions& opts);

// ---- the steps, exposed for tests and tools ----
struct Box {
  std::array<int64_t, 3> lo{0, 0, 0}, hi{0, 0, 0};  // voxel indices i, j, k; hi exclusive
  bool empty() const { return hi[0] <= lo[0] || hi[1] <= lo[1] || hi[2] <= lo[2]; }
  int64_t size(int a) const { return hi[size_t(a)] - lo[size_t(a)]; }
};
// Mask voxels: value == label (label >= 0) or value != 0 (label < 0).
Volume select_label(const Volume& seg, int64_t label);
Box bounding_box(const Volume& mask);  // of voxels != 0; empty Box when none
Box expand_box(const Box& b, double margin_mm, const std::array<double, 3>& spacing,
               const std::vector<int64_t>& dims);
Volume crop(const Volume& v, const Box& b);  // affine shifted so world positions are kept
void check_same_grid(const Volume& a, const Volume& b, double tol_mm);
SubjectStats mask_stats(const Volume& ct, const Volume& mask);

enum class Interp { Nearest, Linear };
// Samples v at voxel coordinates x_a = origin[a] + step[a] * n_a for output index n (axis a
// = i, j, k). Points more than half a voxel outside the volume get `fill`; points within half
// a voxel of the edge take the edge value. Returns the new volume with its affine.
Volume resample(const Volume& v, const std::array<int64_t, 3>& out_dims,
                const std::array<double, 3>& origin, const std::array<double, 3>& step,
                Interp interp, double fill);
// Isotropic voxels of `spacing` mm covering the same extent, first voxel centre kept.
Volume resample_to_spacing(const Volume& v, double spacing, Interp interp);
// Separable Gaussian blur with per-axis sigma in voxels (0 = that axis untouched).
void gaussian_blur(Volume& v, const std::array<double, 3>& sigma_vox);
// Channel per window, each clamp((HU - (level - width/2)) / width, 0, 1): f32 [C, D, H, W].
Tensor apply_windows(const Volume& hu, const std::vector<HUWindow>& windows);

}  // namespace mc::io
