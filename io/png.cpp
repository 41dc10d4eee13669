#include "io/png.h"

#include <zlib.h>

#include "engine/check.h"
#include "io/atomic_file.h"

namespace mc::io {
namespace {

void be32(std::string& s, uint32_t v) {
  for (int sh = 24; sh >= 0; sh -= 8) s.push_back(char((v >> sh) & 0xff));
}

// length, type, data, CRC of type + data (PNG spec 5.3).
void chunk(std::string& out, const char* type, const std::string& data) {
  be32(out, uint32_t(data.size()));
  const std::string body = std::string(type, 4) + data;
  out += body;
  be32(out, uint32_t(crc32(0L, reinterpret_cast<const Bytef*>(body.data()), uInt(body.size()))));
}

}  // namespace

std::string png_bytes(const RgbImage& img) {
  MC_CHECK(img.width > 0 && img.height > 0 && img.width < (1 << 24) && img.height < (1 << 24),
           "PNG: bad image size ", img.width, " x ", img.height);
  MC_CHECK(img.rgb.size() == size_t(img.width * img.height * 3), "PNG: ", img.rgb.size(), " bytes for ",
           img.width, " x ", img.height, " RGB pixels");
  // Each row: filter byte 0 (none), then the pixels.
  std::string raw;
  raw.reserve(size_t(img.height * (img.width * 3 + 1)));
  for (int64_t y = 0; y < img.height; ++y) {
    raw.push_back('\0');
    raw.append(reinterpret_cast<const char*>(img.rgb.data()) + y * img.width * 3, size_t(img.width * 3));
  }
  uLongf len = compressBound(uLong(raw.size()));
  std::string z(len, '\0');
  MC_CHECK(compress2(reinterpret_cast<Bytef*>(z.data()), &len, reinterpret_cast<const Bytef*>(raw.data()),
                     uLong(raw.size()), 6) == Z_OK,
           "PNG: zlib compression failed");
  z.resize(len);
  std::string out = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  be32(ihdr, uint32_t(img.width));
  be32(ihdr, uint32_t(img.height));
  ihdr += std::string("\x08\x02\x00\x00\x00", 5);  // 8 bits, RGB, deflate, filter 0, no interlace
  chunk(out, "IHDR", ihdr);
  chunk(out, "IDAT", z);
  chunk(out, "IEND", "");
  return out;
}

void write_png(const std::string& path, const RgbImage& img) { write_atomic(path, png_bytes(img)); }

}  // namespace mc::io
