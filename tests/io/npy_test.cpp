// .npy reading (numpy.save's format) for mc_predict --tensor: dtypes converted to f32, and
// errors that name the file.
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>

#include "engine/check.h"
#include "io/npy.h"
#include "test_util.h"

namespace mc::io {
namespace {

// numpy.save's layout: magic, version 1.0, u16 header length, the dict padded to 64 bytes.
std::string npy(const std::string& descr, const std::string& shape, const std::string& data, bool fortran = false) {
  std::string h = "{'descr': '" + descr + "', 'fortran_order': " + (fortran ? "True" : "False") + ", 'shape': " + shape + ", }";
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string out = "\x93NUMPY";
  out += char(1), out += char(0), out += char(h.size() & 0xff), out += char(h.size() >> 8);
  return out + h + data;
}

std::string write(const std::string& name, const std::string& bytes) {
  const std::string path = test::temp_dir() + "/" + name;
  std::ofstream(path, std::ios::binary) << bytes;
  return path;
}

TEST(Npy, ReadsFloatAndIntegerArrays) {
  const float f[6] = {0.5f, -1, 2, 3.25f, 0, 1e-3f};
  const Tensor a = read_npy(write("a.npy", npy("<f4", "(1, 2, 3)", std::string(reinterpret_cast<const char*>(f), sizeof f))));
  EXPECT_EQ(a.shape(), (Shape{1, 2, 3}));
  EXPECT_EQ(a.to_vector<float>(), std::vector<float>(f, f + 6));
  const double d[2] = {1.5, -2.25};
  EXPECT_EQ(read_npy(write("d.npy", npy("<f8", "(2,)", std::string(reinterpret_cast<const char*>(d), sizeof d)))).to_vector<float>(),
            (std::vector<float>{1.5f, -2.25f}));
  const int16_t s[2] = {-1000, 400};
  EXPECT_EQ(read_npy(write("s.npy", npy("<i2", "(2,)", std::string(reinterpret_cast<const char*>(s), sizeof s)))).to_vector<float>(),
            (std::vector<float>{-1000, 400}));
}

TEST(Npy, ErrorsNameTheFile) {
  auto error_of = [](const std::string& path) {
    try {
      read_npy(path);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string four(16, '\0');
  std::string m = error_of(write("short.npy", npy("<f4", "(5,)", four)));
  EXPECT_NE(m.find("short.npy: .npy data holds 16 bytes, shape [5] of <f4 needs 20"), std::string::npos) << m;
  m = error_of(write("big.npy", npy(">f4", "(4,)", four)));
  EXPECT_NE(m.find("is not little-endian"), std::string::npos) << m;
  m = error_of(write("fortran.npy", npy("<f4", "(2, 2)", four, true)));
  EXPECT_NE(m.find("Fortran-ordered"), std::string::npos) << m;
  m = error_of(write("text.npy", "hello world, not numpy"));
  EXPECT_NE(m.find("text.npy: not a .npy file"), std::string::npos) << m;
}

}  // namespace
}  // namespace mc::io
