// Loader: sampling, sharding and the prefetching worker pipeline (contract in loader.h).
//
// Pipeline. Jobs are numbered from the start epoch: job j is step j % S of epoch
// start + j / S (S = steps per epoch), so workers run on into the next epoch while the caller
// evaluates. A worker takes a free ring slot and the next job number in one locked step, so the
// slots always hold the lowest unfinished jobs and the job the caller waits for is being built
// or ready: no deadlock however the workers are scheduled. The caller takes jobs strictly in order.
#include "io/loader.h"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <numeric>
#include <thread>

#include "engine/dispatch.h"
#include "engine/memory.h"
#include "engine/random.h"

namespace mc::io {

namespace {

constexpr uint64_t kSamplingTag = 0x5A3D'0000'0000'0001ull;  // keeps sampling apart from augmentation

// ---------------------------------------------------------------- ring slots
// Images and labels live in page-locked host buffers when a GPU is usable (engine/memory.h), so
// a batch goes up on the device's copy stream without blocking the host; the slot returns to
// the ring once the copy has read it.
struct Slot {
  HostBuffer image_buf, label_buf;
  float* images;
  int64_t* label_data;
  int64_t b = 0, epoch = 0, step = 0;
  std::vector<int64_t> labels, indices, positions;
  std::vector<float> tscores;  // NaN when unknown
  std::vector<std::string> ids;
  std::vector<kernels::AugmentParams> params;
  Slot(size_t floats, int batch, bool want_pinned)
      : image_buf(floats * sizeof(float), want_pinned),
        label_buf(size_t(batch) * sizeof(int64_t), want_pinned),
        images(static_cast<float*>(image_buf.data())),
        label_data(static_cast<int64_t*>(label_buf.data())) {}
};

// Shared with the keep-alive handles of returned batches, so a batch may outlive the loader.
struct Ring {
  std::mutex m;
  std::condition_variable cv;
  std::vector<std::unique_ptr<Slot>> slots;
  std::vector<int> free;
};

}  // namespace

// ---------------------------------------------------------------- sampling and sharding
std::vector<int64_t> epoch_order(const std::vector<int64_t>& labels, int num_classes,
                                 Sampling sampling, uint64_t seed, int64_t epoch,
                                 int64_t epoch_samples) {
  const int64_t N = int64_t(labels.size());
  Generator g;
  g.set_state(seed ^ kSamplingTag, uint64_t(epoch) << 40);  // 2^40 draws per epoch
  std::vector<int64_t> order;
  if (sampling != Sampling::ClassBalanced) {
    const int64_t L = epoch_samples > 0 ? epoch_samples : N;
    std::vector<int64_t> perm(static_cast<size_t>(N));
    while (int64_t(order.size()) < L && N > 0) {
      std::iota(perm.begin(), perm.end(), 0);
      if (sampling == Sampling::Shuffle) shuffle(perm, g);
      order.insert(order.end(), perm.begin(), perm.begin() + std::min(N, L - int64_t(order.size())));
    }
    return order;
  }

  std::vector<std::vector<int64_t>> members(size_t(std::max(num_classes, 0)));
  for (int64_t i = 0; i < N; ++i) {
    const int64_t y = labels[size_t(i)];
    MC_CHECK(y >= -1 && y < num_classes, "class-balanced sampling: label ", y, " of sample ", i,
             " is outside [0, ", num_classes, ") and not -1 (unknown)");
    if (y >= 0) members[size_t(y)].push_back(i);
  }
  std::vector<int64_t> classes;
  int64_t labelled = 0;
  for (int c = 0; c < num_classes; ++c)
    if (!members[size_t(c)].empty()) {
      classes.push_back(c);
      labelled += int64_t(members[size_t(c)].size());
    }
  MC_CHECK(!classes.empty(), "class-balanced sampling needs labelled samples; all ", N, " are unknown");
  const int64_t L = epoch_samples > 0 ? epoch_samples : labelled;
  std::vector<size_t> cursor(members.size(), 0);
  for (int64_t c : classes) shuffle(members[size_t(c)], g);
  std::vector<int64_t> block = classes;
  while (int64_t(order.size()) < L) {
    shuffle(block, g);
    for (int64_t c : block) {
      if (int64_t(order.size()) == L) break;
      auto& m = members[size_t(c)];
      if (cursor[size_t(c)] == m.size()) {  // class exhausted: walk a fresh permutation
        shuffle(m, g);
        cursor[size_t(c)] = 0;
      }
      order.push_back(m[cursor[size_t(c)]++]);
    }
  }
  return order;
}

std::vector<std::vector<int64_t>> shard_batches(int64_t order_size, int batch, int rank, int world,
                                                bool drop_last) {
  MC_CHECK(batch > 0 && world > 0 && rank >= 0 && rank < world, "loader: bad batch ", batch,
           " / rank ", rank, " of world ", world);
  std::vector<std::vector<int64_t>> out;
  if (order_size <= 0) return out;
  const int64_t G = int64_t(batch) * world;
  const int64_t L = drop_last ? order_size / G * G : (order_size + world - 1) / world * world;
  for (int64_t start = 0; start < L; start += G) {
    const int64_t per_rank = std::min<int64_t>(batch, (L - start) / world);
    std::vector<int64_t> positions(static_cast<size_t>(per_rank));
    std::iota(positions.begin(), positions.end(), start + rank * per_rank);
    out.push_back(std::move(positions));
  }
  return out;
}

std::vector<float> balaug_strengths(const std::vector<int64_t>& counts, double power, double cap) {
  const int64_t n_max = counts.empty() ? 0 : *std::max_element(counts.begin(), counts.end());
  std::vector<float> s(counts.size(), 1.0f);
  for (size_t c = 0; c < counts.size(); ++c)
    if (n_max > 0)
      s[c] = float(counts[c] > 0 ? std::min(cap, std::pow(double(n_max) / double(counts[c]), power)) : cap);
  return s;
}

// ---------------------------------------------------------------- the loader
struct Loader::State {
  Cache cache;
  LoaderOptions o;
  std::vector<int64_t> labels;
  std::vector<float> strength;  // per class
  int64_t order_size = 0;
  std::vector<std::vector<int64_t>> batches;  // this rank's positions per step (every epoch)
  bool augment_on_gpu = false;

