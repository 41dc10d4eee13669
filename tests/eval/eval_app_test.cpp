// mc_eval --predictions: the CSV reader's errors, evaluate() against sklearn, the JSON, and the
// program itself (run from the build tree).
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <sys/wait.h>
#include <unistd.h>

#include "eval/evaluation.h"
#include "losses/fixtures.h"
#include "test_util.h"

namespace mc::eval {
namespace {

PredictionTable parse(const std::string& text, const std::string& name = "p.csv") {
  std::istringstream in(text);
  return parse_predictions_csv(in, name);
}

// The message of the mc::Error parsing `text` throws (empty if it does not throw).
std::string parse_error(const std::string& text) {
  try {
    parse(text);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

#define EXPECT_HAS(s, part) EXPECT_NE((s).find(part), std::string::npos) << (s)

TEST(EvalAppCsv, ReadsIndexedAndNamedHeaders) {
  const auto p = parse("id,label,score_0,score_1,score_2\r\na,2,0.1,0.2,0.7\r\nb,0,1.5,-2,3e-1\r\n\n");
  EXPECT_EQ(p.size(), 2);
  EXPECT_EQ(p.class_names, (std::vector<std::string>{"0", "1", "2"}));
  EXPECT_EQ(p.labels, (std::vector<int64_t>{2, 0}));
  EXPECT_EQ(p.scores, (std::vector<double>{0.1, 0.2, 0.7, 1.5, -2, 0.3}));
  EXPECT_EQ(p.ids[1], "b");
  const auto q = parse("\xEF\xBB\xBFlabel, id, osteoporosis, osteopenia, normal\n"
                       "Normal, s1, 0.2, 0.3, 0.5\nosteopenia, s2, 0.1, 0.8, 0.1\n1, s3, 0,1,0\n");
  EXPECT_EQ(q.class_names, (std::vector<std::string>{"osteoporosis", "osteopenia", "normal"}));
  EXPECT_EQ(q.labels, (std::vector<int64_t>{2, 1, 1}));
  EXPECT_EQ(q.ids[0], "s1");
}

TEST(EvalAppCsv, ErrorsNameFileLineAndColumn) {
  EXPECT_HAS(parse_error("id,score_0,score_1\nx,1,2\n"), "p.csv:1: missing column 'label'");
  EXPECT_HAS(parse_error("label,score_0,score_1\n1,1,2\n"), "p.csv:1: missing column 'id'");
  EXPECT_HAS(parse_error("id,label,score_0\nx,0,1\n"), "need at least 2 score columns");
  EXPECT_HAS(parse_error("id,label,score_1,score_0\nx,0,1,2\n"), "expected score_0..score_1");
  EXPECT_HAS(parse_error("id,label,score_0,score_1\nx,0,0.5,0.5\ny,1,0.5,abc\n"),
             "p.csv:3:4: score 'abc' in column 'score_1' is not a finite number");
  EXPECT_HAS(parse_error("id,label,score_0,score_1\nx,0,0.5,nan\n"), "p.csv:2:4");
  EXPECT_HAS(parse_error("id,label,score_0,score_1\nx,2,0.5,0.5\n"),
             "p.csv:2:2: label 2 outside [0, 2)");
  EXPECT_HAS(parse_error("id,label,a,b\nx,c,0.5,0.5\n"),
             "p.csv:2:2: label 'c' is neither a class index in [0, 2) nor a class name (a, b)");
  EXPECT_HAS(parse_error("id,label,score_0,score_1\nx,0,0.5,0.5\ny,1,0.5\n"),
             "p.csv:3: 3 fields, but the header has 4 columns");
  EXPECT_HAS(parse_error("id,label,score_0,score_1\n"), "p.csv: no prediction rows");
  EXPECT_HAS(parse_error(""), "p.csv: empty file");
  EXPECT_THROW(read_predictions_csv("/nonexistent/p.csv"), Error);
}

// Issue 11: duplicate ids, probabilities that do not sum to 1, and a bootstrap beyond its
// documented maximum are errors naming the file, the id or the option.
TEST(EvalAppCsv, DuplicateIdsProbabilitySumsAndBootstrapBound) {
  EXPECT_HAS(parse_error("id,label,score_0,score_1\nx,0,0.5,0.5\ny,1,0.2,0.8\nx,1,0.4,0.6\n"),
             "p.csv:4: id 'x' appears twice (first at p.csv:2)");
  PredictionTable p = parse("id,label,score_0,score_1,score_2\na,0,0.7,0.2,0.1\nb,1,0.9,0.7,0.5\n");
  p.kind = ScoreKind::Probabilities;
  try {
    evaluate(p, EvalOptions{});
    ADD_FAILURE() << "probabilities summing to 2.1 were accepted";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "p.csv: scores were declared probabilities but those of id 'b' sum to 2.1");
  }
  p.kind = ScoreKind::Logits;  // the same numbers as logits are fine
  EXPECT_NO_THROW(evaluate(p, EvalOptions{}));
  EvalOptions o;
  o.bootstrap.resamples = kMaxBootstrapResamples + 1;
  try {
    evaluate(p, o);
    ADD_FAILURE() << "no bound on bootstrap resamples";
  } catch (const Error& e) {
    EXPECT_HAS(std::string(e.what()), "the maximum is 1000000");
  }
}

// random3 written as a CSV of probabilities, evaluated, compared with sklearn's numbers.
std::string write_csv(const test::Fixture& f, const std::string& dir, const std::string& key) {
  const int64_t N = f.integer("N"), K = f.integer("K");
  const std::string path = dir + "/preds.csv";
  std::ofstream out(path);
  out << "id,label";
  for (int64_t k = 0; k < K; ++k) out << ",score_" << k;
  out << "\n";
  char b[32];
  for (int64_t i = 0; i < N; ++i) {
    out << "case" << i << "," << int64_t(f["labels"][size_t(i)]);
    for (int64_t k = 0; k < K; ++k) {
      std::snprintf(b, sizeof b, "%.17g", f[key][size_t(i * K + k)]);
      out << "," << b;
    }
    out << "\n";
  }
  return path;
}

TEST(EvalAppEvaluate, MatchesSklearn) {
  const auto f = test::load_fixture("metrics_random3");
  const auto p = read_predictions_csv(write_csv(f, test::temp_dir(), "scores"));
  EvalOptions o;
  o.bootstrap.resamples = 200;
  const Evaluation e = evaluate(p, o);
  EXPECT_EQ(e.kind, ScoreKind::Probabilities);
  ASSERT_EQ(e.rows.size(), 1u);
  const auto& m = e.rows[0].metrics;
  EXPECT_EQ(m.confusion, f.ints("confusion"));
  EXPECT_NEAR(m.accuracy.value, f.scalar("accuracy"), 1e-9);
  EXPECT_NEAR(m.f1_weighted.value, f.scalar("f1_weighted"), 1e-9);
  EXPECT_NEAR(m.auc_macro.value, f.scalar("auc_macro"), 1e-9);
  ASSERT_EQ(e.rows[0].roc.size(), 3u);
  EXPECT_EQ(e.rows[0].roc[2].fpr.size(), f["roc_fpr_2"].size());
  const std::string report = format_report(e);
  EXPECT_HAS(report, "accuracy");
  EXPECT_HAS(report, "confusion matrix");
  const std::string json = to_json(e);
  EXPECT_HAS(json, "\"auc_macro\": {\"value\": ");
  EXPECT_HAS(json, "\"ci\": [");
  EXPECT_EQ(json.find("nan"), std::string::npos);
}

TEST(EvalAppEvaluate, LogitSweepMatchesPosthocFixture) {
  const auto f = test::load_fixture("posthoc");
  const auto p = read_predictions_csv(write_csv(f, test::temp_dir(), "logits"));
  EvalOptions o;
  o.tau2 = f["taus"];
  for (int64_t c : f.ints("counts")) o.prior.push_back(double(c));
  o.bootstrap.resamples = 0;
  const Evaluation e = evaluate(p, o);
  EXPECT_EQ(e.kind, ScoreKind::Logits);
  ASSERT_EQ(e.rows.size(), 3u);
  for (size_t j = 0; j < 3; ++j) {
    const std::string t = "t" + std::to_string(j) + "_";
    EXPECT_NEAR(e.rows[j].metrics.balanced_accuracy.value, f.scalar(t + "balanced_accuracy"), 1e-9);
    EXPECT_NEAR(e.rows[j].metrics.auc_macro.value, f.scalar(t + "auc_macro"), 1e-9);
  }
  EXPECT_HAS(format_report(e), "post-hoc logit adjustment sweep");
  o.prior.clear();
  EXPECT_THROW(evaluate(p, o), Error);  // tau2 != 0 needs the prior
}

TEST(EvalAppEvaluate, AbsentClassIsNullInJson) {
  const auto f = test::load_fixture("metrics_absent");
  const auto p = read_predictions_csv(write_csv(f, test::temp_dir(), "scores"));
  EvalOptions o;
  o.bootstrap.resamples = 50;
  const std::string json = to_json(evaluate(p, o));
  EXPECT_HAS(json, "\"auc[2]\": {\"value\": null, \"defined\": false");
  EXPECT_HAS(json, "auc[2] undefined: class 2 has no samples");
  EXPECT_EQ(json.find("nan"), std::string::npos);
}

// The program, when it has been built beside this test.
std::string mc_eval_path() { return std::string(MC_BINARY_DIR) + "/apps/mc_eval"; }

int run(const std::string& args, const std::string& out) {
  const int rc = std::system((mc_eval_path() + " " + args + " > " + out + " 2>&1").c_str());
  return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Issue 11: a report written to a full stdout is a failure (exit 1, said on stderr), not rc 0;
// --json to a device is written in place (the device stays a device).
TEST(EvalAppProgram, FullStdoutIsAnErrorAndDevicesStayDevices) {
  if (!std::filesystem::exists(mc_eval_path())) GTEST_SKIP() << "mc_eval not built";
  if (!std::filesystem::exists("/dev/full")) GTEST_SKIP() << "no /dev/full";
  const std::string dir = test::temp_dir();
  const auto f = test::load_fixture("metrics_random3");
  const std::string csv = write_csv(f, dir, "scores");
  const std::string cmd = mc_eval_path() + " --predictions " + csv + " --bootstrap 10";
  int rc = std::system((cmd + " > /dev/full 2> " + dir + "/err.txt").c_str());
  EXPECT_EQ(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, 1);
  EXPECT_HAS(slurp(dir + "/err.txt"), "mc_eval: error: cannot write the output to stdout");
  // Not as root: were this ever broken, root would replace the machine's /dev/null (the unit
  // test AtomicFile.SymlinksFollowedDevicesAndFifosWrittenInPlace covers devices with /dev/full).
  if (::geteuid() == 0) return;
  rc = std::system((cmd + " --json /dev/null > " + dir + "/out.txt 2>&1").c_str());
  EXPECT_EQ(WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, 0) << slurp(dir + "/out.txt");
  EXPECT_EQ(std::filesystem::status("/dev/null").type(), std::filesystem::file_type::character);
}

TEST(EvalAppProgram, RunsAndReportsErrors) {
  if (!std::filesystem::exists(mc_eval_path())) GTEST_SKIP() << "mc_eval not built";
  const std::string dir = test::temp_dir();
  const auto f = test::load_fixture("metrics_random3");
  const std::string csv = write_csv(f, dir, "scores"), log = dir + "/log.txt";
  EXPECT_EQ(run("--predictions " + csv + " --bootstrap 100 --seed 4 --json " + dir + "/m.json",
                log), 0) << slurp(log);
  EXPECT_HAS(slurp(log), "balanced_accuracy");
  EXPECT_HAS(slurp(dir + "/m.json"), "\"resamples\": 100, \"seed\": 4");
  EXPECT_EQ(run("--predictions " + csv + " --tau2 1,0.5 --prior 20,110,181 --bootstrap 0", log), 0);
  EXPECT_HAS(slurp(log), "sweep");
  std::ofstream(dir + "/bad.csv") << "id,label,score_0,score_1\nx,0,0.5,0.5\ny,1,0.5,oops\n";
  EXPECT_EQ(run("--predictions " + dir + "/bad.csv", log), 1);
  EXPECT_HAS(slurp(log), "bad.csv:3:4: score 'oops'");
  EXPECT_EQ(run("--tau2 0.5", log), 2);
  EXPECT_HAS(slurp(log), "--predictions FILE.csv is required");
  EXPECT_EQ(run("--predictions " + csv + " --bootstrap many", log), 2);
}

}  // namespace
}  // namespace mc::eval
