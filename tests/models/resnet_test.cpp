// ResNet-3D family: layout and key names (timm_3d / torchvision), parameter counts, init, and
// that a small model trains on the CPU.
#include <cmath>
#include <map>

#include "engine/optim.h"
#include "models/resnet3d.h"
#include "test_util.h"
#include "toy_batch.h"

namespace mc {
namespace {

TEST(ResNet, Resnet50KeysAndCountMatchTimm3d) {
  auto m = models::create("medconv", 1, 3, 0);
  StateDict sd = m->state_dict();
  EXPECT_EQ(sd.size(), 320u);  // REFERENCE.md: 320 tensors
  EXPECT_EQ(m->num_parameters(), 46161219);
  std::map<std::string, Shape> shapes;
  for (auto& [k, t] : sd) shapes[k] = t.shape();
  EXPECT_EQ(shapes.at("conv1.weight"), (Shape{64, 1, 7, 7, 7}));
  EXPECT_EQ(shapes.at("bn1.num_batches_tracked"), Shape{});
  EXPECT_EQ(shapes.at("layer1.0.downsample.0.weight"), (Shape{256, 64, 1, 1, 1}));
  EXPECT_EQ(shapes.at("layer1.0.downsample.1.running_var"), Shape{256});
  EXPECT_EQ(shapes.at("layer2.0.conv2.weight"), (Shape{128, 128, 3, 3, 3}));
  EXPECT_EQ(shapes.at("layer4.2.conv3.weight"), (Shape{2048, 512, 1, 1, 1}));
  EXPECT_EQ(shapes.at("fc.weight"), (Shape{3, 2048}));
  EXPECT_EQ(shapes.at("fc.bias"), Shape{3});
  EXPECT_EQ(shapes.count("layer3.5.bn3.weight"), 1u);
  EXPECT_EQ(shapes.count("layer3.6.bn3.weight"), 0u);
  // PyTorch's order: a module's parameters, then its buffers, then its children.
  EXPECT_EQ(sd[0].first, "conv1.weight");
  EXPECT_EQ(sd[1].first, "bn1.weight");
  EXPECT_EQ(sd[3].first, "bn1.running_mean");
  EXPECT_EQ(sd.back().first, "fc.bias");
}

TEST(ResNet, FamilyParameterCounts) {
  // Counted with the PyTorch reference (tests/fixtures/resnet3d_torch.py), 1 channel, 3 classes.
  const std::map<std::string, int64_t> expected = {
      {"resnet10", 14357059}, {"resnet18", 33161539}, {"resnet34", 63471171},
      {"resnet50", 46161219}, {"resnet101", 85207363}, {"resnet152", 117366083}};
  for (auto& [name, n] : expected) {
    models::ResNet3d m(models::resnet_spec(name), 1, 3);
    EXPECT_EQ(m.num_parameters(), n) << name;
  }
  models::ResNet3d rgb(models::resnet_spec("resnet18"), 3, 10);
  EXPECT_EQ(rgb.num_parameters(), 33209034);
}

TEST(ResNet, UnknownNameListsKnownOnes) {
  try {
    models::create("resnet51", 1, 3, 0);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("resnet51"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("resnet50"), std::string::npos);
  }
}

TEST(ResNet, TimmInitIsSeededAndZeroesLastBn) {
  auto a = models::create("resnet50", 1, 3, 7), b = models::create("resnet50", 1, 3, 7);
  auto c = models::create("resnet50", 1, 3, 8);
  auto sa = a->state_dict(), sb = b->state_dict(), sc = c->state_dict();
  double diff_seed = 0;
  for (size_t i = 0; i < sa.size(); ++i) {
    EXPECT_EQ(test::rel_error(sa[i].second, sb[i].second), 0.0) << sa[i].first;
    if (sa[i].first == "conv1.weight") diff_seed = test::rel_error(sa[i].second, sc[i].second);
  }
  EXPECT_GT(diff_seed, 0.1);
  for (auto& [k, t] : sa) {
    auto v = t.to_vector<double>();
    if (k == "layer2.1.bn3.weight") for (double x : v) EXPECT_EQ(x, 0.0);
    if (k == "layer2.1.bn2.weight") for (double x : v) EXPECT_EQ(x, 1.0);
    if (k == "layer3.0.conv2.weight") {  // kaiming normal, fan_out = 256 * 27
      double ss = 0;
      for (double x : v) ss += x * x;
      EXPECT_NEAR(std::sqrt(ss / double(v.size())), std::sqrt(2.0 / (256 * 27)), 2e-4);
    }
  }
}

TEST(ResNet, FlatParametersShareOneBlock) {
  auto m = models::create("resnet10", 1, 3, 0);
  auto before = m->state_dict()[0].second.clone();
  Tensor flat = m->flatten_parameters();
  EXPECT_EQ(flat.numel(), m->num_parameters());
  auto params = m->parameters();
  EXPECT_TRUE(params[0]->shares_storage(flat));
  EXPECT_EQ(test::rel_error(*params[0], before), 0.0);
  EXPECT_TRUE(params.back()->grad().shares_storage(m->flat_grads()));
}


TEST(ResNet, Resnet10TrainsOnCpuAndLossFalls) {
  auto m = models::create("resnet10", 1, 2, 1);
  m->flatten_parameters();
  AdamW opt(m->parameters(), {.lr = 1e-3});
  Generator g(3);
  double first = 0, last = 0;
  const int steps = 30;
  for (int s = 0; s < steps; ++s) {
    Tensor x, y;
    test::toy_batch(g, 8, 16, x, y);
    m->zero_grad();
    Tensor loss = cross_entropy(m->forward(x), y);
    loss.backward();
    opt.step();
    const double l = loss.item();
    ASSERT_TRUE(std::isfinite(l));
    if (s < 5) first += l / 5;
    if (s >= steps - 5) last += l / 5;
  }
  EXPECT_LT(last, 0.6 * first) << "first " << first << " last " << last;
}

}  // namespace
}  // namespace mc
