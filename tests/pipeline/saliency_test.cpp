// mc_predict --saliency: the cube-to-scan resampling follows world coordinates exactly, the map
// NIfTI has the scan's dims and affine (read back here and with nibabel in
// tests/fixtures/check_saliency_nifti.py), the PNG is a valid image of three slices, and the
// command line's rules.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "io/checkpoint.h"
#include "io/nifti.h"
#include "io/synthetic.h"
#include "pipeline/model.h"
#include "pipeline/prep_config.h"
#include "pipeline/saliency.h"
#include "test_util.h"

namespace mc::pipeline {
namespace {
namespace fs = std::filesystem;

// Trilinear interpolation reproduces a linear function exactly: a cube holding f(world) gives
// f(world of the scan voxel) wherever the scan voxel falls inside the cube.
TEST(Saliency, MapToGridFollowsWorldCoordinates) {
  io::Affine ref_aff = io::identity_affine();  // LPS-like: i runs right -> left, j anterior -> posterior
  ref_aff[0] = {-2, 0, 0, 40};
  ref_aff[1] = {0, -1.5, 0, 30};
  ref_aff[2] = {0, 0, 3, -10};
  const io::Volume ref = io::make_volume(24, 30, 12, ref_aff);
  io::Affine cube_aff = io::identity_affine();  // RAS cube of 8^3 voxels of 2.5 mm
  cube_aff[0] = {2.5, 0, 0, -5};
  cube_aff[1] = {0, 2.5, 0, -8};
  cube_aff[2] = {0, 0, 2.5, 0};
  const int64_t V = 8;
  auto f = [](const std::array<double, 3>& w) { return 0.5 + 0.01 * w[0] - 0.02 * w[1] + 0.015 * w[2]; };
  Tensor cube = Tensor::zeros({V, V, V});
  float* c = cube.data<float>();
  for (int64_t d = 0; d < V; ++d)
    for (int64_t h = 0; h < V; ++h)
      for (int64_t w = 0; w < V; ++w) c[(d * V + h) * V + w] = float(f(io::apply_affine(cube_aff, double(w), double(h), double(d))));
  const io::Volume out = map_to_grid(cube, cube_aff, ref);
  ASSERT_EQ(out.dims, ref.dims);
  EXPECT_EQ(out.affine, ref.affine);
  const io::Affine to_cube = io::matmul(invert_affine(cube_aff), ref_aff);
  int64_t inside = 0;
  for (int64_t k = 0; k < ref.nz(); ++k)
    for (int64_t j = 0; j < ref.ny(); ++j)
      for (int64_t i = 0; i < ref.nx(); ++i) {
        const auto u = io::apply_affine(to_cube, double(i), double(j), double(k));
        const bool in = u[0] >= 0 && u[1] >= 0 && u[2] >= 0 && u[0] <= V - 1 && u[1] <= V - 1 && u[2] <= V - 1;
        const bool out_far = u[0] < -0.5 || u[1] < -0.5 || u[2] < -0.5 || u[0] > V - 0.5 || u[1] > V - 0.5 || u[2] > V - 0.5;
        if (in) {
          ++inside;
          EXPECT_NEAR(out.at(i, j, k), f(io::apply_affine(ref_aff, double(i), double(j), double(k))), 1e-5) << i << "," << j << "," << k;
        } else if (out_far) {
          EXPECT_EQ(out.at(i, j, k), 0.0f);
        }
      }
  EXPECT_GT(inside, 50);
  // invert_affine is an inverse
  const io::Affine id = io::matmul(invert_affine(ref_aff), ref_aff);
  for (int r = 0; r < 4; ++r)
    for (int q = 0; q < 4; ++q) EXPECT_NEAR(id[size_t(r)][size_t(q)], r == q ? 1.0 : 0.0, 1e-12);
}

std::string read_file(const std::string& p) {
  std::stringstream s;
  s << std::ifstream(p, std::ios::binary).rdbuf();
  return s.str();
}

uint32_t be32(const std::string& s, size_t at) {
  return uint32_t(uint8_t(s[at])) << 24 | uint32_t(uint8_t(s[at + 1])) << 16 | uint32_t(uint8_t(s[at + 2])) << 8 |
         uint32_t(uint8_t(s[at + 3]));
}

TEST(Saliency, PngIsAValidImage) {
  io::RgbImage img(5, 3, 0);
  img.at(4, 2)[0] = 200;
  const std::string b = io::png_bytes(img);
  ASSERT_EQ(b.substr(0, 8), std::string("\x89PNG\r\n\x1a\n"));
  EXPECT_EQ(b.substr(12, 4), "IHDR");
  EXPECT_EQ(be32(b, 16), 5u);
  EXPECT_EQ(be32(b, 20), 3u);
  // IDAT inflates to 3 rows of (filter byte + 15 bytes), the last pixel's red = 200; CRCs match.
  const size_t idat = b.find("IDAT");
  ASSERT_NE(idat, std::string::npos);
  const uint32_t len = be32(b, idat - 4);
  std::string raw(3 * 16, '\0');
  uLongf rl = uLongf(raw.size());
  ASSERT_EQ(uncompress(reinterpret_cast<Bytef*>(raw.data()), &rl, reinterpret_cast<const Bytef*>(b.data() + idat + 4), len), Z_OK);
  EXPECT_EQ(rl, 48u);
  EXPECT_EQ(uint8_t(raw[2 * 16 + 1 + 12]), 200);
  EXPECT_EQ(be32(b, idat + 4 + len), uint32_t(crc32(0, reinterpret_cast<const Bytef*>(b.data() + idat), len + 4)));
  EXPECT_EQ(b.substr(b.size() - 8, 4), "IEND");
}

// A resnet10 for 64^3 cubes (a 2^3 layer4 grid), untrained; its state carries the config.
struct SalRun {
  std::string checkpoint, config;
  Config cfg;
};
SalRun make_run(const std::string& dir) {
  SalRun r;
  r.cfg = parse_config("data:\n  cache_dir: " + dir + "/cache\n  volume: 64\n  spacing_mm: 1.5\n"
                       "model:\n  name: resnet10\ntrain:\n  device: cpu\n  seed: 5\n",
                       "saliency_test.yaml", {});
  r.config = dir + "/run.yaml";
  std::ofstream(r.config) << to_yaml(r.cfg);
  io::TrainingState st;
  st.optimizer = "adamw";
  st.config_yaml = to_yaml(r.cfg);
  r.checkpoint = io::save_checkpoint(dir + "/run", "best", build_model(r.cfg)->state_dict(), st);
  return r;
}

TEST(Saliency, NiftiIsOnTheScansGridAndReadsBackWithNibabel) {
  const std::string dir = test::temp_dir() + "/saliency";
  fs::create_directories(dir);
  io::SyntheticOptions so;
  so.size = 48;
  // One subject stored LPS, so the map's grid is not the cube's RAS order.
  io::SyntheticSubject subj;
  for (int64_t i = 0; i < 8; ++i) {
    subj = io::make_synthetic_subject(17, i, so);
    if (io::axcodes(subj.ct.affine) != "RAS") break;
  }
  ASSERT_NE(io::axcodes(subj.ct.affine), "RAS");
  const std::string ct = dir + "/ct.nii.gz", seg = dir + "/seg.nii.gz", out = dir + "/map.nii.gz";
  io::write_nifti(ct, subj.ct, io::NiftiType::I16);
  io::write_nifti(seg, subj.seg, io::NiftiType::U8);
  const SalRun r = make_run(dir);
  LoadedModel m = load_model(r.cfg, r.checkpoint);
  const io::PreprocessOptions opts = preprocess_options_from_config(r.cfg);
  const Saliency s = write_saliency(m, {"subj", ct, seg}, opts, 0, out, saliency_png_path(out));
  EXPECT_EQ(s.cam.cls, 0);
  EXPECT_EQ(s.cam.map.shape(), (Shape{2, 2, 2}));
  EXPECT_EQ(s.png, dir + "/map.png");
  ASSERT_TRUE(fs::is_regular_file(s.png));
  const std::string png = read_file(s.png);
  EXPECT_EQ(be32(png, 16), uint32_t(3 * 64 * 4 + 8));  // three 64^3 slices at 4 px per voxel, 4 px gaps
  EXPECT_EQ(be32(png, 20), uint32_t(2 * 64 * 4 + 4));  // CT alone above, with the map below

  const io::Volume back = io::read_volume(out);
  const io::Volume scan = io::read_volume(ct);
  ASSERT_EQ(back.dims, scan.dims);
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b) EXPECT_NEAR(back.affine[size_t(a)][size_t(b)], scan.affine[size_t(a)][size_t(b)], 1e-4);
  // The scan map's maximum (1) lies where the cube map is at its maximum, in world coordinates
  // (a 2^3 map upsampled has a plateau at its peak, so compare values, not positions).
  const io::Preprocessed p = preprocess_input({"subj", ct, seg}, opts);
  int64_t best = 0;
  const float* v = back.ptr();
  for (int64_t i = 0; i < back.numel(); ++i)
    if (v[i] > v[best]) best = i;
  EXPECT_NEAR(v[best], 1.0, 0.02);
  const int64_t bi = best % back.nx(), bj = (best / back.nx()) % back.ny(), bk = best / (back.nx() * back.ny());
  const auto best_world = io::apply_affine(back.affine, double(bi), double(bj), double(bk));
  const auto u = io::apply_affine(invert_affine(p.cube_affine), best_world[0], best_world[1], best_world[2]);
  const int64_t V = s.cube_map.size(0);
  auto idx = [&](double x) { return std::clamp<int64_t>(std::llround(x), 0, V - 1); };
  EXPECT_GT(s.cube_map.data<float>()[(idx(u[2]) * V + idx(u[1])) * V + idx(u[0])], 0.95f);

