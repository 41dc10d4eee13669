#include "io/prep_hu.h"

#include <cmath>

#include "io/text.h"

namespace mc::io {
namespace {

std::string num(double x, int digits) { return std::isfinite(x) ? fixed(x, digits) : ""; }

const char* const kStats[] = {"voxels", "ml", "mean_hu", "median_hu"};

}  // namespace

RoiOptions roi_options(const HuOptions& h, int64_t l1_label) {
  RoiOptions o;
  try {
    o.vertebrae = parse_vertebrae(h.vertebrae);
  } catch (const Error& e) {
    MC_FAIL("data.hu.vertebrae: ", e.what());
  }
  if (l1_label < 0) {
    // A one-structure mask is L1 alone.
    o.vertebrae = {"L1"};
    o.vertebra_labels = {{"L1", 1}};
  } else {
    std::string scheme = h.labels;
    if (scheme == "auto") {
      scheme = l1_label == 31 ? "totalseg_v2" : l1_label == 22 ? "totalseg_v1" : l1_label == 20 ? "verse" : "";
      MC_CHECK(!scheme.empty(), "data.hu.labels: auto cannot tell the vertebra label scheme from the L1 label ",
               l1_label, " (31 totalseg_v2, 22 totalseg_v1, 20 verse): set data.hu.labels");
    }
    try {
      o.vertebra_labels = label_scheme(scheme);
    } catch (const Error& e) {
      MC_FAIL("data.hu.labels: ", e.what());
    }
  }
  o.body_map = h.body_map;
  o.body_label = h.body_label;
  MC_CHECK(h.margin_mm >= 0 && std::isfinite(h.margin_mm), "data.hu.margin_mm must be >= 0, got ", h.margin_mm);
  o.margin_mm = h.margin_mm;
  MC_CHECK(h.estimate_radius_mm > 0, "data.hu.estimate_radius_mm must be > 0, got ", h.estimate_radius_mm);
  o.estimate_radius_mm = h.estimate_radius_mm;
  MC_CHECK(h.calibration.empty() || h.calibration.size() == 2,
           "data.hu.calibration: expected [] or [slope, intercept] (mg/cm^3 = slope * HU + intercept), got ",
           h.calibration.size(), " numbers");
  if (!h.calibration.empty()) {
    MC_CHECK(h.calibration[0] > 0, "data.hu.calibration: the slope must be > 0, got ", h.calibration[0]);
    o.calibration = BmdCalibration{h.calibration[0], h.calibration[1]};
  }
  return o;
}

std::string body_seg_path(const HuOptions& h, const std::string& id) {
  std::string p = h.body_seg;
  for (size_t at; (at = p.find("{id}")) != std::string::npos;) p.replace(at, 4, id);
  return p;
}

std::vector<std::string> hu_columns(const RoiOptions& o) {
  std::vector<std::string> c;
  for (const auto& v : o.vertebrae) {
    c.push_back(v + "_body_source");
    for (const char* s : kStats) c.push_back(v + "_body_" + s);
    for (const char* s : kStats) c.push_back(v + "_roi_" + s);
    c.push_back(v + "_roi_sd_hu");
    for (const char* s : kStats) c.push_back(v + "_ts_" + s);
    if (o.calibration) c.push_back(v + "_bmd"), c.push_back(v + "_qct");
  }
  c.push_back("roi_margin_mm");
  if (o.calibration) c.push_back("bmd_l1_l2"), c.push_back("qct_l1_l2");
  c.push_back("hu_note");
  return c;
}

std::vector<std::string> hu_cells(const std::optional<SpineHU>& hu, const RoiOptions& o,
                                  const std::string& note) {
  std::vector<std::string> c;
  auto stats = [&](const HUStats& s, bool any) {
    c.push_back(any ? std::to_string(s.voxels) : "");
    c.push_back(any ? num(s.volume_ml, 3) : "");
    c.push_back(any && s.voxels ? num(s.mean, 2) : "");
    c.push_back(any && s.voxels ? num(s.median, 2) : "");
  };
  for (size_t n = 0; n < o.vertebrae.size(); ++n) {
    // By name: a subject measured with fewer vertebrae (a one-structure mask) fills its own.
    const VertebraHU* v = nullptr;
    if (hu)
      for (const auto& x : hu->vertebrae)
        if (x.name == o.vertebrae[n]) v = &x;
    const bool found = v && v->found;
    c.push_back(found ? body_source_name(v->source) : "");
    stats(found ? v->body : HUStats{}, found);
    stats(found ? v->roi : HUStats{}, found);
    c.push_back(found && v->roi.voxels > 1 ? num(v->roi.sd, 2) : "");
    stats(found ? v->ts : HUStats{}, found);
    if (o.calibration) {
      c.push_back(found && v->bmd ? num(*v->bmd, 2) : "");
      c.push_back(found && v->qct ? qct_category_name(*v->qct) : "");
    }
  }
  c.push_back(hu ? num(o.margin_mm, 2) : "");
  if (o.calibration) {
    c.push_back(hu && hu->bmd_l1_l2 ? num(*hu->bmd_l1_l2, 2) : "");
    c.push_back(hu && hu->qct_l1_l2 ? qct_category_name(*hu->qct_l1_l2) : "");
  }
  std::string all = note;
  if (hu)
    for (const auto& v : hu->vertebrae)
      if (!v.note.empty()) all += (all.empty() ? "" : "; ") + v.name + ": " + v.note;
  c.push_back(all);
  return c;
}

}  // namespace mc::io
