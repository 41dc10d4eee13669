#include "losses/losses.h"

#include <cmath>

#include "engine/ops.h"

namespace mc::losses {
namespace {

constexpr std::pair<LossType, const char*> kNames[] = {
    {LossType::CE, "ce"},
    {LossType::LogitAdjusted, "logit_adjusted"},
    {LossType::Weighted, "weighted"},
    {LossType::BalancedSoftmax, "balanced_softmax"},
    {LossType::ClassBalanced, "class_balanced"},
};

void check_counts(const LossSpec& spec, const std::vector<int64_t>& n) {
  MC_CHECK(n.size() >= 2, "loss '", loss_type_name(spec.type),
           "' needs the training count of every class (at least 2), got ", n.size());
  for (size_t c = 0; c < n.size(); ++c) {
    MC_CHECK(n[c] >= 0, "loss: class ", c, " has a negative training count ", n[c]);
    MC_CHECK(n[c] > 0, "loss '", loss_type_name(spec.type), "': class ", c,
             " has no training samples, so it has no prior / class weight; remove the class or "
             "use loss 'ce'");
  }
}

std::vector<double> log_prior_times(const std::vector<int64_t>& n, double tau) {
  double total = 0;
  for (int64_t v : n) total += double(v);
  std::vector<double> out;
  for (int64_t v : n) out.push_back(tau * std::log(double(v) / total));
  return out;
}

}  // namespace

const char* loss_type_name(LossType t) {
  for (const auto& [type, name] : kNames)
    if (type == t) return name;
  return "?";
}

LossType parse_loss_type(const std::string& s) {
  std::string allowed;
  for (const auto& [type, name] : kNames) {
    if (s == name) return type;
    allowed += std::string(allowed.empty() ? "" : ", ") + name;
  }
  MC_FAIL("unknown loss type '", s, "' (allowed: ", allowed, ")");
}

std::vector<int64_t> class_counts(const std::vector<int64_t>& labels, int64_t K) {
  MC_CHECK(K >= 1, "class_counts: need at least one class, got ", K);
  std::vector<int64_t> n(size_t(K), 0);
  for (size_t i = 0; i < labels.size(); ++i) {
    MC_CHECK(labels[i] >= 0 && labels[i] < K, "class_counts: label ", labels[i], " at ", i,
             " outside [0, ", K, ")");
    ++n[size_t(labels[i])];
  }
  return n;
}

ClassTerms class_terms(const LossSpec& spec, const std::vector<int64_t>& n) {
  ClassTerms t;
  if (spec.type == LossType::CE) return t;
  check_counts(spec, n);
  const double C = double(n.size());
  double total = 0;
  for (int64_t v : n) total += double(v);
  switch (spec.type) {
    case LossType::CE:
      break;
    case LossType::LogitAdjusted:
      t.offset = log_prior_times(n, spec.tau1);
      break;
    case LossType::BalancedSoftmax:
      for (int64_t v : n) t.offset.push_back(std::log(double(v)));
      break;
    case LossType::Weighted:
      for (int64_t v : n) t.weight.push_back(total / (C * double(v)));
      break;
    case LossType::ClassBalanced: {
      MC_CHECK(spec.beta >= 0 && spec.beta < 1, "loss 'class_balanced': beta must be in [0, 1), got ",
               spec.beta);
      // 1 - beta^n as -expm1(n log beta): exact for beta near 1, where the effective number
      // matters and 1 - pow() would cancel.
      double sum = 0;
      for (int64_t v : n) {
        const double eff = spec.beta == 0 ? 1.0 : -std::expm1(double(v) * std::log(spec.beta));
        t.weight.push_back((1 - spec.beta) / eff);
        sum += t.weight.back();
      }
      for (double& w : t.weight) w *= C / sum;
      break;
    }
  }
  if (spec.adjust) {
    MC_CHECK(spec.type == LossType::Weighted || spec.type == LossType::ClassBalanced,
             "loss: 'adjust' combines class weights with logit adjustment; it applies to "
             "'weighted' and 'class_balanced', not '", loss_type_name(spec.type), "'");
    t.offset = log_prior_times(n, spec.tau1);
  }
  return t;
}

Loss::Loss(const LossSpec& spec, const std::vector<int64_t>& class_counts)
    : spec_(spec), terms_(class_terms(spec, class_counts)), C_(int64_t(class_counts.size())) {}

std::pair<Tensor, Tensor> Loss::offset_weight(DType dt, Device dev) const {
  std::lock_guard<std::mutex> lock(*mu_);
  const std::pair<int, int> key{int(dt), dev.is_cuda() ? 1 + dev.index : 0};
  auto it = cache_.find(key);
  if (it != cache_.end()) return it->second;
  auto make = [&](const std::vector<double>& v) {
    if (v.empty()) return Tensor();
    return Tensor::from(v, {int64_t(v.size())}).to(dt).to(dev);
  };
  return cache_[key] = {make(terms_.offset), make(terms_.weight)};
}

Tensor Loss::operator()(const Tensor& logits, const Tensor& labels, bool mean) const {
  MC_CHECK(logits.dim() == 2, "loss: logits must be [N, C], got ", logits.str());
  MC_CHECK(C_ == 0 || logits.size(1) == C_, "loss: logits have ", logits.size(1),
           " classes but the loss was built from ", C_, " class counts");
  auto [offset, weight] = offset_weight(logits.dtype(), logits.device());
  return cross_entropy(logits, labels, weight, offset, mean);
}

Tensor regression_loss(const LossSpec& spec, const Tensor& pred, const Tensor& target) {
  const int64_t N = pred.size(0);
  MC_CHECK(pred.numel() == N && target.numel() == N, "regression loss: predictions ", shape_str(pred.shape()),
           " and targets ", shape_str(target.shape()), " must hold one value per sample");
  const Tensor residual = add(reshape(pred, {N}), scale(reshape(target.to(pred.dtype()), {N}), -1.0));
  return mean(spec.regression == RegressionLoss::Huber ? huber(residual, spec.huber_delta) : square(residual));
}

}  // namespace mc::losses
