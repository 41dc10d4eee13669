// The task as data: data.classes, data.tscore_thresholds of any length, model.head and
// model.num_classes (derived, or checked), and the errors that name the keys involved.
#include <gtest/gtest.h>

#include <sstream>

#include "engine/check.h"
#include "io/labels.h"
#include "pipeline/config.h"
#include "pipeline/prep_config.h"
#include "test_util.h"

namespace mc::pipeline {
namespace {

std::string error_of(const std::string& yaml, const std::vector<std::string>& overrides = {}) {
  try {
    parse_config(yaml, "run.yaml", overrides);
  } catch (const Error& e) {
    return e.what();
  }
  ADD_FAILURE() << "expected an error for:\n" << yaml;
  return "";
}

#define EXPECT_HAS(msg, part) EXPECT_NE(std::string(msg).find(part), std::string::npos) << (msg)

TEST(TaskConfig, DefaultIsWhoAndNumClassesIsDerived) {
  const Config c = parse_config("", "run.yaml");
  EXPECT_EQ(task_of(c), io::Task::who());
  EXPECT_EQ(c.model.num_classes, 3);
  const Config b = parse_config("data:\n  classes: [normal, mass]\n  tscore_thresholds: []\n", "run.yaml");
  const io::Task t = task_of(b);
  EXPECT_EQ(b.model.num_classes, 2);
  EXPECT_TRUE(t.binary());
  EXPECT_EQ(t.positive_class(), 1);  // class column: the second name
  EXPECT_EQ(t.name(1), "mass");
  const Config four = parse_config("data:\n  classes: [severe, osteoporosis, osteopenia, normal]\n"
                                   "  tscore_thresholds: [-3.5, -2.5, -1]\n", "run.yaml");
  EXPECT_EQ(four.model.num_classes, 4);
  EXPECT_EQ(task_of(four).classify(-3.5), 0);
  EXPECT_EQ(task_of(four).classify(-3.0), 1);
  EXPECT_EQ(task_of(four).classify(-2.5), 2);  // an inner threshold goes up (the first stays down)
  EXPECT_EQ(task_of(four).classify(-1.0), 3);
  const Config r = parse_config("model:\n  head: regression\n", "run.yaml");
  EXPECT_TRUE(task_of(r).regression());
  EXPECT_EQ(task_of(r).num_outputs(), 1);
  EXPECT_EQ(r.model.num_classes, 3);  // the derived classes
  // round trip through the resolved YAML
  EXPECT_EQ(parse_config(to_yaml(four), "resolved.yaml"), four);
}

TEST(TaskConfig, ExampleConfigsOfTheReadme) {
  const Config b = load_config(std::string(MC_SOURCE_DIR) + "/configs/binary.yaml");
  EXPECT_EQ(b.model.num_classes, 2);
  EXPECT_EQ(task_of(b).positive_class(), 0);
  EXPECT_EQ(task_of(b).name(0), "osteoporosis");
  EXPECT_DOUBLE_EQ(b.eval.target_sensitivity, 0.9);
  const Config r = load_config(std::string(MC_SOURCE_DIR) + "/configs/regression.yaml");
  EXPECT_TRUE(task_of(r).regression());
  EXPECT_EQ(r.eval.select_by, Config::Eval::SelectBy::MAE);
  EXPECT_EQ(r.loss.regression, losses::RegressionLoss::Huber);
}

TEST(TaskConfig, BadTasksNameTheKeys) {
  std::string m = error_of("data:\n  tscore_thresholds: [-1.0, -2.5]\n");
  EXPECT_HAS(m, "data.tscore_thresholds");
  EXPECT_HAS(m, "strictly increase");
  m = error_of("data:\n  classes: [normal, mass]\n");
  EXPECT_HAS(m, "2 class names are given");
  EXPECT_HAS(m, "data.tscore_thresholds ([-2.5, -1.0], the default)");
  m = error_of("data:\n  classes: [normal, mass]\n  tscore_thresholds: []\nmodel:\n  num_classes: 3\n");
  EXPECT_HAS(m, "model.num_classes (3, from run.yaml");
  EXPECT_HAS(m, "contradicts the task");
  EXPECT_HAS(m, "make 2 classes (normal,mass)");
  m = error_of("data:\n  classes: [normal, Normal]\n  tscore_thresholds: [0]\n");
  EXPECT_HAS(m, "appears twice");
  m = error_of("data:\n  classes: [a, b]\n  tscore_thresholds: []\nmodel:\n  head: regression\n");
  EXPECT_HAS(m, "regression head");
  EXPECT_HAS(m, "model.head (regression");
  m = error_of("data:\n  classes: [normal, mass]\n  tscore_thresholds: []\n  positive_class: tumour\n");
  EXPECT_HAS(m, "data.positive_class (\"tumour\", from run.yaml");
  EXPECT_HAS(m, "not one of the classes normal,mass");
  m = error_of("eval:\n  select_by: mae\n");
  EXPECT_HAS(m, "eval.select_by (mae");
}

TEST(TaskLabels, NamesFromTheTaskAndClearErrors) {
  io::Task t;
  t.classes = {"normal", "mass"};
  t.thresholds = {};
  std::istringstream ok("id,label\na,normal\nb,MASS\nc,1\nd,\n");
  const io::LabelTable l = io::parse_labels(ok, "labels.csv", t);
  ASSERT_EQ(l.entries.size(), 4u);
  EXPECT_EQ(l.entries[0].label, 0);
  EXPECT_EQ(l.entries[1].label, 1);
  EXPECT_EQ(l.entries[2].label, 1);
  EXPECT_EQ(l.entries[3].label, -1);
  std::istringstream bad("id,label\na,normal\nb,tumour\n");
  try {
    io::parse_labels(bad, "labels.csv", t);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "labels.csv:3: class \"tumour\" of subject b is not one of the task's classes normal,mass");
  }
  std::istringstream tonly("id,tscore\na,-3\n");
  try {
    io::parse_labels(tonly, "labels.csv", t);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "come from a class column");
  }
  io::Task reg = io::Task::who();
  reg.head = io::Task::Head::Regression;
  std::istringstream classes_only("id,class\na,normal\n");
  try {
    io::parse_labels(classes_only, "labels.csv", reg);
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "labels.csv: missing column: a regression task");
  }
  // A binary T-score task: T <= -1 is class 0 (DXA referral).
  io::Task dxa;
  dxa.classes = {"refer", "no_referral"};
  dxa.thresholds = {-1.0};
  std::istringstream ts("id,tscore\na,-1\nb,-0.9\n");
  const io::LabelTable d = io::parse_labels(ts, "labels.csv", dxa);
  EXPECT_EQ(d.entries[0].label, 0);
  EXPECT_EQ(d.entries[1].label, 1);
  EXPECT_EQ(dxa.positive_class(), 0);
}

TEST(TaskMeta, RoundTripsAndRejectsMalformed) {
  io::Task t;
  t.classes = {"severe", "osteoporosis", "osteopenia", "normal"};
  t.thresholds = {-3.5, -2.5, -1};
  t.head = io::Task::Head::Regression;
  const auto m = io::task_meta(t);
  const auto back = io::task_from_meta(m, "x.safetensors");
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, t);
  EXPECT_FALSE(io::task_from_meta({}, "old.safetensors"));
  auto broken = m;
  broken["task.thresholds"] = "-1,abc";
  try {
    io::task_from_meta(broken, "x.safetensors");
    ADD_FAILURE();
  } catch (const Error& e) {
    EXPECT_HAS(e.what(), "x.safetensors: metadata task.thresholds");
  }
  io::Task other = io::Task::who();
  EXPECT_HAS(t.difference(other), "classes severe,osteoporosis,osteopenia,normal vs osteoporosis,osteopenia,normal");
}

}  // namespace
}  // namespace mc::pipeline
