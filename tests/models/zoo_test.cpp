// The Table II networks (models/zoo.h): the registry, key names and parameter counts against the
// PyTorch references (tests/fixtures/{resnet3d,efficientnet3d}_torch.py), timm's init, and that
// each trains a few steps on the CPU on generated data with the loss falling.
#include <algorithm>
#include <cmath>
#include <map>

#include "engine/optim.h"
#include "models/efficientnet3d.h"
#include "models/resnet3d.h"
#include "models/zoo.h"
#include "test_util.h"
#include "toy_batch.h"

namespace mc {
namespace {

std::map<std::string, Shape> shapes_of(nn::Module& m) {
  std::map<std::string, Shape> s;
  for (auto& [k, t] : m.state_dict()) s[k] = t.shape();
  return s;
}

TEST(Zoo, ParameterCountsMatchThePyTorchReferences) {
  // Counted with the PyTorch references, 1 input channel, 3 classes.
  const std::map<std::string, std::pair<int64_t, size_t>> expected = {
      {"resnet10t", {14411899, 86}},        {"resnet14t", {14356347, 116}},
      {"resnext50_32x4d", {25827907, 320}}, {"mobilenetv2_100", {2356163, 314}},
      {"efficientnet_b0", {4692223, 360}}};
  for (auto& [name, n] : expected) {
    auto m = models::create(name, 1, 3, 0);
    EXPECT_EQ(m->num_parameters(), n.first) << name;
    EXPECT_EQ(m->state_dict().size(), n.second) << name;
  }
}

TEST(Zoo, TimmKeyNamesAndShapes) {
  auto t = models::create("resnet10t", 1, 3, 0);
  auto s = shapes_of(*t);
  EXPECT_EQ(s.at("conv1.0.weight"), (Shape{24, 1, 3, 3, 3}));
  EXPECT_EQ(s.at("conv1.1.running_var"), Shape{24});
  EXPECT_EQ(s.at("conv1.3.weight"), (Shape{32, 24, 3, 3, 3}));
  EXPECT_EQ(s.at("conv1.6.weight"), (Shape{64, 32, 3, 3, 3}));
  EXPECT_EQ(s.at("bn1.weight"), Shape{64});
  EXPECT_EQ(s.count("layer1.0.downsample.1.weight"), 0u);  // stride 1, 64 -> 64: no shortcut
  EXPECT_EQ(s.at("layer2.0.downsample.1.weight"), (Shape{128, 64, 1, 1, 1}));
  EXPECT_EQ(s.at("layer2.0.downsample.2.running_mean"), Shape{128});

  auto r14 = models::create("resnet14t", 1, 3, 0);
  EXPECT_EQ(shapes_of(*r14).at("layer1.0.downsample.1.weight"), (Shape{256, 64, 1, 1, 1}));

  auto x = models::create("resnext50_32x4d", 1, 3, 0);
  s = shapes_of(*x);
  EXPECT_EQ(s.at("layer1.0.conv2.weight"), (Shape{128, 4, 3, 3, 3}));  // 32 groups of 4
  EXPECT_EQ(s.at("layer4.2.conv2.weight"), (Shape{1024, 32, 3, 3, 3}));
  EXPECT_EQ(s.at("layer1.0.downsample.0.weight"), (Shape{256, 64, 1, 1, 1}));

  auto mb = models::create("mobilenetv2_100", 1, 3, 0);
  s = shapes_of(*mb);
  EXPECT_EQ(s.at("conv_stem.weight"), (Shape{32, 1, 3, 3, 3}));
  EXPECT_EQ(s.at("blocks.0.0.conv_dw.weight"), (Shape{32, 1, 3, 3, 3}));
  EXPECT_EQ(s.at("blocks.0.0.conv_pw.weight"), (Shape{16, 32, 1, 1, 1}));
  EXPECT_EQ(s.at("blocks.1.0.conv_pw.weight"), (Shape{96, 16, 1, 1, 1}));
  EXPECT_EQ(s.at("blocks.6.0.conv_pwl.weight"), (Shape{320, 960, 1, 1, 1}));
  EXPECT_EQ(s.at("conv_head.weight"), (Shape{1280, 320, 1, 1, 1}));
  EXPECT_EQ(s.at("classifier.weight"), (Shape{3, 1280}));

  auto b0 = models::create("efficientnet_b0", 1, 3, 0);
  s = shapes_of(*b0);
  EXPECT_EQ(s.at("blocks.0.0.se.conv_reduce.weight"), (Shape{8, 32, 1, 1, 1}));
  EXPECT_EQ(s.at("blocks.1.0.se.conv_reduce.weight"), (Shape{4, 96, 1, 1, 1}));
  EXPECT_EQ(s.at("blocks.1.0.se.conv_expand.bias"), Shape{96});
  EXPECT_EQ(s.at("blocks.2.0.conv_dw.weight"), (Shape{144, 1, 5, 5, 5}));
  EXPECT_EQ(s.at("blocks.5.3.se.conv_reduce.weight"), (Shape{48, 1152, 1, 1, 1}));
}

TEST(Zoo, EveryNameBuildsAndUnknownNamesListThem) {
  // The registry lists them all (the ones built here are built by the tests above).
  for (const char* n : {"resnet10", "resnet50", "medconv", "resnet152", "resnet10t", "resnet14t",
                        "resnext50_32x4d", "mobilenetv2_100", "efficientnet_b0"}) {
    const auto names = models::model_names();
    EXPECT_NE(std::find(names.begin(), names.end(), n), names.end()) << n;
  }
  try {
    models::create("efficientnet_b9", 1, 3, 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("efficientnet_b0"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("mobilenetv2_100"), std::string::npos) << e.what();
  }
}

TEST(Zoo, GoogInitForTheEfficientNetFamily) {
  auto a = models::create("efficientnet_b0", 1, 3, 5), b = models::create("efficientnet_b0", 1, 3, 5);
  auto sa = a->state_dict(), sb = b->state_dict();
  for (size_t i = 0; i < sa.size(); ++i)
    EXPECT_EQ(test::rel_error(sa[i].second, sb[i].second), 0.0) << sa[i].first;
  for (auto& [k, t] : sa) {
    auto v = t.to_vector<double>();
    double ss = 0, mx = 0;
    for (double x : v) ss += x * x, mx = std::max(mx, std::abs(x));
    const double rms = std::sqrt(ss / double(v.size()));
    if (k == "blocks.5.0.conv_dw.weight")  // depthwise: fan_out = 125 * 672 / 672
      EXPECT_NEAR(rms, std::sqrt(2.0 / 125), 0.1 * std::sqrt(2.0 / 125));
    if (k == "conv_head.weight")  // fan_out = 1280
      EXPECT_NEAR(rms, std::sqrt(2.0 / 1280), 0.01 * std::sqrt(2.0 / 1280));
    if (k == "blocks.1.0.se.conv_reduce.bias" || k == "classifier.bias" || k == "bn2.bias")
      EXPECT_EQ(mx, 0.0) << k;
    if (k == "bn2.weight") EXPECT_EQ(rms, 1.0);
    if (k == "classifier.weight") EXPECT_LE(mx, 1.0 / std::sqrt(3.0));
  }
  // ResNet variants: timm's zero_init_last on the last BN of every block.
  auto t = models::create("resnet14t", 1, 3, 1);
  for (auto& [k, v] : t->state_dict())
    if (k == "layer3.0.bn3.weight")
      for (double x : v.to_vector<double>()) EXPECT_EQ(x, 0.0);
}


// A few AdamW steps on one fixed batch of generated data: the training loss must fall.
void trains(const std::string& name, int steps, double lr) {
  auto m = models::create(name, 1, 2, 1);
  m->flatten_parameters();
  AdamW opt(m->parameters(), {.lr = lr});
  Generator g(3);
  Tensor x, y;
  test::toy_batch(g, 4, 32, x, y);
  double first = 0, last = 0;
  for (int s = 0; s < steps; ++s) {
    m->zero_grad();
    Tensor loss = cross_entropy(m->forward(x), y);
    loss.backward();
    opt.step();
    const double l = loss.item();
    ASSERT_TRUE(std::isfinite(l)) << name << " step " << s;
    if (s == 0) first = l;
    last = l;
  }
  EXPECT_LT(last, 0.5 * first) << name << ": first " << first << " last " << last;
}

TEST(Zoo, Resnet10tTrainsOnCpu) { trains("resnet10t", 8, 1e-3); }
TEST(Zoo, Resnet14tTrainsOnCpu) { trains("resnet14t", 8, 1e-3); }
TEST(Zoo, Resnext50TrainsOnCpu) { trains("resnext50_32x4d", 8, 1e-3); }
TEST(Zoo, Mobilenetv2TrainsOnCpu) { trains("mobilenetv2_100", 8, 1e-3); }
TEST(Zoo, EfficientnetB0TrainsOnCpu) { trains("efficientnet_b0", 8, 1e-3); }

TEST(Zoo, DropPathIsSeededAndOnlyInTraining) {
  models::EfficientNetSpec spec = models::efficientnet_spec("efficientnet_b0");
  spec.drop_path_rate = 0.5;
  auto run = [&](bool training) {
    models::EfficientNet3d m(spec, 1, 3);
    m.init_weights(4);
    m.train(training);
    Generator g(9);
    NoGradGuard ng;
    const Tensor x = randn({4, 1, 16, 16, 16}, g);
    return std::pair{m.forward(x), m.forward(x)};
  };
  auto [a1, a2] = run(true);
  auto [b1, b2] = run(true);
  EXPECT_EQ(test::rel_error(a1, b1), 0.0);  // same seed, same masks
  EXPECT_EQ(test::rel_error(a2, b2), 0.0);
  EXPECT_GT(test::rel_error(a1, a2), 1e-6);  // fresh masks each forward
  auto [e1, e2] = run(false);
  EXPECT_EQ(test::rel_error(e1, e2), 0.0);  // no drop-path in evaluation
}

}  // namespace
}  // namespace mc
