// The small training task of the models' CPU training tests (resnet_test, zoo_test).
#pragma once
#include <vector>

#include "engine/random.h"
#include "engine/tensor.h"

namespace mc::test {

// Generated volumes: class 1 has a bright blob, class 0 a dark one, plus noise.
inline void toy_batch(Generator& g, int64_t n, int64_t s, Tensor& x, Tensor& y) {
  x = randn({n, 1, s, s, s}, g, DType::F32, 0.0, 0.5);
  std::vector<int64_t> labels(static_cast<size_t>(n));
  float* p = x.data<float>();
  for (int64_t i = 0; i < n; ++i) {
    labels[size_t(i)] = g.randint(0, 2);
    const double c = s / 2.0 + (g.uniform() - 0.5) * s / 4;
    for (int64_t d = 0; d < s; ++d)
      for (int64_t h = 0; h < s; ++h)
        for (int64_t w = 0; w < s; ++w) {
          const double r2 = (d - c) * (d - c) + (h - c) * (h - c) + (w - c) * (w - c);
          if (r2 < s * s / 16.0) p[((i * s + d) * s + h) * s + w] += labels[size_t(i)] ? 1.0f : -1.0f;
        }
  }
  y = Tensor::from(labels, {n});
}

}  // namespace mc::test
