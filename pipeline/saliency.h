// Where the model looked: mc_predict --saliency. A 3D Grad-CAM map (models/gradcam.h) of the
// last convolutional stage (layer4; when its grid is a single voxel along some axis, as for
// cubes under 64^3, the last stage with at least 2 voxels per axis, said on stderr; or the
// stage asked for), upsampled to the preprocessed L1 cube, then resampled onto the
// scan's own voxel grid through the cube's affine so it overlays on the CT in any viewer
// (3D Slicer, ITK-SNAP): same dims, same affine (sform) as the CT file (or the DICOM series as
// io/ct_source.h reads it); 0 outside the crop;
// values in [0, 1] (the map divided by its maximum). Beside it a PNG of three orthogonal
// slices of the cube through the map's peak, the CT (channel 0, the first HU window) in grey
// (top row) and with the map over it in a heat colour scale (bottom row; values under 0.2 are
// left out):
//   left: axial (anterior up), middle: coronal (superior up), right: sagittal (superior up,
//   anterior left); axial and coronal in radiological convention (patient's right on the left).
#pragma once
#include <array>
#include <string>

#include "io/nifti.h"
#include "io/png.h"
#include "models/gradcam.h"
#include "pipeline/predict.h"

namespace mc::pipeline {

// cube_map [D, H, W] on the cube grid (voxel (W, H, D index) -> world by cube_affine) sampled
// trilinearly at the world position of every voxel of `ref`; 0 outside the cube (more than
// half a voxel beyond its edge). Returns a volume with ref's dims and affine (only those of ref
// are read: its data may be empty).
io::Volume map_to_grid(const Tensor& cube_map, const io::Affine& cube_affine, const io::Volume& ref);
io::Affine invert_affine(const io::Affine& a);

// The three-slice overlay (see above) through voxel at = {d, h, w}; ct and map are [V, V, V]
// f32 in [0, 1]; each cube voxel becomes scale x scale pixels.
io::RgbImage overlay_slices(const Tensor& ct, const Tensor& map, const std::array<int64_t, 3>& at, int scale);

struct Saliency {
  models::GradCam cam;
  Tensor cube_map;               // [V, V, V] in [0, 1]
  std::array<int64_t, 3> peak{};  // {d, h, w} of the cube map's maximum
  std::string nifti, png;        // written files
  int stage = 4;                 // the ResNet stage explained (layer<stage>)
};
// Grad-CAM of `cls` (< 0: the predicted class) for one scan, written to nifti_path (and the
// PNG to png_path when not empty). stage 1..4, or 0 = automatic (above). Needs a ResNet-3D
// model (an error says so otherwise).
Saliency write_saliency(LoadedModel& m, const ScanInput& in, const io::PreprocessOptions& opts, int64_t cls,
                        const std::string& nifti_path, const std::string& png_path, int stage = 0);
// "OUT.nii.gz" -> "OUT.png" (also .nii).
std::string saliency_png_path(const std::string& nifti_path);

}  // namespace mc::pipeline
