#include "io/loader.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "test_util.h"

namespace mc::io {
namespace {

// A cache of `counts[c]` subjects per class (plus `unknown` unlabelled ones), volumes [C, n, n, n].
std::string make_cache(const std::string& dir, std::vector<int> counts, int unknown = 0, int n = 6,
                       int C = 1, const std::string& name = "train.mcc") {
  std::vector<CacheRecord> records;
  std::vector<Tensor> volumes;
  int i = 0;
  for (size_t c = 0; c <= counts.size(); ++c)
    for (int k = 0; k < (c < counts.size() ? counts[c] : unknown); ++k, ++i) {
      records.push_back({"s" + std::to_string(i), c < counts.size() ? int64_t(c) : -1, -1.0 * i});
      volumes.push_back(test::uniform({C, n, n, n}, uint64_t(100 + i), 0.0, 1.0));
    }
  const std::string path = dir + "/" + name;
  write_cache(path, records, volumes, {});
  return path;
}

std::vector<Batch> one_epoch(Loader& l) {
  std::vector<Batch> out;
  while (auto b = l.next()) out.push_back(std::move(*b));
  return out;
}

void expect_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].ids, b[i].ids) << "batch " << i;
    EXPECT_EQ(a[i].labels.to_vector<int64_t>(), b[i].labels.to_vector<int64_t>());
    EXPECT_EQ(a[i].images.to_vector<float>(), b[i].images.to_vector<float>()) << "batch " << i;
  }
}

LoaderOptions augmenting(uint64_t seed) {
  LoaderOptions o;
  o.batch = 4;
  o.seed = seed;
  o.augment = true;
  o.aug.noise_p = 1;  // make every transform likely, so differences would show
  o.aug.rotate_p = 0.7f;
  return o;
}

TEST(Loader, SameSeedGivesIdenticalBatchesAndDifferentSeedsDiffer) {
  const std::string path = make_cache(test::temp_dir(), {3, 7, 14});
  Loader a(path, augmenting(7)), b(path, augmenting(7)), c(path, augmenting(8));
  for (int epoch = 0; epoch < 2; ++epoch) {
    const auto ea = one_epoch(a), eb = one_epoch(b), ec = one_epoch(c);
    expect_same(ea, eb);
    ASSERT_EQ(ea.size(), 6u);
    EXPECT_NE(ea[0].indices, ec[0].indices);
    EXPECT_NE(ea[0].images.to_vector<float>(), ec[0].images.to_vector<float>());
  }
  EXPECT_EQ(a.epoch(), 2);
}

TEST(Loader, WorkerCountDoesNotChangeBatches) {
  const std::string path = make_cache(test::temp_dir(), {3, 7, 14}, 2);
  LoaderOptions o = augmenting(3);
  o.sampling = Sampling::ClassBalanced;
  o.balaug = true;
  o.drop_last = false;
  o.batch = 5;
  o.workers = 1;
  Loader one(path, o);
  o.workers = 3;
  o.prefetch = 2;
  Loader three(path, o);
  o.workers = 0;  // built in the caller's thread
  Loader none(path, o);
  for (int epoch = 0; epoch < 3; ++epoch) {
    const auto reference = one_epoch(one);
    expect_same(reference, one_epoch(three));
    expect_same(reference, one_epoch(none));
  }
}

TEST(Loader, ClassBalancedSamplingIsUniform) {
  const std::string path = make_cache(test::temp_dir(), {2, 6, 16}, 3);
  LoaderOptions o;
  o.sampling = Sampling::ClassBalanced;
  o.batch = 6;
  Loader l(path, o);
  ASSERT_EQ(l.steps_per_epoch(), 4);  // 24 labelled samples
  std::map<int64_t, int64_t> count;
  std::set<int64_t> seen_rare;
  for (int epoch = 0; epoch < 40; ++epoch)
    for (const Batch& b : one_epoch(l))
      for (size_t i = 0; i < b.indices.size(); ++i) {
        const int64_t y = b.labels.to_vector<int64_t>()[i];
        ++count[y];
        if (y == 0) seen_rare.insert(b.indices[i]);
      }
  const double total = 40 * 24;
  for (int64_t y = 0; y < 3; ++y) EXPECT_NEAR(count[y] / total, 1.0 / 3, 0.01) << "class " << y;
  EXPECT_EQ(count.count(-1), 0u) << "unknown labels are never drawn";
  EXPECT_EQ(seen_rare.size(), 2u);
}

// A binary task: the rare class (3 of 16) is drawn half the time, every one of its subjects.
TEST(Loader, ClassBalancedSamplingIsUniformWithTwoClasses) {
  const std::string path = make_cache(test::temp_dir(), {3, 13}, 2);
  LoaderOptions o;
  o.sampling = Sampling::ClassBalanced;
  o.batch = 4;
  Loader l(path, o);
  ASSERT_EQ(l.steps_per_epoch(), 4);  // 16 labelled samples
  std::map<int64_t, int64_t> count;
  std::set<int64_t> seen_rare;
  for (int epoch = 0; epoch < 60; ++epoch)
    for (const Batch& b : one_epoch(l))
      for (size_t i = 0; i < b.indices.size(); ++i) {
        const int64_t y = b.labels.to_vector<int64_t>()[i];
        ++count[y];
        if (y == 0) seen_rare.insert(b.indices[i]);
      }
  const double total = 60 * 16;
  for (int64_t y = 0; y < 2; ++y) EXPECT_NEAR(count[y] / total, 0.5, 0.03) << "class " << y;
  EXPECT_EQ(count.count(-1), 0u) << "unknown labels are never drawn";
  EXPECT_EQ(seen_rare.size(), 3u);
}

