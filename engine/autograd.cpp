#include "engine/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "engine/ops.h"

namespace mc {

namespace {
thread_local bool g_grad_enabled = true;
RecordObserver g_record_observer;
}

bool grad_enabled() { return g_grad_enabled; }
NoGradGuard::NoGradGuard() : prev_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = prev_; }

bool any_requires_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void record(Tensor& out, std::shared_ptr<Node> node, std::initializer_list<const Tensor*> inputs) {
  for (const Tensor* t : inputs)
    node->inputs.push_back(t && t->defined() && t->requires_grad() ? t->autograd_meta() : nullptr);
  auto meta = std::make_shared<AutogradMeta>();
  meta->requires_grad = true;
  meta->grad_fn = std::move(node);
  out.autograd_meta() = std::move(meta);
  if (g_record_observer) g_record_observer(*out.autograd_meta()->grad_fn, out);
}

void set_record_observer(RecordObserver f) { g_record_observer = std::move(f); }

// ---- Tensor's autograd members ----

bool Tensor::requires_grad() const { return ag_ && ag_->requires_grad; }

Tensor& Tensor::set_requires_grad(bool r) {
  MC_CHECK(!r || is_floating(dtype_), "requires_grad needs a floating tensor, got ", str());
  if (!ag_) ag_ = std::make_shared<AutogradMeta>();
  MC_CHECK(!ag_->grad_fn, "set_requires_grad on a non-leaf tensor");
  ag_->requires_grad = r;
  return *this;
}

Tensor Tensor::grad() const { return ag_ ? ag_->grad : Tensor(); }

void Tensor::set_grad(const Tensor& g) {
  if (!ag_) ag_ = std::make_shared<AutogradMeta>();
  MC_CHECK(!g.defined() || g.shape() == shape_, "set_grad: shape ", shape_str(g.shape()),
           " does not match ", shape_str(shape_));
  ag_->grad = g;
}

void Tensor::zero_grad() {
  if (ag_) ag_->grad = Tensor();
}

Tensor Tensor::detach() const {
  Tensor t = *this;
  t.ag_.reset();
  return t;
}

void Tensor::backward() const { backward(Tensor()); }

void Tensor::backward(const Tensor& grad_out) const {
  MC_CHECK(requires_grad(), "backward() on a tensor that does not require grad");
  Tensor seed = grad_out;
  if (!seed.defined()) {
    MC_CHECK(numel() == 1, "backward() without a gradient needs a scalar, got ", str());
    seed = Tensor::full(shape_, 1.0, dtype_, device_);
  }
  MC_CHECK(seed.shape() == shape_, "backward(): gradient shape ", shape_str(seed.shape()),
           " does not match ", shape_str(shape_));

  // Topological order of the metas reachable from this one (iterative DFS, post-order). The
  // order holds owning pointers: freeing each node as we go must not free metas still ahead.
  std::vector<std::shared_ptr<AutogradMeta>> order;
  std::unordered_set<AutogradMeta*> seen{ag_.get()};
  std::vector<std::pair<std::shared_ptr<AutogradMeta>, size_t>> stack{{ag_, 0}};
  while (!stack.empty()) {
    auto& [m, i] = stack.back();
    Node* n = m->grad_fn.get();
    if (n && i < n->inputs.size()) {
      const std::shared_ptr<AutogradMeta>& child = n->inputs[i++];
      if (child && seen.insert(child.get()).second) stack.emplace_back(child, 0);
    } else {
      order.push_back(std::move(m));
      stack.pop_back();
    }
  }

  NoGradGuard no_grad;  // backward itself is not differentiated
  std::unordered_map<AutogradMeta*, Tensor> pending;
  pending[ag_.get()] = seed;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    AutogradMeta* m = it->get();
    auto found = pending.find(m);
    if (found == pending.end()) continue;  // nothing flowed here
    Tensor g = std::move(found->second);
    pending.erase(found);
    if (!m->grad_fn) {  // leaf: accumulate
      if (!m->grad.defined()) m->grad = g.clone();  // g may alias another gradient
      else add_(m->grad, g);
      continue;
    }
    std::shared_ptr<Node> node = std::move(m->grad_fn);  // frees the graph as we go
    std::vector<Tensor> gi = node->backward(g);
    MC_CHECK(gi.size() == node->inputs.size(), node->name(), ": backward returned ", gi.size(),
             " gradients for ", node->inputs.size(), " inputs");
    for (size_t i = 0; i < gi.size(); ++i) {
      AutogradMeta* in = node->inputs[i].get();
      if (!in || !gi[i].defined()) continue;
      auto p = pending.find(in);
      if (p == pending.end()) pending.emplace(in, std::move(gi[i]));
      else p->second = add(p->second, gi[i]);
    }
  }
}

}  // namespace mc