  std::shared_ptr<Ring> ring = std::make_shared<Ring>();
  // Guarded by ring->m:
  int64_t start_epoch = 0, next_job = 0;
  int in_flight = 0;
  bool stop = false;
  std::map<int64_t, int> ready;  // job -> slot
  std::map<int64_t, std::shared_ptr<const std::vector<int64_t>>> orders;  // epoch -> order
  std::exception_ptr error;
  int64_t error_job = 0;
  std::vector<std::thread> threads;
  // The caller's position, and its buffer when it builds batches itself (workers == 0):
  int64_t cur_epoch = 0, next_step = 0;
  std::vector<float> caller_scratch;

  State(Cache c, const LoaderOptions& opts) : cache(std::move(c)), o(opts) {}
  int64_t spe() const { return int64_t(batches.size()); }
  size_t slot_floats() const { return size_t(o.batch) * size_t(cache.volume_numel()); }

  std::shared_ptr<const std::vector<int64_t>> order_of(int64_t epoch) {  // holds ring->m
    auto it = orders.find(epoch);
    if (it != orders.end()) return it->second;
    auto order = std::make_shared<const std::vector<int64_t>>(
        epoch_order(labels, o.num_classes, o.sampling, o.seed, epoch, o.epoch_samples));
    orders.erase(orders.begin(), orders.lower_bound(epoch - 1));
    orders.emplace(epoch, order);
    return order;
  }

  void fill(Slot& slot, int64_t job, const std::vector<int64_t>& order, std::vector<float>& scratch) {
    const Shape vs = cache.volume_shape();
    const int64_t vn = cache.volume_numel();
    const std::vector<int64_t>& positions = batches[size_t(job % spe())];
    slot.b = int64_t(positions.size());
    slot.epoch = start_epoch + job / spe();
    slot.step = job % spe();
    slot.positions = positions;
    slot.indices.clear(), slot.labels.clear(), slot.ids.clear(), slot.params.clear(), slot.tscores.clear();
    for (int64_t pos : positions) {
      const int64_t idx = order[size_t(pos % int64_t(order.size()))];
      const CacheRecord& r = cache.record(idx);
      slot.indices.push_back(idx);
      slot.label_data[slot.labels.size()] = r.label;
      slot.labels.push_back(r.label);
      slot.tscores.push_back(float(r.tscore));
      slot.ids.push_back(r.id);
      if (!o.augment) continue;
      const float s = o.balaug && r.label >= 0 ? strength[size_t(r.label)] : 1.0f;
      const uint64_t key = kernels::augment_sample_key(o.seed, slot.epoch, pos);
      slot.params.push_back(kernels::augment_params(
          kernels::draw_augment(o.aug, s, key, vs[1], vs[2], vs[3]), vs[1], vs[2], vs[3]));
    }
    const bool cpu_augment = o.augment && !augment_on_gpu;
    float* dst = cpu_augment ? (scratch.resize(size_t(slot.b * vn)), scratch.data()) : slot.images;
    for (int64_t j = 0; j < slot.b; ++j) cache.read_f32(slot.indices[size_t(j)], dst + j * vn);
    if (cpu_augment)
      kernels::cpu::augment(dst, slot.images, slot.params.data(), slot.b, vs[0], vs[1], vs[2], vs[3],
                            nullptr);
    if (o.sample_hook)
      for (int64_t j = 0; j < slot.b; ++j)
        o.sample_hook(cache.record(slot.indices[size_t(j)]), slot.images + j * vn, vn);
  }

