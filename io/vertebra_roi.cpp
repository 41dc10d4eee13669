#include "io/vertebra_roi.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <sstream>

#include "io/morphology.h"
#include "io/preprocess.h"

namespace mc::io {
namespace {

const char* const kSpine[] = {"C1", "C2", "C3", "C4", "C5", "C6", "C7", "T1", "T2", "T3",
                              "T4", "T5", "T6", "T7", "T8", "T9", "T10", "T11", "T12", "L1",
                              "L2", "L3", "L4", "L5"};
constexpr int kSpineLen = int(sizeof kSpine / sizeof kSpine[0]);

int spine_index(const std::string& name) {
  for (int i = 0; i < kSpineLen; ++i)
    if (name == kSpine[i]) return i;
  return -1;
}

std::string known_names(const LabelScheme& s) {
  std::vector<std::pair<int, std::string>> v;
  for (const auto& [n, l] : s) v.push_back({spine_index(n), n});
  std::sort(v.begin(), v.end());
  std::string out;
  for (const auto& p : v) out += (out.empty() ? "" : " ") + p.second;
  return out;
}

std::string trim(std::string s) {
  s.erase(0, s.find_first_not_of(" \t"));
  s.erase(s.find_last_not_of(" \t") + 1);
  return s;
}

// Voxel range [lo, hi) per axis of the voxels equal to `label` (empty when none).
struct Range {
  std::array<int64_t, 3> lo{INT64_MAX, INT64_MAX, INT64_MAX}, hi{0, 0, 0};
  bool empty() const { return hi[0] <= lo[0]; }
};

std::map<int64_t, Range> label_ranges(const Volume& seg, const std::vector<int64_t>& labels) {
  std::map<int64_t, Range> out;
  for (int64_t l : labels) out[l];
  const float* p = seg.ptr();
  for (int64_t k = 0, at = 0; k < seg.nz(); ++k)
    for (int64_t j = 0; j < seg.ny(); ++j)
      for (int64_t i = 0; i < seg.nx(); ++i, ++at) {
        const float x = p[at];
        if (x == 0) continue;
        const double r = std::nearbyint(double(x));
        if (r != double(x)) continue;  // not a label value
        auto it = out.find(int64_t(r));
        if (it == out.end()) continue;
        Range& g = it->second;
        const std::array<int64_t, 3> c{i, j, k};
        for (size_t a = 0; a < 3; ++a) {
          g.lo[a] = std::min(g.lo[a], c[a]);
          g.hi[a] = std::max(g.hi[a], c[a] + 1);
        }
      }
  return out;
}

// Cuts [lo - 1, hi + 1) (clamped) out of the volume: one voxel of margin is enough for the
// distance transform, since every voxel outside the range is outside the mask.
struct Crop {
  std::array<int64_t, 3> lo{}, dims{};
  int64_t global(const Volume& v, int64_t at) const {
    const int64_t i = at % dims[0], j = (at / dims[0]) % dims[1], k = at / (dims[0] * dims[1]);
    return ((k + lo[2]) * v.ny() + (j + lo[1])) * v.nx() + (i + lo[0]);
  }
};

Crop crop_around(const Volume& v, const Range& r) {
  Crop c;
  const std::array<int64_t, 3> n{v.nx(), v.ny(), v.nz()};
  for (size_t a = 0; a < 3; ++a) {
    c.lo[a] = std::max<int64_t>(0, r.lo[a] - 1);
    c.dims[a] = std::min(n[a], r.hi[a] + 1) - c.lo[a];
  }
  return c;
}

// The crop's voxels where `keep(global index)` holds.
template <class F>
Mask mask_in(const Volume& v, const Crop& c, F keep) {
  Mask m(c.dims);
  for (int64_t at = 0; at < m.size(); ++at) m.v[size_t(at)] = keep(c.global(v, at)) ? 1 : 0;
  return m;
}

bool touches_edge(const Volume& v, const Crop& c, const Mask& m) {
  const std::array<int64_t, 3> n{v.nx(), v.ny(), v.nz()};
  for (int64_t at = 0; at < m.size(); ++at) {
    if (!m.v[size_t(at)]) continue;
    const std::array<int64_t, 3> x{at % c.dims[0] + c.lo[0], (at / c.dims[0]) % c.dims[1] + c.lo[1],
                                   at / (c.dims[0] * c.dims[1]) + c.lo[2]};
    for (size_t a = 0; a < 3; ++a)
      if (x[a] == 0 || x[a] == n[a] - 1) return true;
  }
  return false;
}

std::vector<int64_t> voxels_of(const Volume& v, const Crop& c, const Mask& m) {
  std::vector<int64_t> out;
  for (int64_t at = 0; at < m.size(); ++at)
    if (m.v[size_t(at)]) out.push_back(c.global(v, at));
  std::sort(out.begin(), out.end());  // storage order: sums do not depend on the crop
  return out;
}

std::string fmt(double x) {
  std::ostringstream s;
  s << x;
  return s.str();
}

// TotalSegmentator's spine-report ROI (io/vertebra_roi.h): scipy.ndimage.binary_erosion of the
// body by get_erosion_struct_elem's kernel, on the canonical (RAS) grid. Output voxel p is kept
// when body[p + d] holds for every kernel offset d; voxels outside the crop are outside the body
// (scipy's border_value 0 on the whole scan gives the same, since the crop holds the body).
Mask erode_totalsegmentator(const Mask& body, const Affine& affine, const std::array<double, 3>& spacing) {
  const AxisMap canon = canonical_axes(affine);  // canonical axis a reads our axis src[a]
  std::array<std::vector<double>, 3> grid;       // np.ogrid[-r:r+1] per canonical axis
  std::array<std::vector<int64_t>, 3> shift;     // our-axis offset of each grid entry
  std::array<double, 3> r{};
  for (size_t a = 0; a < 3; ++a) {
    const int b = canon.src[a];
    r[a] = kTotalSegmentatorErosionMm / spacing[size_t(b)];
    const auto n = int64_t(std::ceil((r[a] + 1) - (-r[a])));  // numpy's length of [-r, r + 1)
    for (int64_t t = 0; t < n; ++t) {
      grid[a].push_back(double(t) + (-r[a]));
      const int64_t d = t - n / 2;  // scipy centres the kernel at index n // 2
      shift[a].push_back(canon.flip[a] ? -d : d);
    }
  }
  std::vector<std::array<int64_t, 3>> offsets;  // in our axes i, j, k
  bool has_zero = false;
  for (size_t x = 0; x < grid[0].size(); ++x)
    for (size_t y = 0; y < grid[1].size(); ++y)
      for (size_t z = 0; z < grid[2].size(); ++z) {
        const double gx = grid[0][x], gy = grid[1][y], gz = grid[2][z];
        if (!(gx * gx / (r[0] * r[0]) + gy * gy / (r[1] * r[1]) + gz * gz / (r[2] * r[2]) <= 1)) continue;
        std::array<int64_t, 3> o{};
        o[size_t(canon.src[0])] = shift[0][x];
        o[size_t(canon.src[1])] = shift[1][y];
        o[size_t(canon.src[2])] = shift[2][z];
        has_zero = has_zero || (o[0] == 0 && o[1] == 0 && o[2] == 0);
        offsets.push_back(o);
      }
  Mask out(body.dims);
  if (offsets.empty()) return out;  // scipy erodes everything away with an empty kernel
  const auto& n = body.dims;
  for (int64_t k = 0; k < n[2]; ++k)
    for (int64_t j = 0; j < n[1]; ++j)
      for (int64_t i = 0; i < n[0]; ++i) {
        const int64_t at = body.index(i, j, k);
        if (has_zero && !body.v[size_t(at)]) continue;
        bool keep = true;
        for (const auto& o : offsets) {
          const int64_t x = i + o[0], y = j + o[1], z = k + o[2];
          if (x < 0 || y < 0 || z < 0 || x >= n[0] || y >= n[1] || z >= n[2] ||
              !body.v[size_t(body.index(x, y, z))]) {
            keep = false;
            break;
          }
        }
        out.v[size_t(at)] = keep ? 1 : 0;
      }
  return out;
}

}  // namespace

LabelScheme label_scheme(const std::string& name) {
  LabelScheme s;
  if (name == "totalseg_v2") {
    for (int i = 0; i < kSpineLen; ++i) s[kSpine[i]] = 50 - i;  // C1 50 ... T12 32 ... L5 27
  } else if (name == "totalseg_v1") {
    for (int i = 0; i < kSpineLen; ++i) s[kSpine[i]] = 41 - i;  // C1 41 ... T12 23 ... L5 18
  } else if (name == "verse" || name == "vertebrae_pp") {
    for (int i = 0; i < kSpineLen; ++i) s[kSpine[i]] = i + 1;   // C1 1 ... T12 19 ... L5 24
  } else {
    MC_FAIL("unknown vertebra label scheme '", name,
            "' (known: totalseg_v2, totalseg_v1, verse, vertebrae_pp)");
  }
  return s;
}

std::vector<std::string> parse_vertebrae(const std::string& spec) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= spec.size()) {
    size_t end = spec.find(',', at);
    if (end == std::string::npos) end = spec.size();
    const std::string part = trim(spec.substr(at, end - at));
    at = end + 1;
    if (part.empty()) MC_FAIL("vertebrae '", spec, "': empty entry (expected e.g. L1-L5 or T12,L1)");
    const size_t dash = part.find('-');
    const std::string a = trim(part.substr(0, dash));
    const std::string b = dash == std::string::npos ? a : trim(part.substr(dash + 1));
    const int ia = spine_index(a), ib = spine_index(b);
    if (ia < 0 || ib < 0)
      MC_FAIL("vertebrae '", spec, "': unknown vertebra '", ia < 0 ? a : b,
              "' (known: C1-C7, T1-T12, L1-L5)");
    if (ib < ia) MC_FAIL("vertebrae '", spec, "': range ", part, " runs upwards; write ", b, "-", a);
    for (int i = ia; i <= ib; ++i) out.push_back(kSpine[i]);
  }
  return out;
}

