// Train / val / test assignment of subjects: a fixed split file, stratified ratios, or
// stratified k folds. Ratios and folds are deterministic for a seed and do not depend on the
// order the subjects were listed in (ids are sorted first).
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mc::io {

struct SplitRatios {
  double train = 0.8, val = 0.1, test = 0.1;
};
SplitRatios parse_split_ratios(const std::string& s);  // "0.8,0.1,0.1" or "80,10,10"

// Per class (label -1 is a class of its own) the subjects are shuffled and cut by the ratios;
// a class with at least one subject per non-zero ratio puts at least one in each. Returns
// "train", "val" or "test" per subject, in the input order.
std::vector<std::string> stratified_split(const std::vector<std::string>& ids,
                                          const std::vector<int64_t>& labels,
                                          const SplitRatios& ratios, uint64_t seed);

// Fold index 0..k-1 per subject: each class dealt round-robin after a seeded shuffle, so
// fold sizes differ by at most one and every fold holds about 1/k of each class.
std::vector<int> stratified_folds(const std::vector<std::string>& ids,
                                  const std::vector<int64_t>& labels, int k, uint64_t seed);

// CSV "id,split" (header row optional): subject id -> split name. Errors name file and line.
std::map<std::string, std::string> read_split_file(const std::string& path);

}  // namespace mc::io
