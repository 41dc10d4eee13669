// The report of a T-score regression head: MAE, RMSE, Pearson r and R^2 (sklearn's r2_score)
// with percentile bootstrap intervals, Bland-Altman agreement (bias and 95% limits), and the
// scatter and Bland-Altman pictures. The classes derived from the predicted T with the task's
// thresholds get the ordinary classification report beside it (pipeline/evaluate.cpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/metrics.h"

namespace mc::eval {

struct RegressionReport {
  int64_t n = 0;
  MetricValue mae, rmse, pearson, r2;
  Interval mae_ci, rmse_ci, pearson_ci, r2_ci;
  double bias = 0, loa_lo = 0, loa_hi = 0;  // mean of pred - true, +- 1.96 SD
  std::vector<double> truth, pred;
  std::vector<double> thresholds;  // the task's, drawn on the scatter plot
};

// truth, pred: T-scores of the same subjects (finite).
RegressionReport regression_report(const std::vector<double>& truth, const std::vector<double>& pred,
                                   const BootstrapOptions& bootstrap);

std::string regression_markdown(const RegressionReport& r);  // "## T-score regression" section
std::string regression_scatter_svg(const RegressionReport& r, const std::string& where);
std::string bland_altman_svg(const RegressionReport& r, const std::string& where);

}  // namespace mc::eval
