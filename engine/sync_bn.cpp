#include "engine/sync_bn.h"

#include <cmath>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/prims.h"

namespace mc {
namespace {

struct Dims {
  int64_t N, C, S;
  double count() const { return double(N * S); }
};

Dims dims_of(const Tensor& x, const Tensor& w, const Tensor& b, const Tensor& rm,
             const Tensor& rv) {
  MC_CHECK(x.dim() >= 2, "sync_batch_norm: input must be [N, C, ...], got ", x.str());
  Dims d{x.size(0), x.size(1), 1};
  for (int64_t i = 2; i < x.dim(); ++i) d.S *= x.size(i);
  for (const Tensor* t : {&w, &b, &rm, &rv})
    MC_CHECK(!t->defined() || (t->dim() == 1 && t->size(0) == d.C),
             "sync_batch_norm: per-channel tensor ", t->str(), " does not fit ", d.C,
             " channels of ", x.str());
  MC_CHECK(rm.defined() == rv.defined(), "sync_batch_norm: running mean and variance go together");
  MC_CHECK(d.N * d.S >= 1, "sync_batch_norm: this rank has no values per channel: ", x.str());
  return d;
}

// ---- the exchange: host vectors of doubles through tensors on the communicator's device ----

std::vector<double> gather(Communicator& comm, const std::vector<double>& mine) {
  const int64_t n = int64_t(mine.size());
  Tensor t = Tensor::from(mine, {n}).to(comm.device());
  Tensor all = Tensor::empty({n * comm.world()}, DType::F64, comm.device());
  comm.all_gather(t, all);
  return all.to_vector<double>();
}

std::vector<double> sum_over_ranks(Communicator& comm, const std::vector<double>& mine) {
  Tensor t = Tensor::from(mine, {int64_t(mine.size())}).to(comm.device());
  comm.all_reduce_sum(t);
  return t.to_vector<double>();
}

// Global moments per channel from every rank's [mean (C) | m2 (C) | count], merged in rank
// order with Chan et al.'s update: rank 0's values are taken as they are, so one rank gives
// exactly its own statistics.
struct Moments {
  std::vector<double> mean, m2;
  double n = 0;
};

Moments merge(Communicator& comm, const std::vector<double>& mean, const std::vector<double>& m2,
              double n) {
  const size_t C = mean.size(), stride = 2 * C + 1;
  std::vector<double> mine(mean);
  mine.insert(mine.end(), m2.begin(), m2.end());
  mine.push_back(n);
  const std::vector<double> all = gather(comm, mine);
  Moments g{mean, m2, n};
  for (int r = 0; r < comm.world(); ++r) {
    const double* b = all.data() + size_t(r) * stride;
    const double nr = b[2 * C];
    if (r == 0) {
      g.mean.assign(b, b + C);
      g.m2.assign(b + C, b + 2 * C);
      g.n = nr;
      continue;
    }
    const double tot = g.n + nr;
    for (size_t c = 0; c < C; ++c) {
      const double delta = b[c] - g.mean[c];
      g.mean[c] += delta * nr / tot;
      g.m2[c] += b[C + c] + delta * delta * g.n * nr / tot;
    }
    g.n = tot;
  }
  MC_CHECK(g.n > 1, comm.who(), ": sync_batch_norm: training needs more than one value per "
           "channel over all ranks, got ", g.n);
  return g;
}

// r = (1 - m) r + m * batch, with the unbiased variance, as batch_norm (any dtype or device).
void update_running(Tensor& rm, Tensor& rv, const Moments& g, double momentum) {
  if (!rm.defined()) return;
  std::vector<double> m = rm.to_vector<double>(), v = rv.to_vector<double>();
  for (size_t c = 0; c < m.size(); ++c) {
    m[c] = (1 - momentum) * m[c] + momentum * g.mean[c];
    v[c] = (1 - momentum) * v[c] + momentum * (g.m2[c] / (g.n - 1));
  }
  rm.copy_(Tensor::from(m, rm.shape()).to(rm.dtype()));  // cast on the host, then one copy
  rv.copy_(Tensor::from(v, rv.shape()).to(rv.dtype()));
}

std::vector<double> host(const Tensor& t, size_t C, double fallback) {
  return t.defined() ? t.to_vector<double>() : std::vector<double>(C, fallback);
}

// ---- CPU loops (float or double data, double accumulation; the same arithmetic as
// kernels/batchnorm_cpu.cpp, so one rank reproduces batch_norm bit for bit) ----

template <class F>
void on_fp(const Tensor& x, F&& f) {
  if (x.dtype() == DType::F32) return f(float{});
  MC_CHECK(x.dtype() == DType::F64, "sync_batch_norm: CPU tensors must be f32 or f64, got ", x.str());
  f(double{});
}

template <class T>
void local_moments(const T* x, Dims d, double* mean, double* m2) {
  const double M = d.count();
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < d.C; ++c) {
    double sum = 0;
    for (int64_t n = 0; n < d.N; ++n) {
      const T* p = x + (n * d.C + c) * d.S;
      for (int64_t s = 0; s < d.S; ++s) sum += p[s];
    }
    const double mu = sum / M;
    double sq = 0;  // two passes: no cancellation
    for (int64_t n = 0; n < d.N; ++n) {
      const T* p = x + (n * d.C + c) * d.S;
      for (int64_t s = 0; s < d.S; ++s) sq += (p[s] - mu) * (p[s] - mu);
    }
    mean[c] = mu;
    m2[c] = sq;
  }
}

template <class T>
void normalise(const T* x, const T* w, const T* b, T* y, Dims d, const double* mean,
               const double* invstd) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < d.C; ++c) {
    const double scale = (w ? double(w[c]) : 1.0) * invstd[c], shift = b ? double(b[c]) : 0.0;
    for (int64_t n = 0; n < d.N; ++n) {
      const T* p = x + (n * d.C + c) * d.S;
      T* q = y + (n * d.C + c) * d.S;
      for (int64_t s = 0; s < d.S; ++s) q[s] = T((p[s] - mean[c]) * scale + shift);
    }
  }
}

