// Test-time augmentation by flips (mc_predict --tta, mc_eval --tta): the model's logits are the
// mean of its logits over the input flipped along each subset of the axes that training flipped
// (augment.enabled with augment.flip_prob > 0 on an axis; 2^axes views, the identity included).
// Averaging logits (not probabilities) keeps one set of scores, so post-hoc adjustment and
// temperature compose with it exactly as without TTA (eval/calibration.h). Flips the model
// never saw in training are not used: with no flipped axis --tta is an error that says so.
#pragma once
#include <array>
#include <string>
#include <vector>

#include "engine/nn.h"
#include "pipeline/config.h"

namespace mc::pipeline {

using Flip = std::array<bool, 3>;  // along D, H, W

// The views for cfg's training augmentation (identity first). Throws when no axis was flipped.
std::vector<Flip> tta_flips(const Config& cfg);
std::string flips_text(const std::vector<Flip>& flips);  // "8 views: flips of D, H, W"
// x [N, C, D, H, W] f32 flipped (a copy on x's device; the flip runs on the CPU).
Tensor flip_volume(const Tensor& x, const Flip& f);
// Mean over flips of model.forward(model_input(flip(x), dev)), f32 [N, K] on the CPU, no grad.
Tensor tta_logits(nn::Module& model, const Tensor& x, Device dev, const std::vector<Flip>& flips);

}  // namespace mc::pipeline
