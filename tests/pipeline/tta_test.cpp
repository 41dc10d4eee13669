// Test-time augmentation by flips: the views follow the training augmentation, flips are exact
// index reversals, and the TTA logits are invariant under the flip group they average over.
#include <gtest/gtest.h>

#include "engine/autograd.h"
#include "pipeline/model.h"
#include "pipeline/tta.h"
#include "test_util.h"

namespace mc::pipeline {
namespace {

Config small_config(const std::vector<std::string>& overrides = {}) {
  return parse_config("data:\n  volume: 16\nmodel:\n  name: resnet10\ntrain:\n  device: cpu\n  seed: 3\n", "tta_test.yaml",
                      overrides);
}

TEST(Tta, ViewsFollowTheTrainingFlips) {
  const auto all = tta_flips(small_config({"augment.enabled=true"}));
  ASSERT_EQ(all.size(), 8u);
  EXPECT_EQ(all[0], (Flip{false, false, false}));
  EXPECT_NE(flips_text(all).find("8 views"), std::string::npos);
  test::expect_error([] { tta_flips(small_config({"augment.enabled=false"})); }, {"--tta", "without flips"});
  test::expect_error([] { tta_flips(small_config({"augment.enabled=true", "augment.flip_prob=0"})); }, {"without flips"});
}

TEST(Tta, FlipReversesOneAxis) {
  const Tensor x = test::uniform({2, 1, 3, 4, 5}, 1, 0, 1);
  const Tensor f = flip_volume(x, {false, false, true});
  const float* a = x.data<float>();
  const float* b = f.data<float>();
  for (int64_t n = 0; n < 2 * 3 * 4; ++n)
    for (int64_t w = 0; w < 5; ++w) EXPECT_EQ(b[n * 5 + w], a[n * 5 + 4 - w]);
  const Tensor d = flip_volume(x, {true, false, false});
  EXPECT_EQ(d.data<float>()[0], a[2 * 20]);  // (n 0, d 0) <- (n 0, d 2)
  EXPECT_TRUE(test::all_close(flip_volume(flip_volume(x, {true, true, true}), {true, true, true}), x, 0, 0));
}

TEST(Tta, LogitsAreInvariantUnderTheFlipGroup) {
  const Config cfg = small_config({"augment.enabled=true"});
  auto model = build_model(cfg);
  model->eval();
  const auto flips = tta_flips(cfg);
  const Tensor x = test::uniform({1, 1, 16, 16, 16}, 4, 0, 1);
  const Tensor t = tta_logits(*model, x, Device::cpu(), flips);
  ASSERT_EQ(t.shape(), (Shape{1, 3}));
  // Averaging over a group: flipping the input first permutes the views, the mean stays.
  EXPECT_TRUE(test::all_close(tta_logits(*model, flip_volume(x, {true, false, true}), Device::cpu(), flips), t, 1e-5, 1e-6));
  // ... and differs from the plain forward (the model is not flip-invariant by itself).
  NoGradGuard ng;
  const Tensor plain = model->forward(x);
  EXPECT_GT(test::rel_error(t, plain), 1e-4);
  // One view (the identity) is the plain forward.
  EXPECT_TRUE(test::all_close(tta_logits(*model, x, Device::cpu(), {Flip{false, false, false}}), plain, 1e-6, 1e-7));
}

}  // namespace
}  // namespace mc::pipeline