  // nibabel, an independent reader: same shape and affine as the CT, the same world point.
  const std::string py = "/usr/bin/python3", script = std::string(MC_SOURCE_DIR) + "/tests/fixtures/check_saliency_nifti.py";
  if (!fs::exists(py)) GTEST_SKIP() << "no /usr/bin/python3 for the nibabel check";
  const int rc = std::system((py + " " + script + " " + ct + " " + out + " " + dir + "/nib.json > " + dir + "/nib.log 2>&1").c_str());
  const int code = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  if (code == 3) GTEST_SKIP() << "nibabel not installed: " << read_file(dir + "/nib.log");
  ASSERT_EQ(code, 0) << read_file(dir + "/nib.log");
  const auto j = nlohmann::json::parse(read_file(dir + "/nib.json"));
  EXPECT_TRUE(j["problems"].empty()) << j.dump();
  const auto ijk = j["argmax_ijk"].get<std::vector<int64_t>>();
  EXPECT_EQ(ijk, (std::vector<int64_t>{bi, bj, bk}));
  const auto w = j["argmax_world"].get<std::vector<double>>();
  for (int a = 0; a < 3; ++a) EXPECT_NEAR(w[size_t(a)], best_world[size_t(a)], 1e-3);
}

TEST(Saliency, CommandLineRules) {
  test::expect_error([] { parse_predict_command({"--checkpoint", "w.safetensors", "--ct-dir", "d", "--saliency", "m.nii.gz"}); },
                     {"--saliency", "one scan"});
  test::expect_error([] { parse_predict_command({"--checkpoint", "w.safetensors", "--crop", "c.nii.gz", "--saliency", "m.png"}); },
                     {"--saliency", ".nii.gz"});
  test::expect_error([] { parse_predict_command({"--checkpoint", "w.safetensors", "--crop", "c.nii.gz", "--saliency-class", "1"}); },
                     {"--saliency-class goes with --saliency"});
  const PredictCommand c = parse_predict_command({"--checkpoint", "w.safetensors", "--crop", "c.nii.gz", "--saliency",
                                                  "m.nii.gz", "--saliency-class", "normal", "--temperature", "1.5"});
  EXPECT_EQ(c.saliency, "m.nii.gz");
  EXPECT_EQ(c.saliency_class, "normal");
  EXPECT_EQ(c.temperature, 1.5);
  EXPECT_EQ(saliency_png_path("a/b.nii.gz"), "a/b.png");
  EXPECT_EQ(saliency_png_path("a/b.nii"), "a/b.png");
}

}  // namespace
}  // namespace mc::pipeline