  void worker() {
    // Workers build batches side by side: split the cores between them for the OpenMP kernel.
    omp_set_num_threads(std::max(1, omp_get_num_procs() / std::max(1, o.workers)));
    std::vector<float> scratch;
    for (;;) {
      int slot_index;
      Slot* slot;
      int64_t job;
      std::shared_ptr<const std::vector<int64_t>> order;
      {
        std::unique_lock lock(ring->m);
        ring->cv.wait(lock, [&] { return stop || (!ring->free.empty() && spe() > 0); });
        if (stop) return;
        slot_index = ring->free.back();
        ring->free.pop_back();
        slot = ring->slots[size_t(slot_index)].get();
        job = next_job++;
        ++in_flight;
        try {
          order = order_of(start_epoch + job / spe());
        } catch (...) {
          fail(job, slot_index);
          return;
        }
      }
      try {
        fill(*slot, job, *order, scratch);
      } catch (...) {
        std::lock_guard lock(ring->m);
        fail(job, slot_index);
        return;
      }
      {
        std::lock_guard lock(ring->m);
        ready[job] = slot_index;
        --in_flight;
      }
      ring->cv.notify_all();
    }
  }

  void fail(int64_t job, int slot_index) {  // holds ring->m, inside a catch block
    if (!error || job < error_job) {
      error = std::current_exception();
      error_job = job;
    }
    stop = true;  // no new jobs; batches before the failed one still arrive
    --in_flight;
    ring->free.push_back(slot_index);
    ring->cv.notify_all();
  }

  void start(int64_t epoch) {
    {
      std::lock_guard lock(ring->m);
      start_epoch = cur_epoch = epoch;
      next_step = next_job = 0;
      stop = false;
      error = nullptr;
    }
    for (int i = 0; i < o.workers; ++i) threads.emplace_back([this] { worker(); });
  }

