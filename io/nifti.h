// NIfTI-1 / NIfTI-2 volumes (.nii, .nii.gz, either byte order) as float32 tensors with their
// affine, on top of nifti_clib for header decoding, quaternions and byte swapping.
//
// Policy (matches nibabel's get_fdata): scl_slope/scl_inter apply only when the slope is
// finite and non-zero; trailing singleton dimensions are squeezed; every supported datatype
// becomes float32. The affine is the sform when sform_code > 0, else the qform when
// qform_code > 0, else plain pixdim scaling (NIfTI "method 1"; nibabel would use a centred,
// x-flipped Analyze affine there instead).
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace mc::io {

// Voxel index (i, j, k, 1) -> world millimetres (NIfTI's RAS+ scanner space).
using Affine = std::array<std::array<double, 4>, 4>;
Affine identity_affine();
Affine matmul(const Affine& a, const Affine& b);
std::array<double, 3> apply_affine(const Affine& a, double i, double j, double k);
std::string affine_str(const Affine& a);

// A volume in NIfTI storage order: i (x) varies fastest. `data` is a contiguous f32 tensor
// whose row-major shape is the reversed dims, so a 3-D volume is [nz, ny, nx] = [D, H, W].
struct Volume {
  std::string path;             // where it came from (for error messages); may be empty
  std::vector<int64_t> dims;    // nx, ny, nz, ... (trailing singletons squeezed)
  Tensor data;                  // f32, shape = reversed dims
  Affine affine = identity_affine();
  int datatype = 16;            // NIfTI datatype code on disk (16 = float32)
  int version = 1;              // NIfTI-1 or NIfTI-2
  double slope = 1, inter = 0;  // scaling applied when reading (1, 0 when none)

  int64_t nx() const { return dims.size() > 0 ? dims[0] : 1; }
  int64_t ny() const { return dims.size() > 1 ? dims[1] : 1; }
  int64_t nz() const { return dims.size() > 2 ? dims[2] : 1; }
  int64_t numel() const;
  float* ptr() const { return data.data<float>(); }
  float at(int64_t i, int64_t j, int64_t k) const { return ptr()[(k * ny() + j) * nx() + i]; }
  // Voxel size in mm along i, j, k: the lengths of the affine's columns.
  std::array<double, 3> spacing() const;
  double voxel_volume_mm3() const;  // |det| of the affine's 3x3 part
  std::string name() const;         // path, or "<memory>"
};

// Makes a zero-filled 3-D volume (nx, ny, nz) with the given affine.
Volume make_volume(int64_t nx, int64_t ny, int64_t nz, const Affine& affine = identity_affine());

// False in a build configured with MC_WITH_NIFTI=OFF: read_nifti, read_volume and write_nifti
// then throw mc::Error naming the file and saying "built without nifti_clib"; everything else
// here (affines, orientation, make_volume) works in either build.
bool nifti_supported();

// Reads any NIfTI image (up to 7-D). Throws mc::Error naming the file and the problem.
Volume read_nifti(const std::string& path);
// Reads a 3-D volume: 1-D/2-D images get singleton dims appended; a 4-D+ image is an error.
Volume read_volume(const std::string& path);

// Writes a NIfTI-1 single file (.nii, or gzip when the name ends in .gz). Integer types round
// to nearest and refuse values out of range. Written to a temporary name, then renamed.
enum class NiftiType { F32, U8, I16 };
void write_nifti(const std::string& path, const Volume& v, NiftiType type = NiftiType::F32);

// ---- orientation (like nibabel's io_orientation / as_closest_canonical) ----
// Output voxel axis a reads input axis src[a], reversed when flip[a].
struct AxisMap {
  std::array<int, 3> src{0, 1, 2};
  std::array<bool, 3> flip{false, false, false};
  bool identity() const;
  bool operator==(const AxisMap&) const = default;
};
// The permutation/flips that make voxel axes run as closely as possible along +x (R), +y (A),
// +z (S) of world space. Apply the SAME map to a CT and its segmentation.
AxisMap canonical_axes(const Affine& affine);
Volume reorient(const Volume& v, const AxisMap& map);
Volume to_canonical(const Volume& v);
std::string axcodes(const Affine& affine);  // e.g. "RAS", "LPS" (nibabel's aff2axcodes)

}  // namespace mc::io
