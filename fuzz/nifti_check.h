// What the NIfTI harnesses check on a volume the reader accepted.
#pragma once
#include <algorithm>
#include <array>

#include "fuzz/fuzz_util.h"
#include "io/nifti.h"

namespace mc::fuzz {

inline void read_and_check_nifti(const std::string& path) {
  const io::Volume v = io::read_nifti(path);
  FUZZ_CHECK(!v.dims.empty() && v.dims.size() <= 7, v.dims.size(), " dims");
  for (int64_t d : v.dims) FUZZ_CHECK(d >= 1, "dim ", d);
  FUZZ_CHECK(v.data.numel() == v.numel(), "tensor has ", v.data.numel(), " voxels, dims say ",
             v.numel());
  if (v.dims.size() > 3) return;
  // What mc_prep does next with a scan: a 3-D volume in canonical (RAS+) orientation. The
  // affine comes straight from the file, so whatever it holds must give a permutation.
  io::Volume v3 = v;  // as read_volume makes it, without reading the file again
  while (v3.dims.size() < 3) v3.dims.push_back(1);
  v3.data = v3.data.view({v3.nz(), v3.ny(), v3.nx()});
  const io::AxisMap m = io::canonical_axes(v3.affine);
  std::array<int, 3> src = m.src;
  std::sort(src.begin(), src.end());
  FUZZ_CHECK((src == std::array<int, 3>{0, 1, 2}), "canonical axes ", m.src[0], m.src[1],
             m.src[2], " are not a permutation for affine ", io::affine_str(v3.affine));
  const io::Volume c = io::reorient(v3, m);
  FUZZ_CHECK(c.data.numel() == v3.data.numel(), "reorient changed the voxel count");
}

}  // namespace mc::fuzz