// sum(dy) and sum(dy * xhat) per channel over this rank's values.
template <class T>
void grad_sums(const T* x, const T* dy, Dims d, const double* mean, const double* invstd,
               double* sdy, double* sdyx) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < d.C; ++c) {
    double a = 0, b = 0;
    for (int64_t n = 0; n < d.N; ++n) {
      const T* p = x + (n * d.C + c) * d.S;
      const T* g = dy + (n * d.C + c) * d.S;
      for (int64_t s = 0; s < d.S; ++s) {
        a += g[s];
        b += g[s] * (p[s] - mean[c]) * invstd[c];
      }
    }
    sdy[c] = a;
    sdyx[c] = b;
  }
}

// dx = w * invstd * (dy - sum(dy) / M - xhat * sum(dy * xhat) / M), sums and M global.
template <class T>
void grad_input(const T* x, const T* dy, const T* w, T* dx, Dims d, const double* mean,
                const double* invstd, const double* sdy, const double* sdyx, double M) {
#pragma omp parallel for schedule(static)
  for (int64_t c = 0; c < d.C; ++c) {
    const double k = (w ? double(w[c]) : 1.0) * invstd[c];
    for (int64_t n = 0; n < d.N; ++n) {
      const T* p = x + (n * d.C + c) * d.S;
      const T* g = dy + (n * d.C + c) * d.S;
      T* q = dx + (n * d.C + c) * d.S;
      for (int64_t s = 0; s < d.S; ++s) {
        const double xhat = (p[s] - mean[c]) * invstd[c];
        q[s] = T(k * (g[s] - sdy[c] / M - xhat * sdyx[c] / M));
      }
    }
  }
}

