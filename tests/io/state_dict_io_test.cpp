// load_state_dict (strict / non-strict, prefixes, dtype conversion) and 2D -> 3D inflation.
#include "io/state_dict_io.h"

#include <gtest/gtest.h>

#include <string>

#include "io/safetensors.h"
#include "test_util.h"

namespace mc::io {
namespace {

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

Tensor get(const StateDict& sd, const std::string& name) {
  for (const auto& [k, t] : sd)
    if (k == name) return t;
  ADD_FAILURE() << "no " << name;
  return {};
}

// A model's state dict: zero-filled tensors that the test keeps handles to.
StateDict model() {
  return {{"conv1.weight", Tensor::zeros({2, 1, 3, 3, 3})},
          {"bn1.weight", Tensor::zeros({2})},
          {"bn1.num_batches_tracked", Tensor::zeros({}, DType::I64)},
          {"fc.weight", Tensor::zeros({3, 2})}};
}

TEST(StateDictIO, StrictFailureListsEverythingAndCopiesNothing) {
  StateDict dst = model();
  StateDict src = {{"conv1.weight", test::randn({2, 1, 3, 3, 3}, 1)},
                   {"bn1.num_batches_tracked", Tensor::from<int64_t>({5}, {})},
                   {"fc.weight", test::randn({1000, 2}, 2)},  // another head: mismatch
                   {"extra.bias", test::randn({4}, 3)}};
  try {
    load_state_dict(dst, src);
    FAIL() << "strict load with problems did not throw";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_TRUE(has(m, "Missing key(s) in state_dict (1): \"bn1.weight\"")) << m;
    EXPECT_TRUE(has(m, "Unexpected key(s) in state_dict (1): \"extra.bias\"")) << m;
    EXPECT_TRUE(has(m, "fc.weight: expected [3, 2] f32, got [1000, 2] f32")) << m;
    EXPECT_TRUE(has(m, "nothing was copied")) << m;
  }
  // Validation came first: not even the tensors that matched were touched.
  for (const auto& [name, t] : dst)
    for (double v : t.to_vector<double>()) ASSERT_EQ(v, 0.0) << name;
}

TEST(StateDictIO, StrictLoadConvertsFloatingAndIntegerDtypes) {
  StateDict dst = model();
  const Tensor w = test::randn({2, 1, 3, 3, 3}, 4);
  StateDict src = {{"conv1.weight", w.to(DType::F16)},
                   {"bn1.weight", Tensor::from<double>({0.25, -1.5}, {2})},
                   {"bn1.num_batches_tracked", Tensor::from<int32_t>({7}, {})},
                   {"fc.weight", test::randn({3, 2}, 5).to(DType::BF16)}};
  const LoadReport r = load_state_dict(dst, src);
  EXPECT_TRUE(r.ok()) << r.summary();
  EXPECT_EQ(r.loaded.size(), 4u);
  const Tensor conv = get(dst, "conv1.weight");
  EXPECT_EQ(conv.dtype(), DType::F32);
  EXPECT_TRUE(test::all_close(conv, w.to(DType::F16).to(DType::F32), 0, 0));
  EXPECT_TRUE(test::all_close(conv, w, 1e-3, 1e-3));
  EXPECT_EQ(get(dst, "bn1.weight").to_vector<float>(), (std::vector<float>{0.25f, -1.5f}));
  EXPECT_EQ(get(dst, "bn1.num_batches_tracked").dtype(), DType::I64);
  EXPECT_EQ(get(dst, "bn1.num_batches_tracked").item(), 7.0);
  EXPECT_TRUE(test::all_close(get(dst, "fc.weight"), get(src, "fc.weight").to(DType::F32), 0, 0));
}

TEST(StateDictIO, NonStrictLoadsWhatMatches) {
  StateDict dst = model();
  StateDict src = {{"conv1.weight", test::randn({2, 1, 3, 3, 3}, 6)},
                   {"fc.weight", test::randn({1000, 2}, 7)},
                   {"bn1.weight", Tensor::from<int64_t>({1, 2}, {2})},  // integer into float: no
                   {"layer9.x", test::randn({1}, 8)}};
  const LoadReport r = load_state_dict(dst, src, {.strict = false});
  EXPECT_EQ(r.loaded, (std::vector<std::string>{"conv1.weight"}));
  EXPECT_TRUE(r.missing.empty()) << r.summary();  // bn1.weight is a mismatch, not missing
  EXPECT_EQ(r.unexpected, (std::vector<std::string>{"layer9.x"}));
  EXPECT_EQ(r.mismatched, (std::vector<std::string>{"bn1.weight: expected [2] f32, got [2] i64",
                                                    "fc.weight: expected [3, 2] f32, got [1000, 2] f32"}));
  EXPECT_EQ(r.kept, (std::vector<std::string>{"bn1.num_batches_tracked"}));
  EXPECT_TRUE(test::all_close(get(dst, "conv1.weight"), get(src, "conv1.weight"), 0, 0));
  EXPECT_EQ(get(dst, "fc.weight").to_vector<float>(), std::vector<float>(6, 0.f));
  EXPECT_TRUE(has(r.summary(), "loaded 1 tensor(s)")) << r.summary();
}

TEST(StateDictIO, ModulePrefixIsStripped) {
  StateDict dst = {{"conv1.weight", Tensor::zeros({2})}, {"bn1.bias", Tensor::zeros({1})}};
  StateDict src = {{"module.conv1.weight", Tensor::from<float>({1, 2}, {2})},
                   {"module.bn1.bias", Tensor::from<float>({3}, {1})}};
  EXPECT_TRUE(load_state_dict(dst, src).ok());
  EXPECT_EQ(get(dst, "conv1.weight").to_vector<float>(), (std::vector<float>{1, 2}));

  const LoadReport off = load_state_dict(dst, src, {.strict = false, .strip_module_prefix = false});
  EXPECT_EQ(off.unexpected, (std::vector<std::string>{"module.conv1.weight", "module.bn1.bias"}));
  EXPECT_EQ(off.missing, (std::vector<std::string>{"conv1.weight", "bn1.bias"}));

  // A model whose own keys start with "module." keeps the source keys as they are.
  StateDict wrapped = {{"module.conv1.weight", Tensor::zeros({2})}, {"module.bn1.bias", Tensor::zeros({1})}};
  EXPECT_TRUE(load_state_dict(wrapped, src).ok());
  EXPECT_EQ(get(wrapped, "module.bn1.bias").item(), 3.0);

  // "module.a" and "a" together are ambiguous once stripped.
  StateDict both = {{"module.bn1.bias", Tensor::from<float>({3}, {1})}, {"bn1.bias", Tensor::from<float>({4}, {1})}};
  EXPECT_THROW(load_state_dict(dst, both, {.strict = false}), Error);
}

TEST(StateDictIO, MissingNumBatchesTrackedIsToleratedOnlyWhenAllowed) {
  StateDict dst = {{"bn1.weight", Tensor::zeros({1})}, {"bn1.num_batches_tracked", Tensor::full({}, 9, DType::I64)}};
  StateDict src = {{"bn1.weight", Tensor::from<float>({2}, {1})}};
  const LoadReport r = load_state_dict(dst, src);
  EXPECT_TRUE(r.ok());
  EXPECT_EQ(r.kept, (std::vector<std::string>{"bn1.num_batches_tracked"}));
  EXPECT_EQ(get(dst, "bn1.num_batches_tracked").item(), 9.0);
  EXPECT_THROW(load_state_dict(dst, src, {.allow_missing_num_batches_tracked = false}), Error);
}

TEST(StateDictIO, LoadsFromSafetensorsFile) {
  const std::string path = test::temp_dir() + "/ckpt.safetensors";
  const Tensor w = test::randn({2, 1, 3, 3, 3}, 9);
  save_safetensors(path, {{"module.conv1.weight", w.to(DType::BF16)}, {"module.fc.weight", test::randn({3, 2}, 10)}});
  StateDict dst = model();
  const LoadReport r = load_state_dict_file(dst, path, {.strict = false});
  EXPECT_EQ(r.loaded.size(), 2u);
  EXPECT_EQ(r.missing, (std::vector<std::string>{"bn1.weight"}));
  EXPECT_TRUE(test::all_close(get(dst, "conv1.weight"), w, 1e-2, 1e-2));
  try {
    load_state_dict_file(dst, path);
    FAIL() << "strict load did not throw";
  } catch (const Error& e) {
    EXPECT_TRUE(has(e.what(), path)) << e.what();
    EXPECT_TRUE(has(e.what(), "\"bn1.weight\"")) << e.what();
  }
}

// Finite or refuse (issue 11): all-NaN weights, one NaN in fc, one +inf in conv1 (also in
// bf16) and a running_var of -1 are each an error naming the tensor and the file; nothing is
// copied.
TEST(StateDictIO, NonFiniteWeightsAndNegativeRunningVarAreRefused) {
  const std::string dir = test::temp_dir();
  auto full = [] {
    return StateDict{{"conv1.weight", test::randn({2, 1, 3, 3, 3}, 1)},
                     {"bn1.weight", test::randn({2}, 2)},
                     {"bn1.running_var", Tensor::from<float>({1.f, 0.f}, {2})},
                     {"fc.weight", test::randn({3, 2}, 3)}};
  };
  auto poke = [](StateDict& sd, const std::string& name, size_t i, float v) {
    for (auto& [k, t] : sd)
      if (k == name) {
        std::vector<float> x = t.to_vector<float>();
        if (i == size_t(-1)) std::fill(x.begin(), x.end(), v);
        else x[i] = v;
        t = Tensor::from<float>(x, t.shape());
      }
  };
  struct Case { const char* file; const char* tensor; size_t index; float value; const char* says; };
  const Case cases[] = {
      {"all_nan.safetensors", "conv1.weight", size_t(-1), NAN, "54 non-finite value(s)"},
      {"fc_nan.safetensors", "fc.weight", 4, NAN, "1 non-finite value(s)"},
      {"conv1_inf.safetensors", "conv1.weight", 7, INFINITY, "index 7, is inf"},
      {"var_neg.safetensors", "bn1.running_var", 1, -1.f, "negative variance"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.file);
    StateDict src = full();
    poke(src, c.tensor, c.index, c.value);
    if (std::string(c.file) == "conv1_inf.safetensors")
      for (auto& [k, t] : src) t = t.to(DType::BF16);  // also in a half-precision checkpoint
    save_safetensors(dir + "/" + c.file, src);
    StateDict dst = {{"conv1.weight", Tensor::zeros({2, 1, 3, 3, 3})}, {"bn1.weight", Tensor::zeros({2})},
                     {"bn1.running_var", Tensor::zeros({2})}, {"fc.weight", Tensor::zeros({3, 2})}};
    test::expect_error([&] { load_state_dict_file(dst, dir + "/" + c.file); },
                       {c.file, std::string("'") + c.tensor + "'", c.says, "nothing was copied", "load_state_dict"});
    for (const auto& [k, t] : dst) EXPECT_EQ(t.to_vector<float>(), std::vector<float>(size_t(t.numel()), 0.f)) << k;
  }
}

// ---------------------------------------------------------------- inflation
// Element (o, i, d, h, w) of a contiguous 5-D tensor's values.
double at5(const std::vector<double>& v, const Shape& s, int64_t o, int64_t i, int64_t d, int64_t h, int64_t w) {
  return v[size_t((((o * s[1] + i) * s[2] + d) * s[3] + h) * s[4] + w)];
}

TEST(StateDictIO, InflationRepeatsOverDepthAndSumsRgbForOneChannel) {
  const Tensor stem = test::randn({4, 3, 3, 3}, 11), conv = test::randn({5, 4, 3, 3}, 12);
  const Tensor down = test::randn({6, 4, 1, 1}, 13), bn = test::randn({4}, 14), fc = test::randn({3, 6}, 15);
  const StateDict src = {{"conv1.weight", stem}, {"bn1.weight", bn}, {"layer1.0.conv2.weight", conv},
                         {"layer1.0.downsample.0.weight", down}, {"fc.weight", fc}};
  const StateDict out = inflate_2d_to_3d(src, 1);
  ASSERT_EQ(out.size(), src.size());
  for (size_t i = 0; i < out.size(); ++i) EXPECT_EQ(out[i].first, src[i].first);  // order kept

  const Tensor s3 = get(out, "conv1.weight");
  ASSERT_EQ(s3.shape(), (Shape{4, 1, 3, 3, 3}));
  const auto s2 = stem.to_vector<double>(), s3v = s3.to_vector<double>();
  for (int64_t o = 0; o < 4; ++o)
    for (int64_t h = 0; h < 3; ++h)
      for (int64_t w = 0; w < 3; ++w) {
        double rgb = 0, depth = 0;
        for (int64_t c = 0; c < 3; ++c) rgb += s2[size_t(((o * 3 + c) * 3 + h) * 3 + w)];
        for (int64_t d = 0; d < 3; ++d) {
          depth += at5(s3v, s3.shape(), o, 0, d, h, w);
          EXPECT_NEAR(at5(s3v, s3.shape(), o, 0, d, h, w), rgb / 3, 1e-6);  // every slice the same
        }
        EXPECT_NEAR(depth, rgb, 1e-5);  // depth-constant input gives the 2D gray response
      }

  const Tensor c3 = get(out, "layer1.0.conv2.weight");
  ASSERT_EQ(c3.shape(), (Shape{5, 4, 3, 3, 3}));
  const auto c2 = conv.to_vector<double>(), c3v = c3.to_vector<double>();
  for (int64_t o = 0; o < 5; ++o)
    for (int64_t i = 0; i < 4; ++i)
      for (int64_t h = 0; h < 3; ++h)
        for (int64_t w = 0; w < 3; ++w) {
          double depth = 0;
          for (int64_t d = 0; d < 3; ++d) depth += at5(c3v, c3.shape(), o, i, d, h, w);
          EXPECT_NEAR(depth, c2[size_t(((o * 4 + i) * 3 + h) * 3 + w)], 1e-5);
        }

  const Tensor d3 = get(out, "layer1.0.downsample.0.weight");
  ASSERT_EQ(d3.shape(), (Shape{6, 4, 1, 1, 1}));
  EXPECT_TRUE(test::all_close(d3.view({6, 4, 1, 1}), down, 0, 0));
  EXPECT_TRUE(get(out, "bn1.weight").shares_storage(bn));
  EXPECT_TRUE(get(out, "fc.weight").shares_storage(fc));
}

TEST(StateDictIO, InflationAdaptsStemLikeTimm) {
  const Tensor stem = test::randn({2, 3, 3, 3}, 16);
  const auto s2 = stem.to_vector<double>();
  // Three channels: no channel change, just the depth axis.
  const Tensor rgb = get(inflate_2d_to_3d({{"conv1.weight", stem}}, 3), "conv1.weight");
  EXPECT_EQ(rgb.shape(), (Shape{2, 3, 3, 3, 3}));
  // Five channels: R, G, B, R, G, each scaled by 3/5.
  const Tensor five = get(inflate_2d_to_3d({{"conv1.weight", stem}}, 5), "conv1.weight");
  ASSERT_EQ(five.shape(), (Shape{2, 5, 3, 3, 3}));
  const auto fv = five.to_vector<double>();
  for (int64_t o = 0; o < 2; ++o)
    for (int64_t i = 0; i < 5; ++i)
      for (int64_t d = 0; d < 3; ++d)
        for (int64_t h = 0; h < 3; ++h)
          for (int64_t w = 0; w < 3; ++w)
            EXPECT_NEAR(at5(fv, five.shape(), o, i, d, h, w),
                        s2[size_t(((o * 3 + i % 3) * 3 + h) * 3 + w)] * 3.0 / 5.0 / 3.0, 1e-6);
  // Dtype and the stem's name are the caller's; half-precision weights stay half.
  const Tensor b = get(inflate_2d_to_3d({{"stem.conv.weight", stem.to(DType::BF16)}}, 1, "stem.conv.weight"),
                       "stem.conv.weight");
  EXPECT_EQ(b.dtype(), DType::BF16);
  EXPECT_EQ(b.shape(), (Shape{2, 1, 3, 3, 3}));
}

TEST(StateDictIO, InflationRejectsWhatItCannotDo) {
  EXPECT_THROW(inflate_2d_to_3d({{"conv1.weight", Tensor::zeros({2, 3, 3, 5})}}, 3), Error);  // not square
  EXPECT_THROW(inflate_2d_to_3d({{"layer1.0.conv1.weight", Tensor::zeros({2, 3, 1, 1})}}, 1), Error);  // no stem
  EXPECT_THROW(inflate_2d_to_3d({{"conv1.weight", Tensor::zeros({2, 4, 3, 3})}}, 5), Error);  // not RGB
  EXPECT_THROW(inflate_2d_to_3d({{"conv1.weight", Tensor::zeros({2, 3, 3, 3})}}, 0), Error);
}

TEST(StateDictIO, DropKeysAndLoadWithAnotherHead) {
  StateDict sd = {{"fc.weight", Tensor::zeros({1000, 2})}, {"fc.bias", Tensor::zeros({1000})},
                  {"fc2.weight", Tensor::zeros({1})}, {"conv1.weight", Tensor::zeros({2, 1, 3, 3, 3})}};
  EXPECT_EQ(drop_keys(sd, "fc."), 2u);
  ASSERT_EQ(sd.size(), 2u);
  EXPECT_EQ(sd[0].first, "fc2.weight");
  StateDict dst = model();
  const LoadReport r = load_state_dict(dst, {sd[1]}, {.strict = false});
  EXPECT_EQ(r.missing, (std::vector<std::string>{"bn1.weight", "fc.weight"}));
}

}  // namespace
}  // namespace mc::io
