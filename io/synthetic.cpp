#include "io/synthetic.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "engine/random.h"
#include "io/atomic_file.h"
#include "io/preprocess.h"
#include "io/progress.h"
#include "io/text.h"

namespace mc::io {
namespace {

using Vec3 = std::array<double, 3>;

Vec3 operator+(const Vec3& a, const Vec3& b) { return {a[0] + b[0], a[1] + b[1], a[2] + b[2]}; }
Vec3 operator-(const Vec3& a, const Vec3& b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }
Vec3 operator*(double s, const Vec3& a) { return {s * a[0], s * a[1], s * a[2]}; }
double dot(const Vec3& a, const Vec3& b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
double sq(double x) { return x * x; }
constexpr double kPi = 3.14159265358979323846;

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}
uint64_t subject_seed(uint64_t seed, int64_t index) {
  return splitmix(splitmix(seed) ^ uint64_t(index));
}
double uniform(Generator& g, double lo, double hi) { return lo + (hi - lo) * g.uniform(); }

// Position-hashed noise in about [-1.7, 1.7] with unit variance: bone texture that does not
// depend on evaluation order.
double texture(uint64_t seed, int64_t x, int64_t y, int64_t z) {
  uint64_t h = splitmix(seed ^ splitmix(uint64_t(x) * 73856093ull ^ uint64_t(y) * 19349663ull ^
                                        uint64_t(z) * 83492791ull));
  double s = 0;
  for (int i = 0; i < 4; ++i, h >>= 16) s += double(h & 0xffff) / 65535.0;
  return (s - 2.0) * std::sqrt(3.0);
}

double draw_tscore(Generator& g, const std::array<double, kNumClasses>& mix) {
  const double total = mix[0] + mix[1] + mix[2];
  const double r = g.uniform() * total;
  const int cls = r < mix[0] ? 0 : r < mix[0] + mix[1] ? 1 : 2;
  double t;
  if (cls == 0) t = -2.5 - std::abs(g.normal()) * 0.7;       // tail down to about -4.5
  else if (cls == 1) t = uniform(g, -2.5, -1.0);             // the whole osteopenia band
  else t = std::min(3.0, -1.0 + std::abs(g.normal()) * 1.0);  // mostly -1 .. +1
  t = std::round(t * 10) / 10;
  const double lo[3] = {-6.0, -2.4, -1.0}, hi[3] = {-2.5, -1.1, 3.0};  // stay in the class
  return std::clamp(t, lo[cls], hi[cls]);
}

// One vertebra in its local frame: u to the right, v anterior, w superior (mm).
struct Level {
  int label;
  Vec3 centre;
  double s;          // size scale
  double trab_hu;    // trabecular density of this level
};

struct Anatomy {
  Vec3 eu, ev, ew;   // spine frame
  Vec3 l1;           // L1 body centre
  std::vector<Level> levels;
  double a, b, h, pitch, shell, cort_hu, post_hu_frac;
  double aorta_hu, ivc_hu;
  std::vector<std::pair<Vec3, double>> fat;  // blobs: centre, radius
  uint64_t tex_seed;
};

struct Sample {
  double hu;
  int label;
  bool trabecular;
};

Sample evaluate(const Anatomy& an, const Vec3& p) {
  const Vec3 r1 = p - an.l1;
  const double u1 = dot(r1, an.eu), v1 = dot(r1, an.ev), w1 = dot(r1, an.ew);
  for (const Level& L : an.levels) {
    const Vec3 r = p - L.centre;
    const double w = dot(r, an.ew);
    if (std::abs(w) > 30 * L.s) continue;
    const double u = dot(r, an.eu), v = dot(r, an.ev);
    const double a = an.a * L.s, b = an.b * L.s, h = an.h * L.s, t = an.shell;
    const double post_hu = L.trab_hu + an.post_hu_frac * (an.cort_hu - L.trab_hu);
    if (sq(u / a) + sq(v / b) <= 1 && std::abs(w) <= h / 2) {  // body
      const bool inner = sq(u / (a - t)) + sq(v / (b - t)) <= 1 && std::abs(w) <= h / 2 - t;
      return {inner ? L.trab_hu : an.cort_hu, L.label, inner};
    }
    const double vc = -(b + 9 * L.s);  // canal centre
    const double cu = 10 * L.s, cv = 7.5 * L.s;
    const bool in_canal = sq(u / cu) + sq((v - vc) / cv) <= 1;
    bool bone = false;
    if (!in_canal && std::abs(w) <= 7 * L.s) {
      // pedicles: short bars from the body's back to the arch
      bone |= std::abs(std::abs(u) - 0.6 * a) <= 4 * L.s && v <= -0.6 * b && v >= vc;
      // arch around the canal (posterior half)
      bone |= v <= vc + 2 && sq(u / (cu + 5 * L.s)) + sq((v - vc) / (cv + 5 * L.s)) <= 1;
      // transverse processes
      bone |= std::abs(std::abs(u) - (a * 0.5 + 14 * L.s)) <= 14 * L.s &&
              std::abs(v - (vc + 2 * L.s)) <= 4 * L.s && std::abs(w) <= 5 * L.s;
    }
    // spinous process, sloping down as it goes back
    const double sv = vc - cv - 4 * L.s;
    if (v <= sv && v >= sv - 26 * L.s && std::abs(u) <= 3 * L.s &&
        std::abs(w - 0.35 * (v - sv)) <= 6 * L.s)
      bone = true;
    if (bone) return {post_hu, L.label, false};
  }
  // discs between neighbouring bodies
  for (size_t i = 0; i + 1 < an.levels.size(); ++i) {
    const Vec3 mid = 0.5 * (an.levels[i].centre + an.levels[i + 1].centre);
    const Vec3 r = p - mid;
    const double s = 0.5 * (an.levels[i].s + an.levels[i + 1].s);
    if (std::abs(dot(r, an.ew)) <= 0.5 * (an.pitch - an.h * s) + 0.5 &&
        sq(dot(r, an.eu) / (an.a * s)) + sq(dot(r, an.ev) / (an.b * s)) <= 1)
      return {90, 0, false};
  }
  const double b = an.b;
  if (sq(u1 / 10.0) + sq((v1 + b + 9) / 7.5) <= 1) return {15, 0, false};             // canal
  if (sq(u1 + 14) + sq(v1 - (b + 14)) <= sq(11)) return {an.aorta_hu, 0, false};       // aorta
  if (sq(u1 - 22) + sq(v1 - (b + 10)) <= sq(10)) return {an.ivc_hu, 0, false};         // IVC
  const double psoas_r = 10 + 0.12 * std::max(0.0, -w1);  // thickens going down
  if (sq(std::abs(u1) - (an.a + 15)) + sq(v1 + 2) <= sq(psoas_r)) return {52, 0, false};
  double fat = 0;
  for (const auto& [c, rad] : an.fat) fat += std::exp(-dot(p - c, p - c) / (2 * rad * rad));
  return {40 - 130 * std::min(1.0, fat), 0, false};
}

Anatomy make_anatomy(Generator& g, double tscore, const Vec3& field_centre) {
  Anatomy an;
  // spine frame: small axial rotation, then tilts about x and y
  const double rot = g.normal() * 6 * kPi / 180, tx = g.normal() * 5 * kPi / 180,
               ty = g.normal() * 5 * kPi / 180;
  auto frame = [&](Vec3 e) {
    e = {std::cos(rot) * e[0] - std::sin(rot) * e[1], std::sin(rot) * e[0] + std::cos(rot) * e[1], e[2]};
    e = {e[0], std::cos(tx) * e[1] - std::sin(tx) * e[2], std::sin(tx) * e[1] + std::cos(tx) * e[2]};
    return Vec3{std::cos(ty) * e[0] + std::sin(ty) * e[2], e[1], -std::sin(ty) * e[0] + std::cos(ty) * e[2]};
  };
  an.eu = frame({1, 0, 0}), an.ev = frame({0, 1, 0}), an.ew = frame({0, 0, 1});
  const double s = uniform(g, 0.85, 1.15);
  an.a = 21 * s, an.b = 16 * s, an.h = 25 * s;
  an.pitch = an.h + uniform(g, 7, 10);
  an.shell = uniform(g, 0.8, 1.3) + 0.1 * std::clamp(tscore, -3.0, 1.0);  // thinner when porotic
  an.cort_hu = 1000 + 40 * tscore + g.normal() * 60;
  an.post_hu_frac = uniform(g, 0.25, 0.4);  // posterior elements: small, mixed bone
  an.l1 = field_centre + Vec3{uniform(g, -6, 6), uniform(g, -6, 6), uniform(g, -6, 6)};
  const double l1_trab = 150 + 45 * tscore + g.normal() * 12;
  const double level_scale[5] = {1.08, 1.04, 1.0, 0.95, 0.9};  // L3, L2, L1, T12, T11
  const double level_hu[5] = {10, 5, 0, -4, -8};
  for (int n = -2; n <= 2; ++n) {
    Level L;
    L.label = 31 + n;  // 29 L3, 30 L2, 31 L1, 32 T12, 33 T11
    L.s = s * level_scale[n + 2];
    L.centre = an.l1 + (double(n) * an.pitch) * an.ew + Vec3{g.normal(), g.normal(), 0};
    L.trab_hu = n == 0 ? l1_trab : l1_trab + level_hu[n + 2] + g.normal() * 4;
    an.levels.push_back(L);
  }
  an.levels[2].centre = an.l1;
  an.aorta_hu = g.uniform() < 0.4 ? uniform(g, 150, 300) : uniform(g, 30, 50);  // contrast or not
  an.ivc_hu = an.aorta_hu > 100 ? uniform(g, 90, 160) : uniform(g, 30, 50);
  const int blobs = int(g.randint(3, 7));
  for (int i = 0; i < blobs; ++i)
    an.fat.push_back({an.l1 + Vec3{uniform(g, -60, 60), uniform(g, -50, 60), uniform(g, -60, 60)},
                      uniform(g, 10, 25)});
  an.tex_seed = g.next_u64();
  return an;
}

}  // namespace

std::string synthetic_id(int64_t index) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "syn%05lld", static_cast<long long>(index));
  return buf;
}

