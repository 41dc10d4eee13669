// Float64 gradient checks: for random inputs x_i and a random projection R,
// L = sum(f(x) * R); autograd's dL/dx_i must equal central finite differences.
#include <functional>

#include "engine/ops.h"
#include "engine/random.h"
#include "test_util.h"

namespace mc {
namespace {

using Fn = std::function<Tensor(const std::vector<Tensor>&)>;

// Checks every input that requires grad, on every element (inputs here are small).
void gradcheck(const Fn& f, std::vector<Tensor> inputs, uint64_t seed, double tol = 1e-6) {
  for (auto& t : inputs)
    if (is_floating(t.dtype())) t.set_requires_grad(true);
  Tensor out = f(inputs);
  Tensor R = test::randn(out.shape(), seed + 99, DType::F64);
  sum(mul(out, R)).backward();

  const double h = 1e-6;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].requires_grad()) continue;
    Tensor analytic = inputs[i].grad();
    ASSERT_TRUE(analytic.defined()) << "input " << i << " got no gradient";
    double* x = inputs[i].data<double>();
    std::vector<double> numeric(size_t(inputs[i].numel()));
    NoGradGuard ng;
    for (int64_t k = 0; k < inputs[i].numel(); ++k) {
      const double keep = x[k];
      x[k] = keep + h;
      const double up = sum(mul(f(inputs), R)).item();
      x[k] = keep - h;
      const double down = sum(mul(f(inputs), R)).item();
      x[k] = keep;
      numeric[size_t(k)] = (up - down) / (2 * h);
    }
    Tensor num = Tensor::from(numeric, inputs[i].shape());
    EXPECT_TRUE(test::all_close(analytic, num, tol, tol)) << "input " << i;
  }
}

Tensor rn(const Shape& s, uint64_t seed) { return test::randn(s, seed, DType::F64); }

TEST(GradCheck, Conv3dPlain) {
  gradcheck([](auto& in) { return conv3d(in[0], in[1], in[2]); },
            {rn({2, 3, 4, 5, 3}, 1), rn({4, 3, 2, 3, 2}, 2), rn({4}, 3)}, 10);
}

TEST(GradCheck, Conv3dStridePadDilation) {
  Conv3dOpts o;
  o.stride = {2, 1, 2};
  o.padding = {1, 2, 0};
  o.dilation = {1, 2, 1};
  gradcheck([&](auto& in) { return conv3d(in[0], in[1], Tensor(), o); },
            {rn({2, 2, 5, 6, 5}, 4), rn({3, 2, 3, 2, 3}, 5)}, 11);
}

TEST(GradCheck, Conv3dGroupsAndPointwise) {
  Conv3dOpts o;
  o.groups = 2;
  o.padding = {1, 1, 1};
  gradcheck([&](auto& in) { return conv3d(in[0], in[1], in[2], o); },
            {rn({1, 4, 3, 4, 3}, 6), rn({6, 2, 3, 3, 3}, 7), rn({6}, 8)}, 12);
  gradcheck([&](auto& in) { return conv3d(in[0], in[1], Tensor()); },
            {rn({2, 5, 2, 3, 2}, 9), rn({3, 5, 1, 1, 1}, 10)}, 13);
}

TEST(GradCheck, BatchNormTraining) {
  Tensor rm = Tensor::zeros({3}, DType::F64), rv = Tensor::full({3}, 1.0, DType::F64);
  gradcheck([&](auto& in) {
    Tensor m = rm.clone(), v = rv.clone();
    return batch_norm(in[0], in[1], in[2], m, v, true);
  }, {rn({3, 3, 2, 3, 2}, 20), rn({3}, 21), rn({3}, 22)}, 23, 1e-5);
}

TEST(GradCheck, BatchNormEval) {
  Tensor rm = rn({4}, 30), rv = test::uniform({4}, 31, 0.5, 2.0, DType::F64);
  gradcheck([&](auto& in) { return batch_norm(in[0], in[1], in[2], rm, rv, false); },
            {rn({2, 4, 3, 2, 2}, 32), rn({4}, 33), rn({4}, 34)}, 35);
}