  void halt() {
    {
      std::lock_guard lock(ring->m);
      stop = true;
    }
    ring->cv.notify_all();
    for (auto& t : threads) t.join();
    threads.clear();
    std::lock_guard lock(ring->m);
    for (const auto& [job, slot] : ready) ring->free.push_back(slot);
    ready.clear();
    in_flight = 0;
  }
};

Loader::Loader(const std::string& cache_path, const LoaderOptions& opts, int64_t start_epoch)
    : Loader(Cache::open(cache_path), opts, start_epoch) {}

Loader::Loader(Cache cache, const LoaderOptions& opts, int64_t start_epoch)
    : s_(std::make_unique<State>(std::move(cache), opts)) {
  State& s = *s_;
  const LoaderOptions& o = s.o;
  MC_CHECK(o.workers >= 0 && o.prefetch >= 1, "loader: workers (", o.workers, ") must be at least 0 and prefetch (",
           o.prefetch, ") at least 1");
  MC_CHECK(o.num_classes >= 1, "loader: num_classes must be at least 1, got ", o.num_classes);
  s.labels = s.cache.labels();
  const auto counts = s.cache.class_counts(o.num_classes);  // also checks the label range
  s.strength = balaug_strengths(counts, o.balaug_power, o.balaug_cap);
  s.order_size = int64_t(epoch_order(s.labels, o.num_classes, o.sampling, o.seed, 0, o.epoch_samples).size());
  s.batches = shard_batches(s.order_size, o.batch, o.rank, o.world, o.drop_last);
  MC_CHECK(!o.device.is_cuda() || kCudaBuilt, "loader: device ", o.device.str(),
           " but this build has no CUDA backend");
  s.augment_on_gpu = o.augment && o.augment_on_device && o.device.is_cuda();
  for (int i = 0; i < o.prefetch; ++i) {
    s.ring->slots.push_back(std::make_unique<Slot>(s.slot_floats(), o.batch, o.pinned));
    s.ring->free.push_back(i);
  }
  s.start(start_epoch);
}

Loader::~Loader() { s_->halt(); }

void Loader::set_epoch(int64_t epoch) {
  {
    std::lock_guard lock(s_->ring->m);
    if (epoch == s_->cur_epoch && s_->next_step == 0) return;
  }
  s_->halt();
  s_->start(epoch);
}

int64_t Loader::epoch() const { return s_->cur_epoch; }
int64_t Loader::steps_per_epoch() const { return s_->spe(); }
const Cache& Loader::cache() const { return s_->cache; }
const LoaderOptions& Loader::options() const { return s_->o; }

std::optional<Batch> Loader::next() {
  State& s = *s_;
  std::unique_lock lock(s.ring->m);
  if (s.next_step == s.spe()) {  // end of the epoch; the next call reads the following one
    ++s.cur_epoch;
    s.next_step = 0;
    return std::nullopt;
  }
  const int64_t job = (s.cur_epoch - s.start_epoch) * s.spe() + s.next_step;
  auto grow = [&] {  // the caller holds every slot: grow the ring instead of waiting forever
    s.ring->slots.push_back(std::make_unique<Slot>(s.slot_floats(), s.o.batch, s.o.pinned));
    s.ring->free.push_back(int(s.ring->slots.size() - 1));
    s.ring->cv.notify_all();
  };
  if (s.o.workers == 0) {  // no workers: build the batch here, in the caller's thread
    if (s.ring->free.empty()) grow();
    const int slot_index = s.ring->free.back();
    s.ring->free.pop_back();
    Slot* slot = s.ring->slots[size_t(slot_index)].get();
    const auto order = s.order_of(s.cur_epoch);
    lock.unlock();
    try {
      s.fill(*slot, job, *order, s.caller_scratch);
    } catch (...) {
      lock.lock();
      s.ring->free.push_back(slot_index);
      throw;
    }
    lock.lock();
    s.ready[job] = slot_index;
  }
  for (;;) {
    if (s.ready.count(job)) break;
    if (s.error && s.error_job <= job) std::rethrow_exception(s.error);
    if (s.ring->free.empty() && s.in_flight == 0 && !s.stop) grow();
    s.ring->cv.wait(lock);
  }
  const int slot_index = s.ready.at(job);
  s.ready.erase(job);
  ++s.next_step;
  Slot& slot = *s.ring->slots[size_t(slot_index)];
  lock.unlock();

  // The slot goes back to the ring when the last tensor viewing it is released.
  std::shared_ptr<void> keep(static_cast<void*>(&slot), [ring = s.ring, slot_index](void*) {
    {
      std::lock_guard g(ring->m);
      ring->free.push_back(slot_index);
    }
    ring->cv.notify_all();
  });
  Batch out;
  Shape shape{slot.b};
  for (int64_t d : s.cache.volume_shape()) shape.push_back(d);
  out.ids = slot.ids;
  out.indices = slot.indices;
  out.positions = slot.positions;
  out.augment = slot.params;
  out.epoch = slot.epoch;
  out.step = slot.step;
  const Device dev = s.o.device;
  out.tscores = Tensor::from(slot.tscores, {slot.b});
  if (dev.is_cpu()) {
    out.images = Tensor::from_blob(slot.images, shape, DType::F32, std::move(keep));
    out.labels = Tensor::from(slot.labels, {slot.b});
    return out;
  }
  out.tscores = upload(out.tscores, dev);  // a few floats: the regression head's targets
  // Asynchronous uploads (engine/memory.h): they hold the slot until their copies have read it,
  // and the device's stream waits for them, so nothing here syncs the host.
  out.labels = upload(Tensor::from_blob(slot.label_data, {slot.b}, DType::I64, keep), dev);
  const Tensor raw = upload(Tensor::from_blob(slot.images, shape, DType::F32, std::move(keep)), dev);
  if (!s.augment_on_gpu) {
    out.images = raw;
    return out;
  }
  const std::vector<kernels::AugmentParams> params = slot.params;  // the slot may be reused soon
  out.images = Tensor::empty(shape, DType::F32, dev);
  const Shape& vs = s.cache.volume_shape();
  // On the device's stream, after the upload: `raw` may be released while the kernel still
  // reads it (the allocator reuses blocks in that stream's order).
  MC_DISPATCH(dev, augment, raw.data<float>(), out.images.data<float>(), params.data(), shape[0],
              vs[0], vs[1], vs[2], vs[3]);
  return out;
}

// ---------------------------------------------------------------- throughput
double measure_loader_throughput(const std::string& cache, int batch, int workers, bool augment,
                                 int batches) {
  MC_CHECK(batches >= 2, "measure_loader_throughput: needs at least 2 batches, got ", batches);
  LoaderOptions o;
  o.batch = batch;
  o.workers = workers;
  o.augment = augment;
  o.drop_last = false;  // at least one batch per epoch whatever the cache size
  Loader loader(cache, o);
  using Clock = std::chrono::steady_clock;
  Clock::time_point t0;
  int64_t volumes = 0;
  for (int got = 0; got < batches;) {
    std::optional<Batch> b = loader.next();
    if (!b) continue;
    if (got++ == 0) t0 = Clock::now();
    else volumes += b->images.size(0);
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return seconds > 0 ? double(volumes) / seconds : 0.0;
}

}  // namespace mc::io