const char* body_source_name(BodySource s) {
  switch (s) {
    case BodySource::PerVertebra: return "body map";
    case BodySource::Bodies: return "body label";
    case BodySource::Estimate: return "estimate";
  }
  return "?";
}

const char* qct_category_name(QctCategory c) {
  switch (c) {
    case QctCategory::Normal: return "normal";
    case QctCategory::Osteopenia: return "osteopenia";
    case QctCategory::Osteoporosis: return "osteoporosis";
  }
  return "?";
}

QctCategory qct_category(double bmd) {
  MC_CHECK(std::isfinite(bmd), "BMD ", bmd, " mg/cm^3 is not a number");
  if (bmd > 120) return QctCategory::Normal;
  if (bmd >= 80) return QctCategory::Osteopenia;
  return QctCategory::Osteoporosis;
}

HUStats hu_stats(const Volume& ct, const std::vector<int64_t>& voxels) {
  HUStats s;
  s.voxels = int64_t(voxels.size());
  s.volume_ml = double(s.voxels) * ct.voxel_volume_mm3() / 1000.0;
  if (voxels.empty()) return s;
  std::vector<double> x;
  x.reserve(voxels.size());
  for (int64_t i : voxels) x.push_back(double(ct.ptr()[i]));
  double sum = 0;
  for (double v : x) sum += v;
  s.mean = sum / double(x.size());
  double ss = 0;
  for (double v : x) ss += (v - s.mean) * (v - s.mean);
  s.sd = x.size() > 1 ? std::sqrt(ss / double(x.size() - 1)) : std::nan("");
  const size_t half = x.size() / 2;
  std::nth_element(x.begin(), x.begin() + long(half), x.end());
  s.median = x[half];
  if (x.size() % 2 == 0)  // numpy: the mean of the two middle values
    s.median = 0.5 * (s.median + *std::max_element(x.begin(), x.begin() + long(half)));
  return s;
}

