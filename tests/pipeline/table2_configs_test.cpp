// configs/table2/: every row's config loads (networks another part of the build has not added
// yet are named in the error, and scripts/table2.py reports them "not available"), and each
// file's variants are the ones its row's name lists.
#include <filesystem>
#include <set>

#include "pipeline/config.h"
#include "test_util.h"

namespace mc::pipeline {
namespace {
namespace fs = std::filesystem;

bool has(const std::string& stem, const std::string& v) {
  return ("_" + stem + "_").find("_" + v + "_") != std::string::npos;
}

TEST(Table2Configs, EveryRowLoadsWithTheVariantsItsNameLists) {
  const fs::path dir = fs::path(MC_SOURCE_DIR) / "configs" / "table2";
  const std::set<std::string> pending = {"resnet10t", "resnet14t", "resnext50", "mobilenetv2", "efficientnet"};
  int loaded = 0, unavailable = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".yaml") continue;
    const std::string stem = e.path().stem().string();
    Config c;
    try {
      c = load_config(e.path().string(), {});
    } catch (const Error& err) {
      const std::string net = stem.substr(0, stem.find('_'));
      bool is_pending = false;
      for (const auto& p : pending) is_pending |= net.rfind(p, 0) == 0;
      EXPECT_TRUE(is_pending && std::string(err.what()).find("model.name") != std::string::npos)
          << stem << ": " << err.what();
      ++unavailable;
      continue;
    }
    ++loaded;
    SCOPED_TRACE(stem);
    const bool medconv = stem == "medconv";
    EXPECT_EQ(!c.model.pretrained.empty(), medconv || has(stem, "pretrain"));
    EXPECT_EQ(c.model.inflate_2d, !c.model.pretrained.empty());
    EXPECT_EQ(c.loss.type == losses::LossType::LogitAdjusted, medconv || has(stem, "balce"));
    EXPECT_EQ(c.loader.balaug, has(stem, "balaug"));
    EXPECT_EQ(c.model.in_chans, has(stem, "windows") ? 3 : 1);
    EXPECT_EQ(c.loader.sampling == io::Sampling::ClassBalanced, has(stem, "resample"));
    EXPECT_EQ(c.optim.kind == OptimizerKind::SAM, has(stem, "sam"));
    EXPECT_EQ(c.optim.kind == OptimizerKind::ScheduleFreeAdamW, has(stem, "schedulefree"));
    EXPECT_EQ(c.posthoc.tau2 != 0, medconv);  // only MedConv adjusts post hoc
    EXPECT_EQ(c.output.dir, "runs/table2/" + stem);
  }
  std::printf("configs/table2: %d rows load, %d wait for their network\n", loaded, unavailable);
  EXPECT_EQ(loaded + unavailable, 39);
  EXPECT_GE(loaded, 26);
}

}  // namespace
}  // namespace mc::pipeline
