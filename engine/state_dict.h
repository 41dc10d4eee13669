// Named tensors in PyTorch's key names and layouts ("conv1.weight", "bn1.running_mean", ...).
// A module's state dict holds views of its own tensors, so copying into them loads a model.
#pragma once
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace mc {
using StateDict = std::vector<std::pair<std::string, Tensor>>;
}
