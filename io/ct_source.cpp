#include "io/ct_source.h"

#include <cmath>
#include <filesystem>

namespace mc::io {

namespace fs = std::filesystem;

namespace {

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

bool nifti_name(const std::string& path) {
  return ends_with(path, ".nii") || ends_with(path, ".nii.gz");
}

}  // namespace

const char* ct_format_name(CtFormat f) { return f == CtFormat::Dicom ? "dicom" : "nifti"; }

CtFormat ct_format(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec)) return CtFormat::Dicom;
  if (!fs::exists(path, ec)) {
    // A link whose target cannot be reached (a loop, or dangling) is not "no such file".
    if (fs::is_symlink(path)) MC_FAIL(path, ": cannot open: too many levels of symbolic links, or a dangling link (",
                                      ec ? ec.message() : std::string("target missing"), ")");
    MC_FAIL(path, ": no such file or folder");
  }
  if (nifti_name(path)) return CtFormat::Nifti;
  MC_FAIL(path, ": not a CT this program reads: give a NIfTI file (.nii, .nii.gz) or the folder "
          "of a DICOM series (for a single DICOM slice, its folder)");
}

bool is_ct_source(const std::string& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) || (nifti_name(path) && fs::is_regular_file(path, ec));
}

Volume read_ct(const std::string& path, const DicomOptions& dicom, CtSourceInfo* info) {
  CtSourceInfo local;
  CtSourceInfo& ci = info ? *info : local;
  ci = CtSourceInfo{};
  ci.format = ct_format(path);
  if (ci.format == CtFormat::Nifti) {
    Volume v = read_volume(path);
    ci.summary = "NIfTI " + path;
    return v;
  }
  Volume v = read_dicom_series(path, dicom, &ci.dicom);
  ci.summary = path + ": " + ci.dicom.summary();
  return v;
}

Volume conform_to(const Volume& v, const Volume& ref, double tol_mm) {
  MC_CHECK(v.dims.size() == 3 && ref.dims.size() == 3, v.name(), " / ", ref.name(),
           ": grids can be matched only between 3-D volumes");
  auto unit_column = [](const Affine& a, int c) {
    std::array<double, 3> u{a[0][size_t(c)], a[1][size_t(c)], a[2][size_t(c)]};
    const double n = std::sqrt(u[0] * u[0] + u[1] * u[1] + u[2] * u[2]);
    for (auto& x : u) x = n > 0 ? x / n : 0;
    return u;
  };
  auto fail = [&](const std::string& why) {
    MC_FAIL(v.name(), " cannot be put on the grid of ", ref.name(), " (", why, "): affine ",
            affine_str(v.affine), " vs ", affine_str(ref.affine));
  };
  AxisMap map;
  std::array<bool, 3> used{false, false, false};
  for (int a = 0; a < 3; ++a) {
    const auto want = unit_column(ref.affine, a);
    int best = -1;
    double best_cos = 0;
    for (int b = 0; b < 3; ++b) {
      const auto have = unit_column(v.affine, b);
      const double c = want[0] * have[0] + want[1] * have[1] + want[2] * have[2];
      if (!used[size_t(b)] && std::abs(c) > std::abs(best_cos)) best = b, best_cos = c;
    }
    if (best < 0 || std::abs(best_cos) < 0.999) fail("voxel axes are not parallel");
    used[size_t(best)] = true;
    map.src[size_t(a)] = best;
    map.flip[size_t(a)] = best_cos < 0;
  }
  Volume out = reorient(v, map);
  if (out.dims != ref.dims) fail("dims differ after matching the axis order");
  double worst = 0;
  for (int r = 0; r < 3; ++r)
    for (int c = 0; c < 4; ++c)
      worst = std::max(worst, std::abs(out.affine[size_t(r)][size_t(c)] -
                                       ref.affine[size_t(r)][size_t(c)]));
  if (!(worst <= tol_mm))
    fail("affines differ by " + std::to_string(worst) + " mm after matching the axis order");
  return out;
}

}  // namespace mc::io
