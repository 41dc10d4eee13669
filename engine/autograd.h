// Reverse-mode autograd. Each op that sees an input requiring grad records a Node holding what
// its backward needs; backward() orders the recorded graph once (topologically) and walks it,
// accumulating into leaf gradients. The graph is freed as it is walked.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "engine/tensor.h"

namespace mc {

struct Node;

struct AutogradMeta {
  bool requires_grad = false;
  Tensor grad;                    // leaves only: accumulated gradient
  std::shared_ptr<Node> grad_fn;  // non-leaves: the op that made this tensor
};

struct Node {
  virtual ~Node() = default;
  virtual const char* name() const = 0;
  // Given d(loss)/d(output), returns d(loss)/d(input_i) for every input (undefined tensor where
  // an input needs no gradient, or where the gradient is zero).
  virtual std::vector<Tensor> backward(const Tensor& grad_out) = 0;
  std::vector<std::shared_ptr<AutogradMeta>> inputs;  // null where no gradient flows
  // Which inputs need a gradient (lets backward skip work).
  bool needs(size_t i) const { return i < inputs.size() && inputs[i] != nullptr; }
};

// Test instrumentation (golden tests, bisection): while set, record() calls it with each new
// node and its output, after the output has its grad_fn; it may read the output or edit its
// values in place before any later op uses them. Empty (the default) costs one test per op.
using RecordObserver = std::function<void(Node& node, Tensor& out)>;
void set_record_observer(RecordObserver f);

bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;
 private:
  bool prev_;
};

// True when recording is on and some input requires grad.
bool any_requires_grad(std::initializer_list<const Tensor*> inputs);

// Attaches `node` as the grad_fn of `out` with the given inputs (those not requiring grad are
// recorded as null). Call only when any_requires_grad(...) is true.
void record(Tensor& out, std::shared_ptr<Node> node, std::initializer_list<const Tensor*> inputs);

}  // namespace mc
