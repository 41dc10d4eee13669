// What a run builds from its Config: the training loader's options for each rank, the
// optimiser, the model.
#include "pipeline/train_setup.h"

#include <gtest/gtest.h>

#include "test_util.h"

namespace mc::pipeline {
namespace {

TEST(TrainSetup, LoaderOptionsAreTheConfigsWithThisRanksShare) {
  Config c = parse_config("", "x",
                          {"train.batch_size=12", "train.seed=77", "train.sampling=balanced",
                           "data.num_workers=3", "augment.balaug=true", "augment.balaug_cap=4",
                           "augment.noise_std=0.05", "train.epoch_samples=40"});
  io::LoaderOptions lo = train_loader_options(c, Device::cpu(), 2, 3);
  EXPECT_EQ(lo.batch, 4);  // the global batch over three ranks
  EXPECT_EQ(lo.rank, 2);
  EXPECT_EQ(lo.world, 3);
  EXPECT_EQ(lo.seed, 77u);
  EXPECT_EQ(lo.num_classes, 3);
  EXPECT_TRUE(lo.drop_last);
  EXPECT_EQ(lo.sampling, io::Sampling::ClassBalanced);
  EXPECT_EQ(lo.workers, 3);
  EXPECT_EQ(lo.epoch_samples, 40);
  EXPECT_TRUE(lo.augment);
  EXPECT_TRUE(lo.balaug);
  EXPECT_DOUBLE_EQ(lo.balaug_cap, 4.0);
  EXPECT_EQ(lo.aug.noise_std, 0.05f);
  EXPECT_TRUE(lo.device.is_cpu());
  test::expect_error([&] { train_loader_options(c, Device::cpu(), 0, 5); },
                     {"train.batch_size 12", "5 ranks"});
}

TEST(TrainSetup, OptimiserAndModelFromTheConfig) {
  Config c = parse_config("", "x", {"model.name=resnet10", "optim.name=sgd", "optim.lr=0.02"});
  auto model = build_model(c);
  model->flatten_parameters();
  auto opt = build_optimizer(c, *model);
  EXPECT_NE(dynamic_cast<SGD*>(opt.get()), nullptr);
  EXPECT_DOUBLE_EQ(opt->lr(), 0.02);
  // train.seed decides the initial weights.
  auto again = build_model(c);
  c.train.seed = 1;
  auto other = build_model(c);
  EXPECT_EQ(test::rel_error(again->state_dict()[0].second, model->state_dict()[0].second), 0.0);
  EXPECT_GT(test::rel_error(other->state_dict()[0].second, model->state_dict()[0].second), 0.0);
  EXPECT_TRUE(resolve_device(Config::Train::Device::CPU).is_cpu());
}

}  // namespace
}  // namespace mc::pipeline
