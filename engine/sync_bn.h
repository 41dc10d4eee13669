// Synchronised batch norm: batch statistics over the global batch, spread over the ranks of a
// Communicator, so that W ranks with B samples each normalise exactly as one process with W*B
// (REFERENCE: with batch 8 split over GPUs, batch norm needs synchronised statistics).
//
// Semantics follow torch.nn.SyncBatchNorm:
//   forward (training)  every rank contributes (count, mean, sum of squared deviations) per
//                       channel; all ranks merge them in rank order (Chan et al.'s pairwise
//                       update: stable, and exactly the one-process statistics on one rank);
//                       normalise with the global mean and biased variance; running_var takes
//                       the global unbiased variance.
//   backward            sum(dy) and sum(dy * xhat) are all-reduced for the input gradient;
//                       weight and bias gradients are this rank's own sums, to be summed (and
//                       divided by the world size) with the other parameter gradients by
//                       allreduce_gradients, as for any parameter.
//   evaluation          the running statistics, no communication (= batch_norm).
// Every rank must call it (and run backward through it) in the same order: each call is one
// collective in forward and one in backward. `comm` must outlive the autograd graph.
//
// CPU tensors (f32, f64, NCDHW): per-channel loops accumulating in double; on one rank the
// result is bit-identical to batch_norm. Other devices go through the batch-norm prims (cuDNN on CUDA):
// the local mean and inverse std come from the training prim, the merge runs on the host in
// double, the normalisation and gradients are affine maps done by the evaluation prims. That
// path reads the per-channel statistics on the host (two small syncs in forward, one in
// backward), so a step that uses it cannot be captured in a CUDA graph.
#pragma once
#include "engine/dist.h"
#include "engine/tensor.h"

namespace mc {

Tensor sync_batch_norm(const Tensor& x, const Tensor& weight, const Tensor& bias,
                       Tensor& running_mean, Tensor& running_var, bool training, double momentum,
                       double eps, Communicator& comm);

namespace detail {
// The device path on any device (tests run it on the CPU, where the loops are the reference).
Tensor sync_batch_norm_prims(const Tensor& x, const Tensor& weight, const Tensor& bias,
                             Tensor& running_mean, Tensor& running_var, double momentum,
                             double eps, Communicator& comm);
}  // namespace detail

}  // namespace mc