TEST(Loader, SequentialAndShuffleOrders) {
  const std::vector<int64_t> labels(10, 0);
  const auto seq = epoch_order(labels, 1, Sampling::Sequential, 1, 0);
  EXPECT_EQ(seq, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  auto e0 = epoch_order(labels, 1, Sampling::Shuffle, 1, 0), e1 = epoch_order(labels, 1, Sampling::Shuffle, 1, 1);
  EXPECT_NE(e0, e1) << "each epoch reshuffles";
  std::sort(e0.begin(), e0.end());
  EXPECT_EQ(e0, seq) << "a permutation";
  EXPECT_EQ(epoch_order(labels, 1, Sampling::Shuffle, 1, 0, 25).size(), 25u);
}

TEST(Loader, ShardsPartitionTheGlobalOrder) {
  const std::string path = make_cache(test::temp_dir(), {3, 7, 14});
  for (bool drop_last : {true, false})
    for (Sampling sampling : {Sampling::Shuffle, Sampling::ClassBalanced}) {
      LoaderOptions o;
      o.batch = 3;
      o.world = 3;
      o.drop_last = drop_last;
      o.sampling = sampling;
      o.seed = 5;
      std::vector<std::vector<Batch>> shards;
      for (int r = 0; r < 3; ++r) {
        o.rank = r;
        Loader l(path, o, 2);
        shards.push_back(one_epoch(l));
      }
      const Cache cache = Cache::open(path);
      const auto order = epoch_order(cache.labels(), 3, sampling, 5, 2);
      // Global step s is rank 0's batch, then rank 1's, then rank 2's.
      std::vector<int64_t> got;
      for (size_t s = 0; s < shards[0].size(); ++s)
        for (int r = 0; r < 3; ++r) {
          ASSERT_EQ(shards[size_t(r)].size(), shards[0].size()) << "every rank runs the same steps";
          for (int64_t i : shards[size_t(r)][s].indices) got.push_back(i);
        }
      std::vector<int64_t> want(order.begin(), order.begin() + (drop_last ? 18 : 24));
      EXPECT_EQ(got, want) << "drop_last " << drop_last;
    }
  // Padding: 10 positions over 4 ranks pad to 12, the tail split evenly (1 each after 8).
  std::vector<int64_t> positions;
  for (int r = 0; r < 4; ++r) {
    const auto batches = shard_batches(10, 2, r, 4, false);
    ASSERT_EQ(batches.size(), 2u);
    EXPECT_EQ(batches[0].size(), 2u);
    EXPECT_EQ(batches[1].size(), 1u);
    for (const auto& b : batches) positions.insert(positions.end(), b.begin(), b.end());
  }
  std::sort(positions.begin(), positions.end());
  EXPECT_EQ(positions, (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
}

TEST(Loader, DropLastEpochsAndSetEpoch) {
  const std::string path = make_cache(test::temp_dir(), {3, 7, 14});
  LoaderOptions o;
  o.batch = 5;
  o.drop_last = true;
  Loader dropping(path, o);
  EXPECT_EQ(dropping.steps_per_epoch(), 4);
  o.drop_last = false;
  Loader keeping(path, o);
  const auto e0 = one_epoch(keeping);
  ASSERT_EQ(e0.size(), 5u);
  EXPECT_EQ(e0.back().images.size(0), 4);
  EXPECT_EQ(e0.back().step, 4);
  EXPECT_EQ(keeping.epoch(), 1);
  const auto e1 = one_epoch(keeping);
  EXPECT_EQ(e1.front().epoch, 1);

  // Jumping (backwards, or from mid-epoch) gives what a loader started there gives.
  keeping.next();
  keeping.set_epoch(0);
  expect_same(one_epoch(keeping), e0);
  keeping.set_epoch(5);
  Loader fresh(path, o, 5);
  expect_same(one_epoch(keeping), one_epoch(fresh));
}

TEST(Loader, AugmentationIsTheKernelWithDrawnParams) {
  const std::string path = make_cache(test::temp_dir(), {3, 7, 14}, 0, 6, 2);
  LoaderOptions o = augmenting(21);
  o.balaug = true;
  Loader aug(path, o);
  o.augment = false;
  Loader raw(path, o);
  const auto strength = balaug_strengths({3, 7, 14}, 0.5, 2.0);
  for (int epoch = 0; epoch < 2; ++epoch) {
    const auto ea = one_epoch(aug), er = one_epoch(raw);
    ASSERT_EQ(ea.size(), er.size());
    for (size_t i = 0; i < ea.size(); ++i) {
      ASSERT_EQ(ea[i].indices, er[i].indices);
      std::vector<kernels::AugmentParams> params;
      for (size_t j = 0; j < ea[i].positions.size(); ++j) {
        const auto key = kernels::augment_sample_key(21, epoch, ea[i].positions[j]);
        const float s = strength[size_t(ea[i].labels.to_vector<int64_t>()[j])];
        params.push_back(kernels::augment_params(kernels::draw_augment(o.aug, s, key, 6, 6, 6), 6, 6, 6));
      }
      Tensor want = Tensor::empty(er[i].images.shape());
      kernels::cpu::augment(er[i].images.data<float>(), want.data<float>(), params.data(),
                            int64_t(params.size()), 2, 6, 6, 6, nullptr);
      EXPECT_EQ(ea[i].images.to_vector<float>(), want.to_vector<float>());
    }
  }
}

TEST(Loader, HoldingMoreBatchesThanTheRingDoesNotDeadlock) {
  const std::string path = make_cache(test::temp_dir(), {3, 7, 14});
  LoaderOptions o;
  o.batch = 2;
  o.prefetch = 1;
  o.workers = 2;
  Loader l(path, o);
  const auto held = one_epoch(l);  // 12 batches alive at once
  EXPECT_EQ(held.size(), 12u);
  std::set<const void*> buffers;
  for (const Batch& b : held) buffers.insert(b.images.raw());
  EXPECT_EQ(buffers.size(), 12u) << "each held batch owns its slot";
}

TEST(Loader, WorkerExceptionsReachNext) {
  const std::string path = make_cache(test::temp_dir(), {3, 7, 14});
  LoaderOptions o;
  o.batch = 3;
  o.sampling = Sampling::Sequential;
  o.sample_hook = [](const CacheRecord& r, float*, int64_t) {
    MC_CHECK(r.id != "s10", "bad subject ", r.id);
  };
  for (int workers : {3, 0}) {
    o.workers = workers;
    Loader l(path, o);
    for (int i = 0; i < 3; ++i) EXPECT_TRUE(l.next().has_value()) << "batches before the failure arrive";
    for (int again = 0; again < 2; ++again) {
      try {
        l.next();
        ADD_FAILURE() << "no exception with " << workers << " workers";
      } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("bad subject s10"), std::string::npos) << e.what();
      }
    }
  }
}

TEST(Loader, BalaugStrengths) {
  const auto s = balaug_strengths({20, 110, 181}, 0.5, 2.0);  // the paper's training split
  EXPECT_FLOAT_EQ(s[0], 2.0f);  // sqrt(181/20) = 3.0, capped
  EXPECT_NEAR(s[1], std::sqrt(181.0 / 110), 1e-6);
  EXPECT_FLOAT_EQ(s[2], 1.0f);
}

TEST(Loader, GpuAugmentationMatchesCpu) {
  MC_SKIP_WITHOUT_GPU();
  const std::string path = make_cache(test::temp_dir(), {3, 7, 14}, 0, 16, 1);
  LoaderOptions o = augmenting(4);
  o.aug.rotate_p = 1;
  Loader cpu(path, o);
  o.device = Device::cuda(0);
  Loader gpu(path, o);
  const auto ec = one_epoch(cpu), eg = one_epoch(gpu);
  ASSERT_EQ(ec.size(), eg.size());
  for (size_t i = 0; i < ec.size(); ++i) {
    EXPECT_TRUE(eg[i].images.is_cuda());
    EXPECT_EQ(ec[i].labels.to_vector<int64_t>(), eg[i].labels.to_vector<int64_t>());
    EXPECT_TRUE(test::all_close(eg[i].images.to(Device::cpu()), ec[i].images, 1e-5, 1e-5));
  }
}

// The device path without augmentation: batches go up through the asynchronous uploads (page-
// locked slots, copy stream, events) and equal the CPU's, over two epochs of slot reuse.
// (Loader throughput is measured by mc_bench --case loader, never asserted.)
TEST(Loader, GpuUploadsMatchCpuAndReturnTheSlots) {
  MC_SKIP_WITHOUT_GPU();
  const std::string path = make_cache(test::temp_dir(), {3, 7, 14}, 0, 16, 1);
  LoaderOptions o;
  o.batch = 4;
  o.prefetch = 2;  // fewer slots than batches: slots are reused while uploads may be pending
  Loader cpu(path, o);
  o.device = Device::cuda(0);
  Loader gpu(path, o);
  for (int epoch = 0; epoch < 2; ++epoch) {
    const auto ec = one_epoch(cpu), eg = one_epoch(gpu);
    ASSERT_EQ(ec.size(), eg.size());
    for (size_t i = 0; i < ec.size(); ++i) {
      EXPECT_TRUE(eg[i].images.is_cuda());
      EXPECT_TRUE(eg[i].labels.is_cuda());
      EXPECT_EQ(ec[i].labels.to_vector<int64_t>(), eg[i].labels.to_vector<int64_t>());
      EXPECT_EQ(ec[i].images.to_vector<float>(), eg[i].images.to(Device::cpu()).to_vector<float>());
    }
  }
}

}  // namespace
}  // namespace mc::io
