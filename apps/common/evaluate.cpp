#include "apps/common/evaluate.h"

#include <cmath>
#include <memory>

#include "engine/metrics.h"
#include "io/loader.h"
#include "io/progress.h"

namespace mc {

Predictions predict_cache(nn::Module& model, const std::string& cache_path, int batch, Device dev,
                          const std::string& label) {
  LoaderOptions lo;
  lo.batch = batch;
  lo.sampling = Sampling::Sequential;
  lo.drop_last = false;
  lo.workers = 1;
  lo.device = dev;
  Loader loader(cache_path, lo);
  const int64_t N = loader.cache().size();
  Predictions p;
  std::vector<float> logits;
  std::vector<int64_t> labels;
  std::unique_ptr<Progress> bar;
  if (!label.empty()) bar = std::make_unique<Progress>(label, loader.steps_per_epoch());
  model.eval();
  NoGradGuard ng;
  int64_t K = 0;
  while (auto b = loader.next()) {
    Tensor out = model.forward(b->images).to(Device::cpu()).to(DType::F32);
    K = out.size(1);
    auto v = out.to_vector<float>();
    logits.insert(logits.end(), v.begin(), v.end());
    auto l = b->labels.to_vector<int64_t>();
    labels.insert(labels.end(), l.begin(), l.end());
    p.ids.insert(p.ids.end(), b->ids.begin(), b->ids.end());
    if (bar) bar->tick();
  }
  if (bar) bar->finish();
  MC_CHECK(int64_t(labels.size()) == N, "predict: ", labels.size(), " predictions for ", N,
           " subjects in ", cache_path);
  p.labels = Tensor::from(labels, {N});
  p.logits = Tensor::from(logits, {N, K});
  return p;
}

std::vector<double> log_prior(const std::vector<int64_t>& counts) {
  int64_t total = 0;
  for (int64_t c : counts) total += c;
  std::vector<double> lp;
  for (size_t k = 0; k < counts.size(); ++k) {
    MC_CHECK(counts[k] > 0, "class ", k, " has no training samples: its prior is undefined");
    lp.push_back(std::log(double(counts[k]) / double(total)));
  }
  return lp;
}

Tensor posthoc_probabilities(const Tensor& logits, const std::vector<int64_t>& train_counts, double tau2) {
  std::vector<double> off = log_prior(train_counts);
  for (double& o : off) o *= -tau2;
  return softmax_with_offset(logits, off, true);
}

}  // namespace mc
