#include "pipeline/predictions.h"

#include <algorithm>
#include <filesystem>
#include <memory>

#include "engine/autograd.h"
#include "engine/dist.h"
#include "io/cache.h"
#include "io/loader.h"
#include "io/progress.h"
#include "io/task.h"
#include "pipeline/model.h"

namespace mc::pipeline {
namespace fs = std::filesystem;

std::vector<std::string> cache_class_names(const io::Cache& cache, int64_t K) {
  if (const auto t = io::task_from_meta(cache.meta(), cache.path()); t && t->num_outputs() == K && !t->regression())
    return t->classes;
  if (K == 1) return {"tscore"};
  // Caches from before tasks were data are WHO-banded: their three classes keep those names.
  if (!cache.meta().count("task.classes") && K == io::Task::who().num_classes()) return io::Task::who().classes;
  std::vector<std::string> n;
  for (int64_t k = 0; k < K; ++k) n.push_back(std::to_string(k));
  return n;
}

eval::PredictionTable predict_cache(nn::Module& model, const std::string& cache_path, int batch, Device dev,
                              const std::string& label, int rank, int world, const std::vector<Flip>& flips) {
  io::LoaderOptions lo;
  lo.batch = batch;
  lo.sampling = io::Sampling::Sequential;
  lo.drop_last = false;
  lo.workers = 1;
  lo.device = dev;
  lo.rank = rank;
  lo.world = world;
  // Sequential order needs no class counts, but the loader checks labels against a class count:
  // the cache's own (any task).
  io::Cache cache = io::Cache::open(cache_path);
  for (int64_t y : cache.labels()) lo.num_classes = std::max<int>(lo.num_classes, int(y) + 1);
  io::Loader loader(std::move(cache), lo);
  const int64_t N = loader.cache().size();
  eval::PredictionTable p;
  p.source = cache_path;
  p.kind = eval::ScoreKind::Logits;
  std::unique_ptr<io::Progress> bar;
  if (!label.empty()) bar = std::make_unique<io::Progress>(label, loader.steps_per_epoch());
  model.eval();
  NoGradGuard ng;
  int64_t K = 0;
  const auto params = model.parameters();
  const DType dt = params.empty() ? DType::F32 : params[0]->dtype();  // f64 in golden runs
  while (auto b = loader.next()) {
    Tensor out = flips.empty() ? model.forward(model_input(b->images, dev).to(dt)).to(Device::cpu()).to(DType::F32)
                               : tta_logits(model, b->images, dev, flips);
    K = out.size(1);
    for (float v : out.to_vector<float>()) p.scores.push_back(v);
    for (int64_t l : b->labels.to_vector<int64_t>()) p.labels.push_back(l);
    p.ids.insert(p.ids.end(), b->ids.begin(), b->ids.end());
    p.indices.insert(p.indices.end(), b->indices.begin(), b->indices.end());
    if (bar) bar->tick();
  }
  if (bar) bar->finish();
  MC_CHECK(world > 1 || p.size() == N, "predict: ", p.size(), " predictions for ", N, " subjects in ", cache_path);
  p.class_names = cache_class_names(loader.cache(), K);
  return p;
}

eval::PredictionTable gather_predictions(Communicator& comm, const eval::PredictionTable& mine, int64_t N) {
  const int64_t K = mine.num_classes();
  const auto scores = all_gather(comm, mine.scores);
  const auto labels = all_gather(comm, mine.labels);
  const auto indices = all_gather(comm, mine.indices);
  const auto ids = all_gather(comm, mine.ids);
  MC_CHECK(labels.size() == indices.size() && ids.size() == indices.size() &&
               scores.size() == indices.size() * size_t(K),
           "gather_predictions: ranks disagree on the number of classes or rows");
  std::vector<int64_t> row_of(size_t(N), -1);
  for (size_t r = 0; r < indices.size(); ++r) row_of[size_t(indices[r])] = int64_t(r);
  eval::PredictionTable p;
  p.source = mine.source;
  p.class_names = mine.class_names;
  p.kind = mine.kind;
  for (int64_t i = 0; i < N; ++i) {
    const int64_t r = row_of[size_t(i)];
    MC_CHECK(r >= 0, "gather_predictions: subject ", i, " was predicted by no rank");
    p.ids.push_back(ids[size_t(r)]);
    p.indices.push_back(i);
    p.labels.push_back(labels[size_t(r)]);
    p.scores.insert(p.scores.end(), scores.begin() + r * K, scores.begin() + (r + 1) * K);
  }
  return p;
}

eval::PredictionTable predict_split(LoadedModel& m, const Config& cfg, const std::string& split, bool progress,
                              const std::vector<Flip>& flips) {
  MC_CHECK(split == "test" || split == "val" || split == "train", "unknown split '", split,
           "' (allowed: test, val, train)");
  const std::string cache = split_cache_path(cfg.data, split);
  MC_CHECK(fs::exists(cache), "the ", split, " cache '", cache, "' not found: run mc_prep first (or set data.",
           split, "_cache)");
  const int64_t chans = io::Cache::open(cache).volume_shape()[0];
  MC_CHECK(chans == m.in_chans, "the ", split, " cache '", cache, "' holds ", chans,
           " channel(s) per volume but the model takes ", m.in_chans, " (model.in_chans)");
  return predict_cache(*m.model, cache, cfg.train.batch_size, m.device, progress ? "predict " + split : "", 0, 1, flips);
}

}  // namespace mc::pipeline