double synthetic_tscore(uint64_t seed, int64_t index, const SyntheticOptions& opts) {
  Generator g(subject_seed(seed, index));
  return draw_tscore(g, opts.class_mix);
}

SyntheticSubject make_synthetic_subject(uint64_t seed, int64_t index, const SyntheticOptions& o) {
  MC_CHECK(o.size >= 16, "synthetic: size must be at least 16 voxels, got ", o.size);
  Generator g(subject_seed(seed, index));
  SyntheticSubject s;
  s.id = synthetic_id(index);
  s.tscore = draw_tscore(g, o.class_mix);
  s.label = classify_tscore(s.tscore);

  const double sxy = uniform(g, 1.1, 1.6), sz = uniform(g, 1.5, 2.5);
  const bool lps = g.uniform() < 0.5;
  const Vec3 centre{uniform(g, -40, 40), uniform(g, -40, 40), uniform(g, -300, 100)};
  const int64_t n = o.size;
  Affine a = identity_affine();
  a[0][0] = lps ? -sxy : sxy, a[1][1] = lps ? -sxy : sxy, a[2][2] = sz;
  for (int r = 0; r < 3; ++r) a[size_t(r)][3] = centre[size_t(r)] - a[size_t(r)][size_t(r)] * double(n - 1) / 2;
  const Anatomy an = make_anatomy(g, s.tscore, centre);
  s.l1_trabecular_hu = an.levels[2].trab_hu;

  s.ct = make_volume(n, n, n, a);
  s.seg = make_volume(n, n, n, a);
  float* hu = s.ct.ptr();
  float* lab = s.seg.ptr();
  for (int64_t k = 0; k < n; ++k)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < n; ++i) {
        const int64_t at = (k * n + j) * n + i;
        lab[at] = float(evaluate(an, apply_affine(a, double(i), double(j), double(k))).label);
        double sum = 0, tex = 0;
        for (int d = 0; d < 8; ++d) {  // partial volume: average of 2x2x2 subsamples
          const double di = (d & 1) ? 0.25 : -0.25, dj = (d & 2) ? 0.25 : -0.25, dk = (d & 4) ? 0.25 : -0.25;
          const Sample sm = evaluate(an, apply_affine(a, double(i) + di, double(j) + dj, double(k) + dk));
          sum += sm.hu;
          if (sm.trabecular) tex += 25 * texture(an.tex_seed, 2 * i + (d & 1), 2 * j + (d >> 1 & 1), 2 * k + (d >> 2 & 1));
        }
        hu[at] = float((sum + tex) / 8);
      }
  gaussian_blur(s.ct, {0.5, 0.5, 0.5});  // the scanner's point spread
  const double noise = uniform(g, 20, 40);
  for (int64_t i = 0; i < s.ct.numel(); ++i) hu[i] = float(std::round(hu[i] + noise * g.normal()));
  s.ct.path = s.id + " (synthetic CT)";
  s.seg.path = s.id + " (synthetic segmentation)";
  return s;
}

