// Training/evaluation loader over a dataset cache: epoch sampling order, data-parallel sharding,
// augmentation, and background workers that prefetch batches into a ring of pinned buffers.
//
// Determinism: everything random is a function of (seed, epoch, position in the epoch's global
// order). The order itself depends on (seed, epoch, sampling, labels) only; each sample's
// augmentation on (seed, epoch, position) (kernels::augment_sample_key). So a batch is the same
// for any number of workers, on the CPU or GPU path (to rounding), and for any world size (a
// position is augmented the same whichever rank draws it).
//
// Sampling (one epoch's global order):
//   Sequential      0, 1, ..., N-1 (evaluation)
//   Shuffle         a Fisher-Yates permutation of 0..N-1
//   ClassBalanced   the paper's "resample": classes are drawn uniformly, then a subject within
//                   the class. Drawn as consecutive blocks, each holding every non-empty class
//                   once in random order (so every window of a batch is balanced up to one
//                   block), and within a class subjects are walked through a reshuffled
//                   permutation (all members seen before any repeats). Length N (of the labelled
//                   samples) unless epoch_samples says otherwise. Unknown labels (-1) are skipped.
// Sharding (rank r of world W, per-rank batch B): global step s covers positions
// [s*B*W, (s+1)*B*W) and rank r takes the r-th slice of B. With drop_last the incomplete tail is
// dropped; otherwise the order is padded (wrapping to its start) to a multiple of W and the tail
// split evenly, so every rank runs the same number of steps (collectives need that).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/tensor.h"
#include "io/cache.h"
#include "kernels/augment.h"

namespace mc::io {

enum class Sampling { Sequential, Shuffle, ClassBalanced };

struct LoaderOptions {
  int batch = 8;  // per rank
  Sampling sampling = Sampling::Shuffle;
  uint64_t seed = 0;
  int rank = 0, world = 1;
  bool drop_last = true;
  int64_t epoch_samples = 0;  // global order length; 0 = N (labelled N when class-balanced)
  int num_classes = 3;        // labels must lie in [0, num_classes) or be -1

  bool augment = false;
  kernels::AugmentConfig aug;
  // balaug: per-class strength s_c = min(balaug_cap, (n_max / n_c)^balaug_power) (augment.h says
  // how s scales probabilities and magnitudes); unknown labels get 1.
  bool balaug = false;
  double balaug_power = 0.5, balaug_cap = 2.0;

  int workers = 2;   // background threads, each building whole batches; 0 = built in next()
  int prefetch = 4;  // ring slots (batches ready or being built ahead of the consumer)
  bool pinned = true;  // page-locked ring buffers when a GPU is usable (fast async copies)

  // Where next() delivers. On a CUDA device the raw batch (images and labels) goes up from its
  // page-locked slot on the device's copy stream, ordered by events (mc::upload: next() never
  // waits for the copy), and, when augment and augment_on_device, is augmented there by
  // kernels::cuda::augment (same params as the CPU path).
  Device device = Device::cpu();
  bool augment_on_device = true;

  // Optional per-sample hook, run in the worker threads (so it must be thread-safe) on each f32
  // volume after CPU augmentation (before it on the GPU path): extra preprocessing or checks.
  // An exception it throws reaches the caller of next() for that batch.
  std::function<void(const CacheRecord&, float* volume, int64_t numel)> sample_hook;
};

struct Batch {
  Tensor images;  // f32 [b, C, D, H, W] (b < batch only for a final partial batch)
  Tensor labels;  // i64 [b]
  Tensor tscores; // f32 [b], NaN when unknown: the regression head's targets
  std::vector<std::string> ids;
  std::vector<int64_t> indices;    // cache indices
  std::vector<int64_t> positions;  // positions in the epoch's global order (augmentation keys)
  std::vector<kernels::AugmentParams> augment;  // each sample's transform; empty: augment off
  int64_t epoch = 0, step = 0;
};

// One epoch's global sample order (same on every rank).
std::vector<int64_t> epoch_order(const std::vector<int64_t>& labels, int num_classes,
                                 Sampling sampling, uint64_t seed, int64_t epoch,
                                 int64_t epoch_samples = 0);
// This rank's batches of an order of `order_size` positions; a position p >= order_size is
// padding and reads order[p % order_size].
std::vector<std::vector<int64_t>> shard_batches(int64_t order_size, int batch, int rank, int world,
                                                bool drop_last);
// balaug strengths per class (1 for all when counts are equal or empty).
std::vector<float> balaug_strengths(const std::vector<int64_t>& class_counts, double power, double cap);

class Loader {
 public:
  Loader(const std::string& cache_path, const LoaderOptions& opts, int64_t start_epoch = 0);
  Loader(Cache cache, const LoaderOptions& opts, int64_t start_epoch = 0);
  ~Loader();  // stops and joins the workers; batches still held stay valid
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  // Moves to `epoch` (no-op when it is the one about to be read from its first batch); any
  // other jump discards prefetched batches and restarts the workers there.
  void set_epoch(int64_t epoch);
  int64_t epoch() const;
  int64_t steps_per_epoch() const;
  // The next batch of the current epoch, or nullopt at its end (the following call starts the
  // next epoch, already prefetched). A worker's exception is rethrown here, with its message.
  // CPU batches are zero-copy views of a ring slot, returned to the ring when the last tensor
  // referring to it goes; holding more batches than `prefetch` grows the ring.
  std::optional<Batch> next();

  const Cache& cache() const;
  const LoaderOptions& options() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

// Steady-state CPU loader throughput in volumes/s: a Shuffle loader on `cache` (workers,
// augmentation with the default AugmentConfig when `augment`), timed from the first batch to
// the last of `batches` (>= 2), so start-up is excluded. Prints nothing; never asserts.
double measure_loader_throughput(const std::string& cache, int batch, int workers, bool augment,
                                 int batches);

}  // namespace mc::io