template <class T> const T* opt(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

std::vector<double> invstd_of(const Moments& g, double eps) {
  std::vector<double> inv(g.mean.size());
  for (size_t c = 0; c < inv.size(); ++c) inv[c] = 1.0 / std::sqrt(g.m2[c] / g.n + eps);
  return inv;
}

struct SyncBatchNormNode : Node {
  Communicator* comm = nullptr;
  Tensor x, w;
  Dims d{};
  double count = 0;                  // values per channel over all ranks
  std::vector<double> mean, invstd;  // global
  bool loops = true;
  Tensor mean_t, var_t;  // prims path: the global statistics on x's device
  double eps = 0;
  const char* name() const override { return "sync_batch_norm"; }

  std::vector<Tensor> backward(const Tensor& dy) override {
    MC_CHECK(dy.shape() == x.shape(), "sync_batch_norm backward: gradient ", dy.str(),
             " for input ", x.str());
    return loops ? backward_loops(dy) : backward_prims(dy);
  }

  std::vector<Tensor> backward_loops(const Tensor& dy_in) {
    const Tensor dy = dy_in.device() == x.device() && dy_in.dtype() == x.dtype()
                          ? dy_in
                          : dy_in.to(x.device()).to(x.dtype());
    const size_t C = size_t(d.C);
    std::vector<double> sums(2 * C);  // [sum(dy) | sum(dy * xhat)], this rank's
    Tensor dx = Tensor::empty(x.shape(), x.dtype());
    Tensor dw = Tensor::empty({d.C}, x.dtype()), db = Tensor::empty({d.C}, x.dtype());
    on_fp(x, [&](auto tag) {
      using T = decltype(tag);
      grad_sums<T>(x.data<T>(), dy.data<T>(), d, mean.data(), invstd.data(), sums.data(),
                   sums.data() + C);
      const std::vector<double> all = sum_over_ranks(*comm, sums);
      grad_input<T>(x.data<T>(), dy.data<T>(), opt<T>(w), dx.data<T>(), d, mean.data(),
                    invstd.data(), all.data(), all.data() + C, count);
      for (size_t c = 0; c < C; ++c) {
        db.data<T>()[c] = T(sums[c]);
        dw.data<T>()[c] = T(sums[C + c]);
      }
    });
    return {needs(0) ? dx : Tensor(), needs(1) ? dw : Tensor(), needs(2) ? db : Tensor()};
  }

  // dx = dy * w * invstd + a * xhat + b with a = -w * invstd * sum(dy * xhat) / M and
  // b = -w * invstd * sum(dy) / M: the evaluation backward gives the first term and this rank's
  // sums, the evaluation forward (with weight a, bias b) the rest.
  std::vector<Tensor> backward_prims(const Tensor& dy) {
    Tensor dw, db;
    Tensor dx = prims::batchnorm_backward_eval(x, dy, w, mean_t, var_t, eps, dw, db);
    const size_t C = size_t(d.C);
    std::vector<double> sums = db.to_vector<double>();
    const std::vector<double> sdyx = dw.to_vector<double>();
    sums.insert(sums.end(), sdyx.begin(), sdyx.end());
    const std::vector<double> all = sum_over_ranks(*comm, sums);
    const std::vector<double> wv = host(w, C, 1.0);
    std::vector<double> a(C), b(C);
    for (size_t c = 0; c < C; ++c) {
      const double k = wv[c] * invstd[c];
      a[c] = -k * all[C + c] / count;
      b[c] = -k * all[c] / count;
    }
    const DType pd = mean_t.dtype();
    const Tensor at = Tensor::from(a, {d.C}).to(pd).to(x.device());
    const Tensor bt = Tensor::from(b, {d.C}).to(pd).to(x.device());
    dx = prims::add(dx, prims::batchnorm_forward_eval(x, at, bt, mean_t, var_t, eps));
    return {needs(0) ? dx : Tensor(), needs(1) ? dw : Tensor(), needs(2) ? db : Tensor()};
  }
};

Tensor finish(Tensor y, std::shared_ptr<SyncBatchNormNode> n, const Tensor& x, const Tensor& w,
              const Tensor& b) {
  if (any_requires_grad({&x, &w, &b})) {
    n->x = x.detach();
    n->w = w.detach();
    record(y, n, {&x, &w, &b});
  }
  return y;
}

}  // namespace