TEST(GradCheck, ReluAddMulScale) {
  // Keep inputs away from relu's kink so finite differences are smooth.
  Tensor x = rn({2, 3, 4}, 40);
  for (int64_t i = 0; i < x.numel(); ++i)
    if (std::abs(x.data<double>()[i]) < 0.05) x.data<double>()[i] = 0.3;
  gradcheck([](auto& in) { return relu(in[0]); }, {x}, 41);
  gradcheck([](auto& in) { return add(in[0], in[1]); }, {rn({3, 5}, 42), rn({3, 5}, 43)}, 44);
  gradcheck([](auto& in) { return mul(in[0], in[1]); }, {rn({3, 5}, 45), rn({3, 5}, 46)}, 47);
  gradcheck([](auto& in) { return scale(in[0], -1.7); }, {rn({7}, 48)}, 49);
  gradcheck([](auto& in) { return mean(in[0]); }, {rn({2, 3}, 50)}, 51);
}

TEST(GradCheck, MaxPool3d) {
  // Distinct values (a permutation) so the argmax is unique and stable under +-h.
  const int64_t n = 2 * 2 * 5 * 6 * 5;
  std::vector<int64_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[size_t(i)] = i;
  Generator g(60);
  shuffle(perm, g);
  std::vector<double> v(perm.begin(), perm.end());
  for (auto& e : v) e *= 0.01;
  Tensor x = Tensor::from(v, {2, 2, 5, 6, 5});
  gradcheck([](auto& in) { return max_pool3d(in[0], {3, 3, 3}, {2, 2, 2}, {1, 1, 1}); }, {x}, 61);
  gradcheck([](auto& in) { return max_pool3d(in[0], {2, 3, 2}, {2, 1, 2}, {0, 1, 1}); }, {x}, 62);
}

TEST(GradCheck, GlobalAvgPoolLinearFlatten) {
  gradcheck([](auto& in) { return global_avg_pool3d(in[0]); }, {rn({2, 3, 2, 3, 4}, 70)}, 71);
  gradcheck([](auto& in) { return linear(in[0], in[1], in[2]); },
            {rn({4, 6}, 72), rn({3, 6}, 73), rn({3}, 74)}, 75);
  gradcheck([](auto& in) { return flatten(in[0]); }, {rn({2, 3, 2}, 76)}, 77);
}

TEST(GradCheck, SoftmaxLogSoftmax) {
  gradcheck([](auto& in) { return softmax(in[0]); }, {rn({4, 5}, 80)}, 81);
  gradcheck([](auto& in) { return log_softmax(in[0]); }, {rn({4, 5}, 82)}, 83);
}

TEST(GradCheck, CrossEntropyWeightedAdjusted) {
  Tensor labels = Tensor::from<int64_t>({0, 2, 1, 2, 2}, {5});
  Tensor w = test::uniform({3}, 90, 0.5, 2.0, DType::F64);
  Tensor off = rn({3}, 91);
  gradcheck([&](auto& in) { return cross_entropy(in[0], labels); }, {rn({5, 3}, 92)}, 93);
  gradcheck([&](auto& in) { return cross_entropy(in[0], labels, w, off); }, {rn({5, 3}, 94)}, 95);
  gradcheck([&](auto& in) { return cross_entropy(in[0], labels, w, off, false); }, {rn({5, 3}, 96)}, 97);
}

TEST(GradCheck, ComposedResidualBlock) {
  // conv -> bn -> relu -> conv + shortcut: checks accumulation through a shared input.
  Tensor rm = Tensor::zeros({3}, DType::F64), rv = Tensor::full({3}, 1.0, DType::F64);
  Conv3dOpts p1;
  p1.padding = {1, 1, 1};
  gradcheck([&](auto& in) {
    Tensor m = rm.clone(), v = rv.clone();
    Tensor y = conv3d(in[0], in[1], Tensor(), p1);
    y = relu(batch_norm(y, Tensor(), Tensor(), m, v, true));
    y = conv3d(y, in[2], Tensor(), p1);
    return add(y, in[0]);
  }, {rn({2, 3, 3, 3, 3}, 100), rn({3, 3, 3, 3, 3}, 101), rn({3, 3, 3, 3, 3}, 102)}, 103, 1e-5);
}

}  // namespace
}  // namespace mc
