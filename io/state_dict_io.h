// Loading named tensors into a model, PyTorch-style, and importing 2D ImageNet weights into the
// 3D ResNet family (timm_3d's inflation rule).
#pragma once
#include <string>
#include <vector>

#include "engine/state_dict.h"

namespace mc::io {

struct LoadOptions {
  // Strict: anything missing, unexpected or mismatched is an error and nothing is copied.
  // Otherwise what matches by name, shape and kind (floating / integer) is copied.
  bool strict = true;
  // DataParallel and MedicalNet checkpoints name everything "module.<key>". Stripped from the
  // source keys unless the model's own keys use that prefix.
  bool strip_module_prefix = true;
  // PyTorch's BatchNorm fills in num_batches_tracked when a checkpoint lacks it (torchvision's
  // ImageNet weights predate it), so its absence is not an error there either. Those tensors
  // keep their value and are listed in LoadReport::kept.
  bool allow_missing_num_batches_tracked = true;
};

struct LoadReport {
  std::vector<std::string> loaded;      // copied, in destination order
  std::vector<std::string> missing;     // in the model, not in the source
  std::vector<std::string> unexpected;  // in the source (after prefix stripping), not in the model
  std::vector<std::string> mismatched;  // "name: expected [..] f32, got [..] f16"
  std::vector<std::string> kept;       // missing num_batches_tracked, tolerated (see LoadOptions)
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string summary() const;  // one line per non-empty list
};

// Copies src into dst's tensors (views into the model) with Tensor::copy_, converting dtype
// (f16/bf16/f64 -> f32, i32 -> i64, ...) and device. Everything is validated before anything is
// copied, so a strict failure leaves the model untouched; its mc::Error lists every problem.
LoadReport load_state_dict(const StateDict& dst, const StateDict& src, const LoadOptions& opts = {});

// Finite or refuse: one NaN or inf in a weight (or a negative batch-norm running_var, any key
// ending in "running_var") gives every scan the same confident answer. Throws
// "<source>: tensor '<name>' has N non-finite value(s) ...<tail>". load_state_dict checks what
// it is about to copy.
void check_finite_weights(const StateDict& sd, const std::string& source, const std::string& tail = "");

// load_state_dict from a safetensors file, through zero-copy views of the mapping.
LoadReport load_state_dict_file(const StateDict& dst, const std::string& path,
                                const LoadOptions& opts = {});

// 2D -> 3D inflation (timm_3d): every 4-D kernel (O, I, k, k) becomes (O, I, k, k, k), repeated
// over the new depth axis (axis 2) and divided by k, so a depth-constant volume gives the 2D
// response. Before that, the stem kernel is adapted to in_chans as timm's adapt_input_conv does:
// in_chans 1 sums the RGB filters; in_chans other than 1 or 3 repeats them cyclically and scales
// by 3 / in_chans. Other tensors pass through (sharing storage). Results keep each tensor's dtype
// and device; the arithmetic is done in double on the CPU.
StateDict inflate_2d_to_3d(const StateDict& src2d, int in_chans,
                           const std::string& stem = "conv1.weight");

// Removes every entry whose key starts with prefix ("fc." drops the classifier head so a
// checkpoint with another class count loads non-strict); returns how many were removed.
size_t drop_keys(StateDict& sd, const std::string& prefix);

}  // namespace mc::io