// The backward's state: the global statistics this forward normalised with.
std::shared_ptr<SyncBatchNormNode> make_node(Communicator& comm, const Dims& d, const Moments& g,
                                             double eps) {
  auto n = std::make_shared<SyncBatchNormNode>();
  n->comm = &comm;
  n->d = d;
  n->count = g.n;
  n->mean = g.mean;
  n->invstd = invstd_of(g, eps);
  n->eps = eps;
  return n;
}

Tensor sync_batch_norm(const Tensor& x, const Tensor& w, const Tensor& b, Tensor& rm, Tensor& rv,
                       bool training, double momentum, double eps, Communicator& comm) {
  if (!training) return batch_norm(x, w, b, rm, rv, false, momentum, eps);
  // The loops below read NCDHW memory; the prims take any layout.
  if (!x.device().is_cpu() || (x.dim() == 5 && x.layout() == Layout::NDHWC))
    return detail::sync_batch_norm_prims(x, w, b, rm, rv, momentum, eps, comm);
  const Dims d = dims_of(x, w, b, rm, rv);
  for (const Tensor* t : {&w, &b})
    MC_CHECK(!t->defined() || (t->dtype() == x.dtype() && t->device() == x.device()),
             "sync_batch_norm: ", t->str(), " must match the input ", x.str());
  const size_t C = size_t(d.C);
  std::vector<double> mean(C), m2(C);
  on_fp(x, [&](auto tag) {
    using T = decltype(tag);
    local_moments<T>(x.data<T>(), d, mean.data(), m2.data());
  });
  const Moments g = merge(comm, mean, m2, d.count());
  auto n = make_node(comm, d, g, eps);
  Tensor y = Tensor::empty(x.shape(), x.dtype());
  on_fp(x, [&](auto tag) {
    using T = decltype(tag);
    normalise<T>(x.data<T>(), opt<T>(w), opt<T>(b), y.data<T>(), d, n->mean.data(),
                 n->invstd.data());
  });
  update_running(rm, rv, g, momentum);
  return finish(y, n, x, w, b);
}

Tensor detail::sync_batch_norm_prims(const Tensor& x, const Tensor& w, const Tensor& b,
                                     Tensor& rm, Tensor& rv, double momentum, double eps,
                                     Communicator& comm) {
  const Dims d = dims_of(x, w, b, rm, rv);
  const size_t C = size_t(d.C);
  // This rank's mean and inverse std (its normalised output is not needed).
  prims::BNSaved local;
  {
    Tensor no_rm, no_rv;
    prims::batchnorm_forward_train(x, Tensor(), Tensor(), no_rm, no_rv, 0.0, eps, local);
  }
  const std::vector<double> mean = local.mean.to_vector<double>();
  const std::vector<double> inv = local.invstd.to_vector<double>();
  std::vector<double> m2(C);
  for (size_t c = 0; c < C; ++c)  // invstd = 1 / sqrt(var + eps)
    m2[c] = d.count() * std::max(0.0, 1.0 / (inv[c] * inv[c]) - eps);
  const Moments g = merge(comm, mean, m2, d.count());

  auto n = make_node(comm, d, g, eps);
  n->loops = false;
  std::vector<double> var(C);
  for (size_t c = 0; c < C; ++c) var[c] = g.m2[c] / g.n;
  const DType pd = local.mean.dtype();  // the prims' statistics dtype (f32 on CUDA)
  n->mean_t = Tensor::from(g.mean, {d.C}).to(pd).to(x.device());
  n->var_t = Tensor::from(var, {d.C}).to(pd).to(x.device());
  Tensor y = prims::batchnorm_forward_eval(x, w, b, n->mean_t, n->var_t, eps);
  update_running(rm, rv, g, momentum);
  return finish(y, n, x, w, b);
}

}  // namespace mc