std::vector<SyntheticSubject> write_synthetic_dataset(const std::string& dir,
                                                      const SyntheticOptions& o,
                                                      Progress* progress) {
  MC_CHECK(o.count >= 1, "synthetic: count must be at least 1, got ", o.count);
  namespace fs = std::filesystem;
  fs::create_directories(fs::path(dir) / "ct");
  fs::create_directories(fs::path(dir) / "seg");
  std::vector<SyntheticSubject> subjects(size_t(o.count));
  parallel_for(o.count, o.workers, [&](int64_t i) {
    SyntheticSubject s = make_synthetic_subject(o.seed, i, o);
    write_nifti((fs::path(dir) / "ct" / (s.id + ".nii.gz")).string(), s.ct, NiftiType::I16);
    write_nifti((fs::path(dir) / "seg" / (s.id + ".nii.gz")).string(), s.seg, NiftiType::U8);
    s.ct = Volume{}, s.seg = Volume{};
    subjects[size_t(i)] = std::move(s);
  }, progress);
  const bool binary = !o.binary_classes.empty();
  MC_CHECK(!binary || o.binary_classes.size() == 2, "synthetic: a binary task needs 2 class names, got ",
           o.binary_classes.size());
  std::string csv = binary ? "id,tscore,class\n" : "id,tscore\n";
  for (const auto& s : subjects) {
    csv += s.id + "," + fixed(s.tscore, 1);
    if (binary) csv += "," + o.binary_classes[std::round(s.tscore * 10) / 10 <= o.binary_threshold ? 0 : 1];
    csv += "\n";
  }
  write_atomic((fs::path(dir) / "labels.csv").string(), csv);
  return subjects;
}

std::string synthetic_summary(const std::vector<SyntheticSubject>& subjects, const std::string& dir) {
  std::array<int64_t, kNumClasses> per{};
  for (const auto& s : subjects)
    if (s.label >= 0) ++per[size_t(s.label)];
  std::string out = "synthetic: " + std::to_string(subjects.size()) + " subjects in " + dir + ":";
  for (int c = 0; c < kNumClasses; ++c)
    out += " " + std::string(kClassNames[size_t(c)]) + " " + std::to_string(per[size_t(c)]);
  out += "\nprepare them with: mc_prep --ct-dir " + dir + "/ct --seg-dir " + dir + "/seg --labels " +
         dir + "/labels.csv --out " + dir + "/prepared\n";
  return out;
}

}  // namespace mc::io