SpineHU measure_vertebrae(const Volume& ct, const Volume* vertebrae, const Volume* bodies,
                          const RoiOptions& o, RoiMasks* masks) {
  MC_CHECK(ct.dims.size() == 3, ct.name(), ": a 3-D CT is needed");
  const bool per_vertebra = bodies && o.body_map == BodyMap::PerVertebra;
  if (!vertebrae && !per_vertebra)
    MC_FAIL(ct.name(), ": the vertebral-body ROI needs the vertebrae segmentation (only a "
            "per-vertebra body map, e.g. TotalSegmentator's vertebrae_pp, can stand alone)");
  if (vertebrae) check_same_grid(ct, *vertebrae, o.grid_tol_mm);
  if (bodies) check_same_grid(ct, *bodies, o.grid_tol_mm);
  MC_CHECK(o.margin_mm >= 0 && std::isfinite(o.margin_mm), "ROI margin must be >= 0 mm, got ",
           o.margin_mm);
  MC_CHECK(o.estimate_radius_mm > 0 && std::isfinite(o.estimate_radius_mm),
           "body estimate radius must be > 0 mm, got ", o.estimate_radius_mm);
  if (o.calibration)
    MC_CHECK(std::isfinite(o.calibration->slope) && o.calibration->slope > 0 &&
                 std::isfinite(o.calibration->intercept),
             "BMD calibration slope must be > 0 and finite (mg/cm^3 per HU), got slope ",
             o.calibration->slope, ", intercept ", o.calibration->intercept);

  const BodySource source = !bodies ? BodySource::Estimate
                            : per_vertebra ? BodySource::PerVertebra : BodySource::Bodies;
  const LabelScheme& scheme = per_vertebra ? o.body_labels : o.vertebra_labels;
  const Volume& map = per_vertebra ? *bodies : *vertebrae;
  std::vector<int64_t> labels;
  for (const auto& name : o.vertebrae) {
    auto it = scheme.find(name);
    if (it == scheme.end())
      MC_FAIL("vertebra '", name, "' has no label in the ", per_vertebra ? "body" : "vertebra",
              " label scheme (it knows ", known_names(scheme), ")");
    labels.push_back(it->second);
  }
  const auto ranges = label_ranges(map, labels);
  const auto spacing = ct.spacing();
  if (masks) {
    for (Volume* v : {&masks->body, &masks->roi}) {
      *v = make_volume(ct.nx(), ct.ny(), ct.nz(), ct.affine);
      v->path = ct.path;
    }
  }

  SpineHU out;
  for (size_t n = 0; n < o.vertebrae.size(); ++n) {
    VertebraHU r;
    r.name = o.vertebrae[n];
    r.label = labels[n];
    r.source = source;
    const Range& range = ranges.at(r.label);
    if (range.empty()) {
      r.note = "label " + std::to_string(r.label) + " (" + r.name + ") is absent from " + map.name();
      out.vertebrae.push_back(r);
      continue;
    }
    r.found = true;
    const Crop c = crop_around(ct, range);
    const float want = float(r.label);
    const float* m = map.ptr();
    Mask body;
    if (source == BodySource::PerVertebra) {
      body = mask_in(ct, c, [&](int64_t g) { return m[g] == want; });
    } else if (source == BodySource::Bodies) {
      const float* b = bodies->ptr();
      const float bl = float(o.body_label);
      body = mask_in(ct, c, [&](int64_t g) { return m[g] == want && b[g] == bl; });
    } else {
      body = largest_component(
          open_ball(mask_in(ct, c, [&](int64_t g) { return m[g] == want; }), spacing,
                    o.estimate_radius_mm));
    }
    const Mask roi = erode_ball(body, spacing, o.margin_mm);
    const auto body_voxels = voxels_of(ct, c, body), roi_voxels = voxels_of(ct, c, roi);
    r.body = hu_stats(ct, body_voxels);
    r.roi = hu_stats(ct, roi_voxels);
    r.ts = hu_stats(ct, voxels_of(ct, c, erode_totalsegmentator(body, ct.affine, spacing)));
    if (masks) {
      for (int64_t g : body_voxels) masks->body.ptr()[g] = float(n + 1);
      for (int64_t g : roi_voxels) masks->roi.ptr()[g] = float(n + 1);
    }
    r.touches_edge = touches_edge(ct, c, body);
    if (r.body.voxels == 0) {
      r.note = source == BodySource::Bodies
                   ? "no voxel of body label " + std::to_string(o.body_label) + " in " +
                         bodies->name() + " lies inside it"
                   : "the body estimate is empty: the vertebra is nowhere thicker than " +
                         fmt(2 * o.estimate_radius_mm) + " mm";
    } else if (r.roi.voxels == 0) {
      r.note = "the ROI is empty: the body is nowhere thicker than " + fmt(2 * o.margin_mm) +
               " mm (margin " + fmt(o.margin_mm) + " mm)";
    } else if (r.touches_edge) {
      r.note = "the body reaches the edge of the scan: it may be cut off";
    }
    if (o.calibration && r.roi.voxels > 0) {
      r.bmd = o.calibration->slope * r.roi.mean + o.calibration->intercept;
      r.qct = qct_category(*r.bmd);
    }
    out.vertebrae.push_back(r);
  }
  const VertebraHU *l1 = nullptr, *l2 = nullptr;
  for (const auto& v : out.vertebrae) {
    if (v.name == "L1" && v.bmd) l1 = &v;
    if (v.name == "L2" && v.bmd) l2 = &v;
  }
  if (l1 && l2) {
    out.bmd_l1_l2 = 0.5 * (*l1->bmd + *l2->bmd);
    out.qct_l1_l2 = qct_category(*out.bmd_l1_l2);
  }
  return out;
}

}  // namespace mc::io
