// Series grouping, selection and geometry: everything of the DICOM reader that needs no
// decoder, so it is tested (and works) in builds without GDCM too.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>
#include <sstream>

#include "io/dicom.h"

namespace mc::io {
namespace {

using V3 = std::array<double, 3>;

double dot(const V3& a, const V3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
V3 cross(const V3& a, const V3& b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}
V3 sub(const V3& a, const V3& b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }
double norm(const V3& a) { return std::sqrt(dot(a, a)); }

std::string base(const std::string& file) {
  return std::filesystem::path(file).filename().string();
}

std::string join(const std::vector<std::string>& v, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) s += (i ? sep : "") + v[i];
  return s;
}

template <class T, size_t N>
std::string vec_str(const std::array<T, N>& a) {
  std::ostringstream s;
  for (size_t i = 0; i < N; ++i) s << (i ? "\\" : "") << a[i];
  return s.str();
}

// Distinct values of one attribute with one file each, for "mixed ..." errors.
template <class F>
void require_uniform(const std::vector<DicomSlice>& slices, const std::string& where,
                     const char* what, F key_of) {
  std::map<std::string, std::pair<int64_t, std::string>> seen;
  for (const auto& s : slices) {
    auto& e = seen[key_of(s)];
    if (e.first++ == 0) e.second = base(s.file);
  }
  if (seen.size() <= 1) return;
  std::vector<std::string> parts;
  for (const auto& [k, e] : seen)
    parts.push_back(k + " in " + std::to_string(e.first) + " file(s), e.g. " + e.second);
  MC_FAIL(where, ": slices differ in ", what, ": ", join(parts, "; "),
          ". One series must hold images of one size and geometry");
}

std::string fmt(double x, int digits = 4) {
  std::ostringstream s;
  s.precision(digits);
  s << x;
  return s.str();
}

}  // namespace

std::string DicomSeriesInfo::str() const {
  std::ostringstream s;
  s << (uid.empty() ? "(no SeriesInstanceUID)" : uid) << " \"" << description << "\" ("
    << (modality.empty() ? "modality ?" : modality);
  if (series_number >= 0) s << ", series " << series_number;
  s << ", " << files << (files == 1 ? " file)" : " files)");
  return s.str();
}

std::string DicomReadInfo::summary() const {
  std::ostringstream s;
  s << "DICOM series " << series.str() << ": " << slices << (slices == 1 ? " slice, " : " slices, ")
    << fmt(slice_spacing_mm)
    << " mm apart, " << join(transfer_syntaxes, ", ");
  if (lossy) s << " (lossy)";
  if (!ignored.empty()) s << "; " << ignored.size() << " file(s) skipped";
  for (const auto& n : notes) s << "; " << n;
  return s.str();
}

std::vector<DicomSeriesInfo> group_series(const std::vector<DicomSlice>& slices) {
  std::map<std::string, DicomSeriesInfo> by_uid;
  std::vector<std::string> order;  // first appearance (slices come sorted by file name)
  for (const auto& s : slices) {
    auto [it, fresh] = by_uid.try_emplace(s.series_uid);
    DicomSeriesInfo& g = it->second;
    if (fresh) {
      order.push_back(s.series_uid);
      g.uid = s.series_uid;
      g.description = s.description;
      g.modality = s.modality;
      g.series_number = s.series_number;
      g.first_file = s.file;
    }
    ++g.files;
  }
  std::vector<DicomSeriesInfo> out;
  for (const auto& uid : order) out.push_back(by_uid[uid]);
  return out;
}

std::vector<DicomSlice> select_series(const std::vector<DicomSlice>& slices,
                                      const DicomOptions& opts, const std::string& dir,
                                      DicomSeriesInfo* chosen, std::vector<std::string>* notes) {
  if (slices.empty()) MC_FAIL(dir, ": no DICOM images in this folder");
  const auto groups = group_series(slices);
  auto listing = [&] {
    std::string s;
    for (const auto& g : groups) s += "\n  " + g.str();
    return s;
  };
  const DicomSeriesInfo* pick = nullptr;
  if (!opts.series_uid.empty()) {
    for (const auto& g : groups)
      if (g.uid == opts.series_uid) pick = &g;
    if (!pick)
      MC_FAIL(dir, ": no series with SeriesInstanceUID ", opts.series_uid, " (", opts.series_key,
              "); the folder holds:", listing());
  } else if (groups.size() > 1) {
    MC_FAIL(dir, ": the folder holds ", groups.size(), " DICOM series; choose one with ",
            opts.series_key, " (its SeriesInstanceUID):", listing());
  } else {
    pick = &groups[0];
  }
  const std::string where = dir + ", series " + pick->str();
  if (!pick->modality.empty() && pick->modality != "CT")
    MC_FAIL(where, ": modality is ", pick->modality, "; a CT series (HU) is needed");

  std::vector<DicomSlice> out, localizers;
  for (const auto& s : slices) {
    if (s.series_uid != pick->uid) continue;
    (s.image_type.find("LOCALIZER") != std::string::npos ? localizers : out).push_back(s);
  }
  if (out.empty()) MC_FAIL(where, ": holds only localizer (scout) images");
  if (!localizers.empty() && notes)
    notes->push_back(std::to_string(localizers.size()) + " localizer image(s) left out");
  if (chosen) {
    *chosen = *pick;
    chosen->files = int64_t(out.size());
  }
  return out;
}

SeriesGeometry series_geometry(const std::vector<DicomSlice>& slices, const DicomOptions& opts,
                               const std::string& where) {
  MC_CHECK(!slices.empty(), where, ": no slices");
  for (const auto& s : slices) {
    const std::string f = where + ", file " + base(s.file);
    if (s.frames > 1)
      MC_FAIL(f, ": is a multi-frame image (", s.frames, " frames, e.g. Enhanced CT); only "
              "single-frame slices are read. Convert it to single-frame files (dcm4che emf2sf) "
              "or to NIfTI (dcm2niix)");
    if (s.samples != 1 || (s.photometric != "MONOCHROME2" && s.photometric != "MONOCHROME1"))
      MC_FAIL(f, ": is a colour image (", s.samples, " samples per pixel, ", s.photometric,
              "); CT slices are MONOCHROME");
    if (s.modality_lut)
      MC_FAIL(f, ": maps stored values to HU with a Modality LUT Sequence; only RescaleSlope / "
              "RescaleIntercept are supported");
    if (!(std::isfinite(s.slope) && s.slope != 0 && std::isfinite(s.intercept)))
      MC_FAIL(f, ": RescaleSlope ", s.slope, " / RescaleIntercept ", s.intercept,
              " cannot give HU");
    if (!s.position) MC_FAIL(f, ": has no ImagePositionPatient (0020,0032)");
    if (!s.orientation) MC_FAIL(f, ": has no ImageOrientationPatient (0020,0037)");
    if (!s.pixel_spacing) MC_FAIL(f, ": has no PixelSpacing (0028,0030)");
    if (!((*s.pixel_spacing)[0] > 0 && (*s.pixel_spacing)[1] > 0))
      MC_FAIL(f, ": PixelSpacing ", vec_str(*s.pixel_spacing), " must be positive");
    if (s.rows < 1 || s.cols < 1) MC_FAIL(f, ": image of ", s.rows, " x ", s.cols, " pixels");
  }
  require_uniform(slices, where, "image size (rows x columns)", [](const DicomSlice& s) {
    return std::to_string(s.rows) + " x " + std::to_string(s.cols);
  });
  const auto& ps = *slices[0].pixel_spacing;
  const auto& iop = *slices[0].orientation;
  require_uniform(slices, where, "PixelSpacing", [&](const DicomSlice& s) {
    const auto& p = *s.pixel_spacing;
    return std::abs(p[0] - ps[0]) < 1e-4 && std::abs(p[1] - ps[1]) < 1e-4 ? vec_str(ps)
                                                                          : vec_str(p);
  });
  require_uniform(slices, where, "ImageOrientationPatient", [&](const DicomSlice& s) {
    const auto& o = *s.orientation;
    bool same = true;
    for (size_t c = 0; c < 6; ++c) same = same && std::abs(o[c] - iop[c]) < 1e-4;
    return same ? vec_str(iop) : vec_str(o);
  });

  V3 row{iop[0], iop[1], iop[2]}, col{iop[3], iop[4], iop[5]};
  const double lr = norm(row), lc = norm(col);
  if (std::abs(lr - 1) > 1e-2 || std::abs(lc - 1) > 1e-2 || std::abs(dot(row, col)) > 1e-3 * lr * lc)
    MC_FAIL(where, ": ImageOrientationPatient ", vec_str(iop),
            " is not two orthogonal unit vectors");
  for (auto& x : row) x /= lr;
  for (auto& x : col) x /= lc;
  V3 normal = cross(row, col);
  const double ln = norm(normal);
  for (auto& x : normal) x /= ln;

  SeriesGeometry g;
  const size_t n = slices.size();
  std::vector<double> along(n);
  for (size_t s = 0; s < n; ++s) along[s] = dot(*slices[s].position, normal);
  g.order.resize(n);
  std::iota(g.order.begin(), g.order.end(), size_t(0));
  std::stable_sort(g.order.begin(), g.order.end(),
                   [&](size_t a, size_t b) { return along[a] < along[b]; });
  auto file_at = [&](size_t k) { return base(slices[g.order[k]].file); };
  auto pos_at = [&](size_t k) { return fmt(along[g.order[k]], 6); };

  if (n == 1) {
    const auto& s = slices[0];
    g.spacing_mm = s.spacing_between_slices.value_or(s.slice_thickness.value_or(1.0));
    if (!(g.spacing_mm > 0)) g.spacing_mm = 1.0;
    g.notes.push_back("a single slice (slice spacing " + fmt(g.spacing_mm) + " mm from " +
                      (s.spacing_between_slices ? "SpacingBetweenSlices"
                                                : s.slice_thickness ? "SliceThickness"
                                                                    : "no attribute: 1 mm") +
                      ")");
  } else {
    std::vector<double> gaps(n - 1);
    for (size_t k = 0; k + 1 < n; ++k) gaps[k] = along[g.order[k + 1]] - along[g.order[k]];
    std::vector<double> sorted = gaps;
    std::nth_element(sorted.begin(), sorted.begin() + long(sorted.size() / 2), sorted.end());
    const double median = sorted[sorted.size() / 2];
    const double tol = std::max(opts.spacing_abs_tol_mm, opts.spacing_rel_tol * median);
    for (size_t k = 0; k + 1 < n; ++k)
      if (gaps[k] <= tol)
        MC_FAIL(where, ": two slices at the same position ", pos_at(k), " mm along the normal (",
                file_at(k), ", ", file_at(k + 1), "): duplicated files or several "
                "acquisitions / echoes / phases in one series");
    int64_t missing = 0, uneven = 0;
    std::string first_missing, first_uneven;
    for (size_t k = 0; k + 1 < n; ++k) {
      if (std::abs(gaps[k] - median) <= tol) continue;
      const double r = std::round(gaps[k] / median);
      const std::string at = "between " + file_at(k) + " (" + pos_at(k) + " mm) and " +
                             file_at(k + 1) + " (" + pos_at(k + 1) + " mm): gap " +
                             fmt(gaps[k]) + " mm";
      if (r >= 2 && std::abs(gaps[k] - r * median) <= tol * r) {
        missing += int64_t(r) - 1;
        if (first_missing.empty()) first_missing = at;
      } else {
        ++uneven;
        if (first_uneven.empty()) first_uneven = at;
      }
    }
    if (missing > 0)
      MC_FAIL(where, ": ", missing, " slice(s) missing (slices are ", fmt(median),
              " mm apart; first gap ", first_missing, ")");
    if (uneven > 0)
      MC_FAIL(where, ": uneven slice spacing: ", uneven, " gap(s) differ from the median ",
              fmt(median), " mm by more than ", fmt(tol), " mm (first ", first_uneven,
              "); resample the series to even spacing first");
    g.spacing_mm = (along[g.order[n - 1]] - along[g.order[0]]) / double(n - 1);

    // Gantry tilt (or a sheared stack): positions move within the slice plane from slice to
    // slice. Our grids are orthogonal, so beyond a fraction of a pixel this is an error.
    const V3 p0 = *slices[g.order[0]].position;
    const double tol_mm = opts.drift_tol_px * std::min(ps[0], ps[1]);
    for (size_t k = 1; k < n; ++k) {
      const V3 d = sub(*slices[g.order[k]].position, p0);
      const double a = dot(d, normal);
      const V3 off{d[0] - a * normal[0], d[1] - a * normal[1], d[2] - a * normal[2]};
      if (norm(off) > tol_mm) {
        const double deg = std::atan2(norm(off), std::abs(a)) * 180.0 / M_PI;
        const auto& tilt = slices[g.order[k]].gantry_tilt;
        MC_FAIL(where, ": slice positions leave the slice normal (", fmt(norm(off)), " mm off at ",
                file_at(k), ", a ", fmt(deg, 3), " degree tilt",
                tilt ? "; GantryDetectorTilt " + fmt(*tilt, 3) : std::string(),
                "): gantry-tilted series are not supported; correct the tilt first (e.g. "
                "dcm2niix, which writes a tilt-corrected NIfTI)");
      }
    }
  }

  // LPS: column index i moves along `row` by the column spacing (PixelSpacing[1]), row index
  // j along `col` by the row spacing (PixelSpacing[0]), k along the normal.
  const V3 p0 = *slices[g.order[0]].position;
  Affine a = identity_affine();
  for (int r = 0; r < 3; ++r) {
    a[r][0] = row[r] * ps[1];
    a[r][1] = col[r] * ps[0];
    a[r][2] = normal[r] * g.spacing_mm;
    a[r][3] = p0[r];
  }
  for (int r = 0; r < 2; ++r)  // LPS -> RAS
    for (int c = 0; c < 4; ++c) a[r][c] = -a[r][c];
  g.affine = a;
  return g;
}

}  // namespace mc::io
