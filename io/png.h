// PNG images (8-bit RGB, no interlace), written with zlib: enough for the report's pictures
// (saliency overlays) without another dependency. Written atomically (io/atomic_file.h).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace mc::io {

struct RgbImage {
  int64_t width = 0, height = 0;
  std::vector<uint8_t> rgb;  // height rows of width pixels, 3 bytes each, top row first
  RgbImage() = default;
  RgbImage(int64_t w, int64_t h, uint8_t fill = 0) : width(w), height(h), rgb(size_t(w * h * 3), fill) {}
  uint8_t* at(int64_t x, int64_t y) { return rgb.data() + size_t((y * width + x) * 3); }
};

// The PNG file's bytes; errors (empty image, wrong buffer size) throw mc::Error.
std::string png_bytes(const RgbImage& img);
void write_png(const std::string& path, const RgbImage& img);

}  // namespace mc::io
