// mc_bench's `loss` and `auc` cases (issue #4): the fused cross-entropy against the GPU's own
// device-to-device copy bandwidth, and one-vs-rest ROC AUC on 10M scores. Each prints its table
// as it goes and returns its records for --json. Only call them on a CUDA build with a GPU.
//
// The data comes from one integer hash, written the same way in
// benchmarks/pytorch/bench_loss_metrics.py, so both programs see identical logits, labels and
// scores and their loss and AUC values can be compared digit by digit.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "io/json.h"

namespace mc::bench {

struct LossMetricRecord {
  std::string kind, name;                       // kind: copy | loss | auc
  int64_t n = 0, c = 0;                         // rows x classes
  double ms = 0, gb_per_s = 0, copy_share = 0;  // GB/s and its share of the D2D copy's (0: n/a)
  std::vector<double> values;                   // loss, or per-class AUCs
  std::string error;
};

std::vector<LossMetricRecord> loss_cases(int warmup, int repeats);
std::vector<LossMetricRecord> auc_cases(int warmup, int repeats);

// The records as a JSON array of objects, for mc_bench's --json file.
io::Json to_json(const std::vector<LossMetricRecord>& records);

}  // namespace mc::bench
