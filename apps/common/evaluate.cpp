#include "apps/common/evaluate.h"

#include <memory>

#include "engine/dist.h"
#include "engine/metrics.h"
#include "io/loader.h"
#include "io/progress.h"

namespace mc {

Predictions predict_cache(nn::Module& model, const std::string& cache_path, int batch, Device dev,
                          const std::string& label, int rank, int world) {
  LoaderOptions lo;
  lo.batch = batch;
  lo.sampling = Sampling::Sequential;
  lo.drop_last = false;
  lo.workers = 1;
  lo.device = dev;
  lo.rank = rank;
  lo.world = world;
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
    p.indices.insert(p.indices.end(), b->indices.begin(), b->indices.end());
    if (bar) bar->tick();
  }
  if (bar) bar->finish();
  const int64_t n = int64_t(labels.size());
  MC_CHECK(world > 1 || n == N, "predict: ", n, " predictions for ", N, " subjects in ", cache_path);
  p.labels = Tensor::from(labels, {n});
  p.logits = Tensor::from(logits, {n, K});
  return p;
}

Predictions gather_predictions(Communicator& comm, const Predictions& mine, int64_t N) {
  const int64_t K = mine.logits.dim() == 2 ? mine.logits.size(1) : 0;
  const auto logits = all_gather(comm, mine.logits.to_vector<float>());
  const auto labels = all_gather(comm, mine.labels.to_vector<int64_t>());
  const auto indices = all_gather(comm, mine.indices);
  const auto ids = all_gather(comm, mine.ids);
  MC_CHECK(labels.size() == indices.size() && ids.size() == indices.size() &&
               logits.size() == indices.size() * size_t(K),
           "gather_predictions: ranks disagree on the number of classes or rows");
  std::vector<int64_t> row_of(size_t(N), -1);
  for (size_t r = 0; r < indices.size(); ++r) row_of[size_t(indices[r])] = int64_t(r);
  Predictions p;
  std::vector<float> lg;
  std::vector<int64_t> lb;
  for (int64_t i = 0; i < N; ++i) {
    const int64_t r = row_of[size_t(i)];
    MC_CHECK(r >= 0, "gather_predictions: subject ", i, " was predicted by no rank");
    p.ids.push_back(ids[size_t(r)]);
    p.indices.push_back(i);
    lb.push_back(labels[size_t(r)]);
    lg.insert(lg.end(), logits.begin() + r * K, logits.begin() + (r + 1) * K);
  }
  p.labels = Tensor::from(lb, {N});
  p.logits = Tensor::from(lg, {N, K});
  return p;
}

}  // namespace mc
