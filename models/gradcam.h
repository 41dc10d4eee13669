// Grad-CAM (Selvaraju et al., ICCV 2017) in 3D with the engine's own autograd: where in the
// volume the evidence for a class lies, as seen by a convolutional stage.
//   alpha_c = mean over the stage's voxels of d score / d A_c   (A: the stage's activations)
//   cam     = relu(sum_c alpha_c A_c)                            on the stage's d x h x w grid
// The score is the class's logit (before softmax, as in the paper). The activations are
// computed without a graph; only the head (for a ResNet: global average pool + fc) is
// differentiated, which gives the same gradient as a full backward pass would at that stage.
// Works on whatever device and layout the features are (CPU or CUDA); the map comes back as
// f32 on the CPU.
#pragma once
#include <array>
#include <cstdint>
#include <functional>

#include "engine/tensor.h"
#include "models/resnet3d.h"

namespace mc::models {

struct GradCam {
  Tensor map;          // f32 [d, h, w] on the CPU, >= 0 (all zero when no voxel argues for the class)
  int64_t cls = -1;    // the class explained
  double score = 0;    // its logit
  std::vector<double> logits;
  std::vector<double> weights;  // alpha_c per channel
};

// features: [1, C, d, h, w]; head: features -> logits [1, K], built from differentiable ops.
// cls < 0: the arg-max of the logits. Errors name a bad shape or class.
GradCam grad_cam(const Tensor& features, const std::function<Tensor(const Tensor&)>& head, int64_t cls);
// A ResNet-3D's stage `stage` (default 4 = layer4, the last convolutional stage) for the input
// x [1, C, D, H, W], in eval mode (x already on the model's device and in its layout). For an
// earlier stage the head is the rest of the network, differentiated through its convolutions.
GradCam grad_cam(ResNet3d& model, const Tensor& x, int64_t cls, int stage = 4);

// PyTorch's F.interpolate(mode="trilinear", align_corners=False) of a [d, h, w] f32 CPU map to
// `out` = {D, H, W}: source coordinate (i + 0.5) * in / out - 0.5, clamped at 0.
Tensor upsample_trilinear(const Tensor& map, const std::array<int64_t, 3>& out);

}  // namespace mc::models
