#include "io/split.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/check.h"
#include "engine/random.h"
#include "io/csv.h"
#include "io/text.h"

namespace mc::io {
namespace {

// Subject positions grouped by label, each group sorted by id then shuffled by the seed.
std::map<int64_t, std::vector<size_t>> shuffled_strata(const std::vector<std::string>& ids,
                                                       const std::vector<int64_t>& labels,
                                                       uint64_t seed) {
  MC_CHECK(ids.size() == labels.size(), "split: ", ids.size(), " ids but ", labels.size(),
           " labels");
  std::vector<size_t> order(ids.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return ids[a] < ids[b]; });
  for (size_t i = 1; i < order.size(); ++i)
    MC_CHECK(ids[order[i]] != ids[order[i - 1]], "split: duplicate subject ", ids[order[i]]);
  std::map<int64_t, std::vector<size_t>> strata;
  for (size_t i : order) strata[labels[i]].push_back(i);
  Generator g(seed);
  for (auto& [label, members] : strata) {
    std::vector<int64_t> perm(members.size());
    std::iota(perm.begin(), perm.end(), int64_t(0));
    shuffle(perm, g);
    std::vector<size_t> shuffled(members.size());
    for (size_t i = 0; i < perm.size(); ++i) shuffled[i] = members[size_t(perm[i])];
    members = std::move(shuffled);
  }
  return strata;
}

}  // namespace

SplitRatios parse_split_ratios(const std::string& s) {
  SplitRatios r;
  const auto v = parse_numbers(s);
  const bool ok = v && v->size() == 3 && std::isfinite((*v)[0] + (*v)[1] + (*v)[2]);
  if (ok) r = {(*v)[0], (*v)[1], (*v)[2]};
  const double sum = r.train + r.val + r.test;
  MC_CHECK(ok && r.train >= 0 && r.val >= 0 && r.test >= 0 && sum > 0, "split ratios \"", s,
           "\": expected TRAIN,VAL,TEST (non-negative, e.g. 0.8,0.1,0.1)");
  r.train /= sum, r.val /= sum, r.test /= sum;
  return r;
}

std::vector<std::string> stratified_split(const std::vector<std::string>& ids,
                                          const std::vector<int64_t>& labels,
                                          const SplitRatios& ratios, uint64_t seed) {
  std::vector<std::string> out(ids.size(), "train");
  for (const auto& [label, members] : shuffled_strata(ids, labels, seed)) {
    const int64_t n = int64_t(members.size());
    int64_t n_test = std::llround(double(n) * ratios.test);
    int64_t n_val = std::llround(double(n) * ratios.val);
    const int wanted = (ratios.train > 0) + (ratios.val > 0) + (ratios.test > 0);
    if (n >= wanted) {  // a rare class still shows up in every split that asked for any
      if (ratios.test > 0) n_test = std::max<int64_t>(n_test, 1);
      if (ratios.val > 0) n_val = std::max<int64_t>(n_val, 1);
    }
    n_test = std::min(n_test, n);
    n_val = std::min(n_val, n - n_test);
    if (ratios.train > 0 && n >= wanted && n_test + n_val >= n) {  // keep one for training
      if (n_val >= n_test) --n_val;
      else --n_test;
    }
    for (int64_t i = 0; i < n; ++i)
      out[members[size_t(i)]] = i < n_test ? "test" : i < n_test + n_val ? "val" : "train";
  }
  return out;
}

std::vector<int> stratified_folds(const std::vector<std::string>& ids,
                                  const std::vector<int64_t>& labels, int k, uint64_t seed) {
  MC_CHECK(k >= 2, "k folds: k must be at least 2, got ", k);
  std::vector<int> fold(ids.size(), 0);
  int next = 0;  // continues across classes so the folds stay equal in size
  for (const auto& [label, members] : shuffled_strata(ids, labels, seed))
    for (size_t i : members) fold[i] = next++ % k;
  return fold;
}

std::map<std::string, std::string> read_split_file(const std::string& path) {
  const CsvTable t = read_csv(path, {.header = false, .comments = true, .what = "split file"});
  std::map<std::string, std::string> out;
  bool first = true;
  for (const CsvRow& row : t.rows) {
    const auto& f = row.cells;
    std::string line;
    for (const auto& c : f) line += (line.empty() ? "" : ",") + c;
    MC_CHECK(f.size() == 2 && !f[0].empty() && !f[1].empty(), t.where(row),
             ": expected two fields \"id,split\", got \"", line, "\"");
    if (first && (f[1] == "split" || f[1] == "fold")) {
      first = false;
      continue;
    }
    first = false;
    MC_CHECK(out.emplace(f[0], f[1]).second, t.where(row), ": duplicate subject ", f[0]);
  }
  MC_CHECK(!out.empty(), path, ": no subjects in the split file");
  return out;
}

}  // namespace mc::io
