// Binary morphology in millimetres on anisotropic voxel grids, for the vertebral-body ROI
// (io/vertebra_roi.h): an exact Euclidean distance transform and ball-shaped erosion,
// dilation and opening defined by it, and the largest connected component.
//
// Distances are between voxel centres, in mm, with each axis scaled by its spacing.
// Voxels outside the array are not background (scipy.ndimage.distance_transform_edt's
// convention), so a mask that touches the array edge is not eroded from that side.
#pragma once
#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace mc::io {

struct Mask {
  std::array<int64_t, 3> dims{0, 0, 0};  // i (fastest), j, k
  std::vector<uint8_t> v;                // 0 or 1

  Mask() = default;
  explicit Mask(const std::array<int64_t, 3>& d)
      : dims(d), v(size_t(d[0] * d[1] * d[2]), 0) {}
  int64_t size() const { return dims[0] * dims[1] * dims[2]; }
  int64_t index(int64_t i, int64_t j, int64_t k) const { return (k * dims[1] + j) * dims[0] + i; }
  int64_t count() const;
};

// Squared distance (mm^2) from each voxel centre to the nearest voxel where the mask is 0;
// +inf where the array has none. Exact (Felzenszwalb & Huttenlocher's separable transform).
std::vector<double> distance_squared_to_background(const Mask& m,
                                                   const std::array<double, 3>& spacing);
// Voxels whose closed ball of radius r_mm lies inside the mask: distance to background > r.
Mask erode_ball(const Mask& m, const std::array<double, 3>& spacing, double r_mm);
// Voxels within r_mm of the mask (the union of closed balls of radius r on its voxels).
Mask dilate_ball(const Mask& m, const std::array<double, 3>& spacing, double r_mm);
// dilate(erode(m)): the union of the balls of radius r_mm that fit inside m, so parts
// thinner than 2 r vanish. Within m by construction.
Mask open_ball(const Mask& m, const std::array<double, 3>& spacing, double r_mm);
// The largest 6-connected component (ties: the one reached first in storage order).
Mask largest_component(const Mask& m);

}  // namespace mc::io
