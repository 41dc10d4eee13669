// engine/metrics against sklearn 1.2 (fixtures from make_loss_metric_fixtures.py), bootstrap
// against explicit resampling, and every CUDA metric kernel against its CPU twin.
#include <gtest/gtest.h>

#include <cmath>

#include "engine/metrics.h"
#include "engine/random.h"
#include "kernels/metrics.h"
#include "losses/fixtures.h"
#include "test_util.h"

namespace mc {
namespace {

const char* kCases[] = {"random3", "tied3", "binary", "absent", "absent_unpredicted",
                        "one_per_class"};

void expect_value(const MetricValue& v, double ref, const std::string& what) {
  if (std::isnan(ref)) {
    EXPECT_FALSE(v.defined) << what << " should be undefined";
    return;
  }
  EXPECT_NEAR(v.value, ref, 1e-9) << what;
}

void expect_vector(const std::vector<MetricValue>& v, const std::vector<double>& ref,
                   const std::string& what) {
  ASSERT_EQ(v.size(), ref.size()) << what;
  for (size_t k = 0; k < v.size(); ++k) expect_value(v[k], ref[k], what + "[" + std::to_string(k) + "]");
}

void expect_matches_sklearn(const ClassificationMetrics& m, const test::Fixture& f) {
  const auto cm = f.ints("confusion");
  EXPECT_EQ(m.confusion, cm);
  expect_value(m.accuracy, f.scalar("accuracy"), "accuracy");
  expect_value(m.balanced_accuracy, f.scalar("balanced_accuracy"), "balanced_accuracy");
  for (const char* s : {"sensitivity_macro", "sensitivity_micro", "specificity_macro",
                        "specificity_micro", "f1_macro", "f1_weighted", "auc_macro"}) {
    MetricValue v;
    for (const auto& [n, x] : m.named())
      if (n == s) v = x;
    expect_value(v, f.scalar(s), s);
  }
  // sklearn's zero_division values (0) for the per-class numbers; undefined AUC is NaN there.
  ASSERT_EQ(m.sensitivity.size(), f["sensitivity"].size());
  for (size_t k = 0; k < m.sensitivity.size(); ++k) {
    EXPECT_NEAR(m.sensitivity[k].value, f["sensitivity"][k], 1e-9);
    EXPECT_EQ(m.sensitivity[k].defined, m.support[k] > 0);
    EXPECT_NEAR(m.specificity[k].value, f["specificity"][k], 1e-9);
    EXPECT_NEAR(m.f1[k].value, f["f1"][k], 1e-9);
  }
  expect_vector(m.auc, f["auc"], "auc");
  for (const MetricValue& v : {m.sensitivity_macro, m.specificity_macro, m.f1_macro, m.auc_macro})
    EXPECT_FALSE(std::isnan(v.value) && v.defined);
}

TEST(MetricsSklearn, SmallCases) {
  for (const char* name : kCases) {
    SCOPED_TRACE(name);
    const auto f = test::load_fixture(std::string("metrics_") + name);
    const int64_t K = f.integer("K");
    const auto m = classification_metrics(f.ints("labels"), f["scores"], K);
    expect_matches_sklearn(m, f);
    EXPECT_EQ(m.num_samples, f.integer("N"));
  }
}

TEST(MetricsSklearn, AbsentClassIsUndefinedNotNaN) {
  const auto f = test::load_fixture("metrics_absent");
  const auto m = classification_metrics(f.ints("labels"), f["scores"], 3);
  EXPECT_FALSE(m.auc[2].defined);
  EXPECT_TRUE(m.auc_macro.defined);
  EXPECT_NEAR(m.auc_macro.value, (m.auc[0].value + m.auc[1].value) / 2, 1e-15);
  EXPECT_FALSE(m.sensitivity[2].defined);
  bool noted = false;
  for (const auto& n : m.notes) noted |= n.find("auc[2] undefined") != std::string::npos;
  EXPECT_TRUE(noted);
}

TEST(MetricsSklearn, RocCurves) {
  for (const char* name : kCases) {
    SCOPED_TRACE(name);
    const auto f = test::load_fixture(std::string("metrics_") + name);
    const int64_t K = f.integer("K");
    for (int64_t k = 0; k < K; ++k) {
      const auto r = roc_curve(f.ints("labels"), f["scores"], K, k);
      const std::string s = std::to_string(k);
      const auto &fpr = f["roc_fpr_" + s], &tpr = f["roc_tpr_" + s], &thr = f["roc_thr_" + s];
      ASSERT_EQ(r.fpr.size(), fpr.size());
      EXPECT_EQ(r.defined, !std::isnan(fpr.back()) && !std::isnan(tpr.back()));
      for (size_t i = 0; i < fpr.size(); ++i) {
        if (std::isnan(fpr[i])) EXPECT_TRUE(std::isnan(r.fpr[i]));
        else EXPECT_NEAR(r.fpr[i], fpr[i], 1e-9);
        if (std::isnan(tpr[i])) EXPECT_TRUE(std::isnan(r.tpr[i]));
        else EXPECT_NEAR(r.tpr[i], tpr[i], 1e-9);
        EXPECT_NEAR(r.thresholds[i], thr[i], 1e-12);
      }
    }
  }
}

// The 1M-sample case from a formula shared with the fixture script (splitmix64 of the row).
uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

void large_case(int64_t N, uint64_t seed, std::vector<int64_t>& y, std::vector<double>& s) {
  y.resize(size_t(N));
  s.resize(size_t(N) * 3);
  for (int64_t i = 0; i < N; ++i) {
    const uint64_t base = uint64_t(i) * 4 + seed;
    const double u = double(splitmix64(base) >> 11) * 0x1p-53;
    y[size_t(i)] = u < 0.15 ? 0 : u < 0.5 ? 1 : 2;
    for (int k = 0; k < 3; ++k)
      s[size_t(i * 3 + k)] = double(splitmix64(base + 1 + uint64_t(k)) >> 54) / 1024.0 +
                             (y[size_t(i)] == k ? 0.25 : 0.0);
  }
}

TEST(MetricsSklearn, MillionSamples) {
  const auto f = test::load_fixture("metrics_large");
  std::vector<int64_t> y;
  std::vector<double> s;
  large_case(f.integer("N"), uint64_t(f.integer("seed")), y, s);
  int64_t label_sum = 0;
  double score_sum = 0;
  for (int64_t v : y) label_sum += v;
  for (double v : s) score_sum += v;
  ASSERT_EQ(label_sum, f.integer("label_sum")) << "generator differs from the script's";
  ASSERT_NEAR(score_sum, f.scalar("score_sum"), 1e-6);
  expect_matches_sklearn(classification_metrics(y, s, 3), f);
}

// Tensors in f32 take the same path as host doubles of the same values.
TEST(MetricsApi, TensorInputs) {
  const auto f = test::load_fixture("metrics_random3");
  const int64_t N = f.integer("N");
  Tensor scores32 = Tensor::from(f["scores"], {N, 3}).to(DType::F32);
  const auto m = classification_metrics(Tensor::from(f.ints("labels"), {N}), scores32);
  const auto h = classification_metrics(f.ints("labels"), scores32.to_vector<double>(), 3);
  EXPECT_EQ(m.confusion, h.confusion);
  for (size_t k = 0; k < 3; ++k) EXPECT_EQ(m.auc[k].value, h.auc[k].value);
}

TEST(MetricsApi, BadInputsAreErrors) {
  const std::vector<double> s{0.2, 0.8, 0.6, 0.4};
  EXPECT_THROW(classification_metrics({0, 2}, s, 2), Error);
  try {
    classification_metrics({0, 2}, s, 2);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 1 has label 2"), std::string::npos) << e.what();
  }
  EXPECT_THROW(classification_metrics({0, 1}, {0.2, NAN, 0.6, 0.4}, 2), Error);
  EXPECT_THROW(classification_metrics({0, 1}, {0.2, 0.8}, 1), Error);
  EXPECT_THROW(classification_metrics({}, {}, 2), Error);
}

TEST(MetricsApi, SoftmaxWithOffset) {
  Tensor x = Tensor::from(std::vector<float>{1, 2, 3, -1, 0, 4}, {2, 3});
  const auto p = softmax_with_offset(x, {0.5, -1, 0}).to_vector<double>();
  const double z[2][3] = {{1.5, 1, 3}, {-0.5, -1, 4}};
  for (int i = 0; i < 2; ++i) {
    const double d = std::exp(z[i][0]) + std::exp(z[i][1]) + std::exp(z[i][2]);
    for (int k = 0; k < 3; ++k) EXPECT_NEAR(p[size_t(i * 3 + k)], std::exp(z[i][k]) / d, 1e-15);
  }
  EXPECT_EQ(softmax_with_offset(x, {}, false).to_vector<double>()[5], 4.0);
}

// Resample b's metrics equal the point metrics of the rows it drew (bootstrap_draw).
TEST(MetricsBootstrap, MatchesExplicitResampling) {
  for (const char* name : {"random3", "tied3", "one_per_class"}) {
    SCOPED_TRACE(name);
    const auto f = test::load_fixture(std::string("metrics_") + name);
    const int64_t N = f.integer("N"), K = f.integer("K");
    const auto y = f.ints("labels");
    const auto& s = f["scores"];
    const BootstrapOptions o{40, 77, 0.95};
    const auto all = bootstrap_metrics(Tensor::from(y, {N}), Tensor::from(s, {N, K}), o);
    ASSERT_EQ(int64_t(all.size()), o.resamples);
    for (int64_t b = 0; b < o.resamples; ++b) {
      std::vector<int64_t> ry;
      std::vector<double> rs;
      for (int64_t i = 0; i < N; ++i) {
        const int64_t j = kernels::bootstrap_draw(o.seed, b, i, N);
        ry.push_back(y[size_t(j)]);
        rs.insert(rs.end(), s.begin() + j * K, s.begin() + (j + 1) * K);
      }
      const auto ref = classification_metrics(ry, rs, K).named();
      const auto got = all[size_t(b)].named();
      for (size_t i = 0; i < ref.size(); ++i) {
        EXPECT_EQ(got[i].second.defined, ref[i].second.defined) << ref[i].first;
        if (ref[i].second.defined) EXPECT_EQ(got[i].second.value, ref[i].second.value) << ref[i].first;
      }
    }
  }
}

TEST(MetricsBootstrap, Intervals) {
  EXPECT_DOUBLE_EQ(quantile_linear({4, 1, 3, 2}, 0.025), 1.075);  // numpy.percentile(.., 2.5)
  EXPECT_DOUBLE_EQ(quantile_linear({4, 1, 3, 2}, 0.975), 3.925);
  const auto f = test::load_fixture("metrics_random3");
  const int64_t N = f.integer("N");
  Tensor y = Tensor::from(f.ints("labels"), {N}), s = Tensor::from(f["scores"], {N, 3});
  const auto point = classification_metrics(y, s).named();
  const auto a = bootstrap_ci(y, s, {200, 1, 0.95}), b = bootstrap_ci(y, s, {200, 1, 0.95});
  const auto c = bootstrap_ci(y, s, {200, 2, 0.95});
  ASSERT_EQ(a.names.size(), point.size());
  for (size_t i = 0; i < point.size(); ++i) {
    const Interval &ia = a.intervals[i], &ib = b.intervals[i];
    EXPECT_EQ(ia.lo, ib.lo);
    EXPECT_EQ(ia.hi, ib.hi);
    EXPECT_TRUE(ia.defined);
    EXPECT_EQ(ia.defined_in, 200);
    EXPECT_LE(ia.lo, ia.hi);
    EXPECT_LE(ia.lo, point[i].second.value + 1e-12) << a.names[i];
    EXPECT_GE(ia.hi, point[i].second.value - 1e-12) << a.names[i];
  }
  EXPECT_NE(a.at("auc_macro").lo, c.at("auc_macro").lo);
  EXPECT_THROW(a.at("nope"), Error);
}

// Three samples: most resamples miss a class. Intervals use the resamples where a metric is
// defined; nothing is NaN, nothing throws.
TEST(MetricsBootstrap, TinySampleNeverNaN) {
  const auto f = test::load_fixture("metrics_one_per_class");
  Tensor y = Tensor::from(f.ints("labels"), {3}), s = Tensor::from(f["scores"], {3, 3});
  const auto r = bootstrap_ci(y, s, {500, 3, 0.95});
  for (size_t i = 0; i < r.names.size(); ++i) {
    const Interval& iv = r.intervals[i];
    if (iv.defined) EXPECT_TRUE(std::isfinite(iv.lo) && std::isfinite(iv.hi)) << r.names[i];
  }
  EXPECT_LT(r.at("auc[0]").defined_in, 500);
  EXPECT_EQ(r.at("accuracy").defined_in, 500);
}

// The bootstrap walk with every multiplicity 1 is the rank-sum AUC: two algorithms, one answer.
TEST(MetricsKernels, WalkEqualsRankSums) {
  std::vector<int64_t> y;
  std::vector<double> s;
  large_case(100000, 9, y, s);
  const int64_t N = int64_t(y.size()), K = 3;
  std::vector<int32_t> order(static_cast<size_t>(N * K)), ones(static_cast<size_t>(N), 1);
  std::vector<double> sorted(static_cast<size_t>(N * K));
  std::vector<uint8_t> end(static_cast<size_t>(N * K));
  kernels::cpu::sort_columns(s.data(), N, K, order.data(), sorted.data(), end.data(), nullptr, 0, nullptr);
  std::vector<int64_t> pos(3), r2(3), wpos(3), wneg(3), u2(3);
  kernels::cpu::auc_rank_sums(y.data(), order.data(), end.data(), N, K, pos.data(), r2.data(),
                              nullptr, 0, nullptr);
  kernels::cpu::bootstrap_auc(ones.data(), y.data(), order.data(), end.data(), N, 1, K,
                              wpos.data(), wneg.data(), u2.data(), nullptr, 0, nullptr);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(wpos[k], pos[k]);
    EXPECT_EQ(wneg[k], N - pos[k]);
    EXPECT_EQ(u2[k], r2[k] - pos[k] * (pos[k] + 1));
  }
}

#ifdef MC_HAVE_CUDA
template <class T>
Tensor on_gpu(const std::vector<T>& v) {
  return Tensor::from(v, {int64_t(v.size())}).to(Device::cuda(0));
}

struct RandomCase {
  int64_t N, K;
  std::vector<int64_t> y;
  std::vector<double> s;
};

// Labels uniform over the classes; scores either continuous or on a grid of 1/16 (heavy ties).
RandomCase random_case(int64_t N, int64_t K, bool tied, uint64_t seed) {
  Generator g(seed);
  RandomCase c{N, K, {}, {}};
  for (int64_t i = 0; i < N; ++i) {
    c.y.push_back(g.randint(0, K));
    for (int64_t k = 0; k < K; ++k) {
      const double u = g.uniform() + (c.y.back() == k ? 0.3 : 0.0);
      c.s.push_back(tied ? std::round(u * 16) / 16 : u);
    }
  }
  return c;
}
#endif

TEST(MetricsCuda, KernelsMatchCpuTwins) {
  MC_SKIP_WITHOUT_GPU();
#ifdef MC_HAVE_CUDA
  const int64_t shapes[][3] = {{1, 2, 0}, {7, 3, 1}, {1000, 40, 0}, {5000, 2, 1},
                               {1 << 20, 3, 0}, {1 << 20, 3, 1}};
  for (const auto& sh : shapes) {
    const int64_t N = sh[0], K = sh[1];
    SCOPED_TRACE(testing::Message() << N << " x " << K << (sh[2] ? " tied" : ""));
    const RandomCase c = random_case(N, K, sh[2] != 0, uint64_t(N + K));
    Tensor gy = on_gpu(c.y), gs = on_gpu(c.s);
    const auto NK = size_t(N * K);
    // validate: clean, then a bad label and a NaN planted
    std::vector<int64_t> faults(2);
    kernels::cpu::validate(c.y.data(), c.s.data(), N, K, faults.data(), nullptr);
    Tensor gf = Tensor::empty({2}, DType::I64, Device::cuda(0));
    kernels::cuda::validate(gy.data<int64_t>(), gs.data<double>(), N, K, gf.data<int64_t>(), nullptr);
    EXPECT_EQ(gf.to_vector<int64_t>(), faults);
    EXPECT_EQ(faults, (std::vector<int64_t>{N, N}));
    if (N > 5) {
      auto by = c.y;
      auto bs = c.s;
      by[5] = K;
      by[N - 1] = -1;
      bs[size_t(3 * K + 1)] = NAN;
      kernels::cpu::validate(by.data(), bs.data(), N, K, faults.data(), nullptr);
      kernels::cuda::validate(on_gpu(by).data<int64_t>(), on_gpu(bs).data<double>(), N, K,
                              gf.data<int64_t>(), nullptr);
      EXPECT_EQ(gf.to_vector<int64_t>(), (std::vector<int64_t>{5, 3}));
      EXPECT_EQ(faults, (std::vector<int64_t>{5, 3}));
    }
    // offset softmax, from double and float inputs
    std::vector<double> offset;
    for (int64_t k = 0; k < K; ++k) offset.push_back(-0.7 * double(k) + 0.1);
    std::vector<double> p(NK);
    Tensor gp = Tensor::empty({N * K}, DType::F64, Device::cuda(0));
    kernels::cpu::offset_softmax(c.s.data(), offset.data(), N, K, true, p.data(), nullptr);
    kernels::cuda::offset_softmax(gs.data<double>(), on_gpu(offset).data<double>(), N, K, true,
                                  gp.data<double>(), nullptr);
    EXPECT_TRUE(test::all_close(gp.to(Device::cpu()), Tensor::from(p, {N * K}), 1e-14, 1e-300));
    std::vector<float> s32(c.s.begin(), c.s.end());
    kernels::cpu::offset_softmax(s32.data(), nullptr, N, K, false, p.data(), nullptr);
    kernels::cuda::offset_softmax(on_gpu(s32).data<float>(), nullptr, N, K, false,
                                  gp.data<double>(), nullptr);
    EXPECT_EQ(gp.to_vector<double>(), p);
    // predictions and confusion matrix
    std::vector<int32_t> pred(static_cast<size_t>(N));
    std::vector<int64_t> cm(static_cast<size_t>(K * K));
    Tensor gpred = Tensor::empty({N}, DType::I32, Device::cuda(0));
    Tensor gcm = Tensor::empty({K * K}, DType::I64, Device::cuda(0));
    kernels::cpu::argmax_rows(c.s.data(), N, K, pred.data(), nullptr);
    kernels::cuda::argmax_rows(gs.data<double>(), N, K, gpred.data<int32_t>(), nullptr);
    EXPECT_EQ(gpred.to_vector<int32_t>(), pred);
    kernels::cpu::confusion_matrix(c.y.data(), pred.data(), N, K, cm.data(), nullptr);
    kernels::cuda::confusion_matrix(gy.data<int64_t>(), gpred.data<int32_t>(), N, K,
                                    gcm.data<int64_t>(), nullptr);
    EXPECT_EQ(gcm.to_vector<int64_t>(), cm);
    // sort: values and tie groups equal; the order may differ inside a tie group only
    std::vector<int32_t> order(NK);
    std::vector<double> sorted(NK);
    std::vector<uint8_t> end(NK);
    kernels::cpu::sort_columns(c.s.data(), N, K, order.data(), sorted.data(), end.data(), nullptr, 0, nullptr);
    Tensor gorder = Tensor::empty({N * K}, DType::I32, Device::cuda(0));
    Tensor gsorted = Tensor::empty({N * K}, DType::F64, Device::cuda(0));
    Tensor gend = Tensor::empty({N * K}, DType::U8, Device::cuda(0));
    const size_t ws = kernels::cuda::sort_columns_workspace(N);
    Tensor work = Tensor::empty({int64_t(ws)}, DType::U8, Device::cuda(0));
    kernels::cuda::sort_columns(gs.data<double>(), N, K, gorder.data<int32_t>(),
                                gsorted.data<double>(), gend.data<uint8_t>(), work.raw(), ws,
                                nullptr);
    EXPECT_EQ(gsorted.to_vector<double>(), sorted);
    EXPECT_EQ(gend.to_vector<uint8_t>(), end);
    const auto horder = gorder.to_vector<int32_t>();
    for (int64_t k = 0; k < K; ++k)
      for (int64_t q = 0; q < N; ++q)
        ASSERT_EQ(c.s[size_t(horder[size_t(k * N + q)] * K + k)], sorted[size_t(k * N + q)]);
    // rank sums, on the GPU's own order
    std::vector<int64_t> pos(static_cast<size_t>(K)), r2(static_cast<size_t>(K));
    kernels::cpu::auc_rank_sums(c.y.data(), order.data(), end.data(), N, K, pos.data(), r2.data(),
                                nullptr, 0, nullptr);
    Tensor gpos = Tensor::empty({K}, DType::I64, Device::cuda(0));
    Tensor gr2 = Tensor::empty({K}, DType::I64, Device::cuda(0));
    const size_t rs = kernels::cuda::auc_rank_sums_workspace(N);
    Tensor rwork = Tensor::empty({int64_t(rs)}, DType::U8, Device::cuda(0));
    kernels::cuda::auc_rank_sums(gy.data<int64_t>(), gorder.data<int32_t>(), gend.data<uint8_t>(),
                                 N, K, gpos.data<int64_t>(), gr2.data<int64_t>(), rwork.raw(), rs,
                                 nullptr);
    EXPECT_EQ(gpos.to_vector<int64_t>(), pos);
    EXPECT_EQ(gr2.to_vector<int64_t>(), r2);
    // bootstrap: identical draws, confusion matrices and AUC statistics
    const int64_t B = N >= (1 << 20) ? 8 : 33;
    std::vector<int32_t> counts(static_cast<size_t>(B * N));
    kernels::cpu::bootstrap_counts(1234, 5, B, N, counts.data(), nullptr);
    Tensor gcounts = Tensor::empty({B * N}, DType::I32, Device::cuda(0));
    kernels::cuda::bootstrap_counts(1234, 5, B, N, gcounts.data<int32_t>(), nullptr);
    EXPECT_EQ(gcounts.to_vector<int32_t>(), counts);
    const auto BK = static_cast<size_t>(B * K);
    std::vector<int64_t> bcm(BK * size_t(K)), bp(BK), bn(BK), bu(BK);
    kernels::cpu::bootstrap_confusion(counts.data(), c.y.data(), pred.data(), N, B, K, bcm.data(), nullptr);
    Tensor gbcm = Tensor::empty({B * K * K}, DType::I64, Device::cuda(0));
    kernels::cuda::bootstrap_confusion(gcounts.data<int32_t>(), gy.data<int64_t>(),
                                       gpred.data<int32_t>(), N, B, K, gbcm.data<int64_t>(), nullptr);
    EXPECT_EQ(gbcm.to_vector<int64_t>(), bcm);
    kernels::cpu::bootstrap_auc(counts.data(), c.y.data(), order.data(), end.data(), N, B, K,
                                bp.data(), bn.data(), bu.data(), nullptr, 0, nullptr);
    Tensor gbp = Tensor::empty({B * K}, DType::I64, Device::cuda(0));
    Tensor gbn = Tensor::empty({B * K}, DType::I64, Device::cuda(0));
    Tensor gbu = Tensor::empty({B * K}, DType::I64, Device::cuda(0));
    const size_t as = kernels::cuda::bootstrap_auc_workspace(N, B, K);
    Tensor awork = Tensor::empty({int64_t(as)}, DType::U8, Device::cuda(0));
    kernels::cuda::bootstrap_auc(gcounts.data<int32_t>(), gy.data<int64_t>(),
                                 gorder.data<int32_t>(), gend.data<uint8_t>(), N, B, K,
                                 gbp.data<int64_t>(), gbn.data<int64_t>(), gbu.data<int64_t>(),
                                 awork.raw(), as, nullptr);
    EXPECT_EQ(gbp.to_vector<int64_t>(), bp);
    EXPECT_EQ(gbn.to_vector<int64_t>(), bn);
    EXPECT_EQ(gbu.to_vector<int64_t>(), bu);
  }
#endif
}

// The engine API on CUDA tensors gives the CPU's numbers exactly (all integer statistics).
TEST(MetricsCuda, EngineApiMatchesCpu) {
  MC_SKIP_WITHOUT_GPU();
#ifdef MC_HAVE_CUDA
  for (const char* name : kCases) {
    SCOPED_TRACE(name);
    const auto f = test::load_fixture(std::string("metrics_") + name);
    const int64_t N = f.integer("N"), K = f.integer("K");
    Tensor y = Tensor::from(f.ints("labels"), {N}), s = Tensor::from(f["scores"], {N, K});
    Tensor gy = y.to(Device::cuda(0)), gs = s.to(Device::cuda(0));
    const auto a = classification_metrics(y, s).named(), b = classification_metrics(gy, gs).named();
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i].second.defined, b[i].second.defined) << a[i].first;
      if (a[i].second.defined) EXPECT_EQ(a[i].second.value, b[i].second.value) << a[i].first;
    }
    const BootstrapOptions o{300, 4, 0.95};
    const auto ca = bootstrap_ci(y, s, o), cb = bootstrap_ci(gy, gs, o);
    for (size_t i = 0; i < ca.intervals.size(); ++i) {
      EXPECT_EQ(ca.intervals[i].lo, cb.intervals[i].lo) << ca.names[i];
      EXPECT_EQ(ca.intervals[i].hi, cb.intervals[i].hi) << ca.names[i];
      EXPECT_EQ(ca.intervals[i].defined_in, cb.intervals[i].defined_in) << ca.names[i];
    }
    const auto ra = roc_curve(y, s, 1), rb = roc_curve(gy, gs, 1);
    EXPECT_EQ(ra.thresholds, rb.thresholds);
    EXPECT_EQ(ra.tpr.size(), rb.tpr.size());
  }
  std::vector<int64_t> y;
  std::vector<double> s;
  large_case(1 << 20, 3, y, s);
  const auto n = int64_t(y.size());
  Tensor ty = Tensor::from(y, {n}), ts = Tensor::from(s, {n, 3});
  const auto a = classification_metrics(ty, ts).named();
  const auto b = classification_metrics(ty.to(Device::cuda(0)), ts.to(Device::cuda(0))).named();
  for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i].second.value, b[i].second.value) << a[i].first;
#endif
}

}  // namespace
}  // namespace mc
