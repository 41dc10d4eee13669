// NumPy .npy arrays (format versions 1-3, numpy.save's output): little-endian float16/32/64,
// int8/16/32/64 and uint8/16 in C order, read into an f32 CPU tensor. For tensors prepared
// elsewhere (MONAI, PyTorch) and handed to mc_predict --tensor as they are.
#pragma once
#include <string>

#include "engine/tensor.h"

namespace mc::io {

// Errors name the file and what is wrong: not .npy, Fortran order, big-endian or unsupported
// dtype, a size that does not match the shape.
Tensor read_npy(const std::string& path);

}  // namespace mc::io
