#include "engine/random.h"

#include <cmath>
#include <numbers>

#include "kernels/philox.h"

namespace mc {

double Generator::uniform() { return kernels::philox_uniform_d(offset_++, seed_); }

uint64_t Generator::next_u64() {
  kernels::U4 r = kernels::philox4x32(offset_++, seed_);
  return (uint64_t(r.x) << 32) | r.y;
}

double Generator::normal() {  // Box-Muller; 1 - u keeps the log argument in (0, 1]
  const double u1 = 1.0 - uniform(), u2 = uniform();
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

int64_t Generator::randint(int64_t lo, int64_t hi) {
  MC_CHECK(hi > lo, "randint: empty range [", lo, ", ", hi, ")");
  const uint64_t span = uint64_t(hi - lo);
  const uint64_t limit = UINT64_MAX - UINT64_MAX % span;  // rejection: no modulo bias
  uint64_t r;
  do r = next_u64(); while (r >= limit);
  return lo + int64_t(r % span);
}

namespace {
template <class F>
void fill_host(Tensor& t, F&& draw) {
  Tensor h = t.is_cuda() ? Tensor::empty(t.shape(), t.dtype()) : t;
  if (h.dtype() == DType::F64) {
    double* p = h.data<double>();
    for (int64_t i = 0; i < h.numel(); ++i) p[i] = draw();
  } else {
    MC_CHECK(h.dtype() == DType::F32, "random fill supports f32 and f64, got ", h.str());
    float* p = h.data<float>();
    for (int64_t i = 0; i < h.numel(); ++i) p[i] = float(draw());
  }
  if (t.is_cuda()) t.copy_(h);
}
}  // namespace

void normal_(Tensor& t, Generator& g, double mean, double stddev) {
  fill_host(t, [&] { return mean + stddev * g.normal(); });
}

void uniform_(Tensor& t, Generator& g, double lo, double hi) {
  fill_host(t, [&] { return lo + (hi - lo) * g.uniform(); });
}

Tensor randn(const Shape& s, Generator& g, DType dt, double mean, double stddev) {
  Tensor t = Tensor::empty(s, dt);
  normal_(t, g, mean, stddev);
  return t;
}

Tensor rand_uniform(const Shape& s, Generator& g, double lo, double hi, DType dt) {
  Tensor t = Tensor::empty(s, dt);
  uniform_(t, g, lo, hi);
  return t;
}

void kaiming_normal_fan_out_(Tensor& w, Generator& g) {
  MC_CHECK(w.dim() >= 2, "kaiming init needs a weight with >= 2 dims, got ", w.str());
  const double fan_out = double(w.numel() / w.size(1));
  normal_(w, g, 0.0, std::sqrt(2.0 / fan_out));
}

void shuffle(std::vector<int64_t>& v, Generator& g) {
  for (int64_t i = int64_t(v.size()) - 1; i > 0; --i) std::swap(v[size_t(i)], v[size_t(g.randint(0, i + 1))]);
}

}  // namespace mc
