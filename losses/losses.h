// Long-tail-aware cross-entropy family. Every member is the fused mc::cross_entropy with a
// per-class logit offset and/or per-class weight derived from the training class counts n_c
// (N = sum n_c, C classes, prior_c = n_c / N):
//
//   ce                plain cross-entropy                     offset 0,                 weight 1
//   logit_adjusted    Menon et al. (the paper's Bal-CE code)  offset tau1*log(prior_c), weight 1
//   weighted          the paper's Bal-CE equation             offset 0,  weight N / (C * n_c)
//   balanced_softmax  Ren et al.                              offset log(n_c),          weight 1
//   class_balanced    Cui et al., effective number            offset 0,  weight (1-beta)/(1-beta^n_c),
//                                                             normalised to sum to C
//   `adjust` adds tau1*log(prior_c) to weighted / class_balanced (weights + logit adjustment).
//
// Reduction (PyTorch's F.cross_entropy(weight=w)): mean = sum_i w_y_i l_i / sum_i w_y_i over the
// batch. Hence any common factor of the weights cancels in the mean: w_c = N / (C n_c) (sklearn's
// "balanced" class weights, mean weight over the training set = 1) gives the same mean loss and
// gradient as 1 / n_c; it only sets the scale of a sum reduction.
//
// A class with zero training samples has no prior, no inverse frequency and no effective number:
// every type but `ce` rejects it with an error naming the class.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace mc::losses {

enum class LossType { CE, LogitAdjusted, Weighted, BalancedSoftmax, ClassBalanced };

const char* loss_type_name(LossType t);     // "ce", "logit_adjusted", ...
LossType parse_loss_type(const std::string& s);  // throws listing the allowed names

// model.head regression: the loss on the predicted T-score.
enum class RegressionLoss { Huber, MSE };

struct LossSpec {
  LossType type = LossType::LogitAdjusted;
  RegressionLoss regression = RegressionLoss::Huber;  // regression head only
  double huber_delta = 1.0;                           // Huber: quadratic within +-delta T units
  double tau1 = 1.0;     // logit adjustment strength (paper's best 1, reference code 0.65)
  double beta = 0.9999;  // class_balanced: in [0, 1)
  bool adjust = false;   // weighted / class_balanced: also add tau1 * log(prior)
};

// Training class counts from training labels (each in [0, K)): the input of class_terms/Loss.
std::vector<int64_t> class_counts(const std::vector<int64_t>& labels, int64_t K);

// Per-class terms in double, from training class counts. Empty vector = term not used.
struct ClassTerms {
  std::vector<double> offset, weight;
};
ClassTerms class_terms(const LossSpec& spec, const std::vector<int64_t>& class_counts);

// The loss as a callable: terms computed once, tensors made once per (dtype, device) and reused,
// so a warmed-up training step allocates nothing here.
class Loss {
 public:
  Loss(const LossSpec& spec, const std::vector<int64_t>& class_counts);
  // logits [N, C] (f32/f64, any device), labels i64 [N] on the same device; mean reduction.
  Tensor operator()(const Tensor& logits, const Tensor& labels, bool mean = true) const;
  const LossSpec& spec() const { return spec_; }
  const ClassTerms& terms() const { return terms_; }
  int64_t num_classes() const { return C_; }
  // The per-class tensors (undefined when unused), made on first use for this dtype/device.
  std::pair<Tensor, Tensor> offset_weight(DType dt, Device dev) const;

 private:
  LossSpec spec_;
  ClassTerms terms_;
  int64_t C_;
  std::unique_ptr<std::mutex> mu_ = std::make_unique<std::mutex>();  // guards cache_ (one per GPU)
  mutable std::map<std::pair<int, int>, std::pair<Tensor, Tensor>> cache_;
};

// Regression head (model.head regression): mean over the batch of Huber(pred - target,
// huber_delta) (PyTorch's HuberLoss) or of (pred - target)^2 (MSELoss). pred [N, 1] or [N],
// target [N] T-scores on the same device (cast to pred's dtype).
Tensor regression_loss(const LossSpec& spec, const Tensor& pred, const Tensor& target);

}  // namespace mc::losses
