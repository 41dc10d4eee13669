#include "io/cache.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "test_util.h"

namespace mc::io {
namespace {

namespace fs = std::filesystem;

std::vector<Tensor> random_volumes(int n, const Shape& shape, uint64_t seed) {
  std::vector<Tensor> v;
  for (int i = 0; i < n; ++i) v.push_back(test::uniform(shape, seed + uint64_t(i), 0.0, 1.0));
  return v;
}

std::vector<CacheRecord> three_records() {
  return {{"s001", 0, -2.7},
          {"quote\" back\\slash\nnewline \xc3\xa9", 2, 0.3},
          {"unknown", -1, std::numeric_limits<double>::quiet_NaN()}};
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}

void spit(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

size_t files_in(const std::string& dir) {
  return size_t(std::distance(fs::directory_iterator(dir), fs::directory_iterator()));
}

// The error message names the file.
void expect_open_error(const std::string& path, const std::string& why) {
  try {
    Cache::open(path);
    ADD_FAILURE() << "opening " << why << " did not throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << why << ": " << e.what();
  }
}

TEST(Cache, RoundTripF16) {
  const std::string path = test::temp_dir() + "/train.mcc";
  const auto records = three_records();
  const auto volumes = random_volumes(3, {2, 5, 6, 7}, 11);
  const std::map<std::string, std::string> meta{{"window", "400/2000"}, {"size", "{\"cube\": 6}"}};
  write_cache(path, records, volumes, meta);

  const Cache c = Cache::open(path);
  EXPECT_EQ(c.size(), 3);
  EXPECT_EQ(c.volume_shape(), (Shape{2, 5, 6, 7}));
  EXPECT_EQ(c.stored_dtype(), DType::F16);
  EXPECT_EQ(c.meta(), meta);
  for (int64_t i = 0; i < 3; ++i) {
    EXPECT_EQ(c.record(i).id, records[size_t(i)].id);
    EXPECT_EQ(c.record(i).label, records[size_t(i)].label);
    if (std::isnan(records[size_t(i)].tscore)) EXPECT_TRUE(std::isnan(c.record(i).tscore));
    else EXPECT_EQ(c.record(i).tscore, records[size_t(i)].tscore);

    const Tensor view = c.volume(i), f32 = c.volume_f32(i);
    EXPECT_EQ(view.dtype(), DType::F16);
    EXPECT_EQ(f32.dtype(), DType::F32);
    const float* src = volumes[size_t(i)].data<float>();
    const auto got = f32.to_vector<float>();
    for (size_t j = 0; j < got.size(); ++j) {
      ASSERT_EQ(got[j], f16_to_float(float_to_f16(src[j]))) << "volume " << i << " voxel " << j;
      ASSERT_LE(std::abs(got[j] - src[j]), 1.0f / 4096) << "f16 rounding on [0, 1] is <= 2^-12";
    }
  }
  EXPECT_EQ(c.class_counts(3), (std::vector<int64_t>{1, 0, 1}));
  EXPECT_THROW(c.class_counts(2), Error);  // label 2 with 2 classes
  EXPECT_THROW(c.record(3), Error);
}

TEST(Cache, RoundTripF32IsExactAndZeroCopy) {
  const std::string path = test::temp_dir() + "/val.mcc";
  const auto volumes = random_volumes(3, {1, 4, 4, 4}, 5);
  write_cache(path, three_records(), volumes, {}, {DType::F32});
  Tensor view;
  {
    const Cache c = Cache::open(path);
    EXPECT_EQ(c.stored_dtype(), DType::F32);
    EXPECT_TRUE(c.meta().empty());
    view = c.volume(2);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(c.volume(0).raw()) % 64, 0u) << "aligned volumes";
    EXPECT_EQ(c.volume_f32(1).raw(), c.volume(1).raw()) << "f32 needs no conversion";
  }
  // The view keeps the mapping alive after the Cache is gone.
  EXPECT_EQ(view.to_vector<float>(), volumes[2].to_vector<float>());
}

TEST(Cache, FileHasTheSafetensorsLayout) {
  const std::string path = test::temp_dir() + "/c.mcc";
  write_cache(path, three_records(), random_volumes(3, {1, 3, 3, 3}, 1), {{"k", "v"}});
  const std::string bytes = slurp(path);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);
  ASSERT_LE(8 + n, bytes.size());
  EXPECT_EQ((8 + n) % 64, 0u) << "data buffer aligned";
  const std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.front(), '{');
  EXPECT_NE(header.find("\"volumes\":{\"dtype\":\"F16\",\"shape\":[3,1,3,3,3],\"data_offsets\":[0,162]}"),
            std::string::npos) << header;
  EXPECT_NE(header.find("\"labels\":{\"dtype\":\"I64\",\"shape\":[3],\"data_offsets\":[162,186]}"),
            std::string::npos) << header;
  EXPECT_NE(header.find("\"tscores\":{\"dtype\":\"F64\",\"shape\":[3],\"data_offsets\":[186,210]}"),
            std::string::npos) << header;
  EXPECT_NE(header.find("\"medconv.format\":\"medconv-cache\""), std::string::npos);
  EXPECT_EQ(bytes.size(), 8 + n + 210);
}

// Issue 11: one flipped byte in a volume is a checksum mismatch naming the cache, not a
// slightly different training set.
TEST(Cache, CorruptedVolumeByteIsAChecksumError) {
  const std::string dir = test::temp_dir(), path = dir + "/c.safetensors";
  write_cache(path, three_records(), random_volumes(3, {1, 4, 4, 4}, 5), {});
  EXPECT_EQ(Cache::open(path).size(), 3);
  std::string bytes = slurp(path);
  bytes[bytes.size() - 200] ^= 0x10;  // inside the volumes (labels and T-scores are 48 bytes)
  spit(path, bytes);
  test::expect_error([&] { Cache::open(path); }, {path, "checksum mismatch"});
}

TEST(Cache, AtomicWriteLeavesNothingOnError) {
  const std::string dir = test::temp_dir(), path = dir + "/c.mcc";
  auto volumes = random_volumes(3, {1, 4, 4, 4}, 2);
  // Rejected before anything is written: mismatched shapes, counts, reserved keys, bad labels.
  auto odd = volumes;
  odd[1] = test::uniform({1, 4, 4, 5}, 3, 0, 1);
  EXPECT_THROW(write_cache(path, three_records(), odd, {}), Error);
  EXPECT_THROW(write_cache(path, three_records(), {volumes[0]}, {}), Error);
  EXPECT_THROW(write_cache(path, three_records(), volumes, {{"medconv.ids", "x"}}), Error);
  auto bad_label = three_records();
  bad_label[0].label = -2;
  EXPECT_THROW(write_cache(path, bad_label, volumes, {}), Error);
  EXPECT_EQ(files_in(dir), 0u);

  // Failing half-way through (a value f16 cannot hold): the temporary file is removed too.
  volumes[2].data<float>()[5] = 1e6f;
  EXPECT_THROW(write_cache(path, three_records(), volumes, {}), Error);
  EXPECT_EQ(files_in(dir), 0u);

  // A failed rewrite leaves the previous cache as it was.
  volumes[2].data<float>()[5] = 0.5f;
  write_cache(path, three_records(), volumes, {{"v", "1"}});
  volumes[0].data<float>()[0] = std::nanf("");
  EXPECT_THROW(write_cache(path, three_records(), volumes, {{"v", "2"}}), Error);
  EXPECT_EQ(files_in(dir), 1u);
  EXPECT_EQ(Cache::open(path).meta().at("v"), "1");
}

TEST(Cache, CorruptFilesAreErrorsNamingTheFile) {
  const std::string dir = test::temp_dir(), good = dir + "/good.mcc";
  write_cache(good, three_records(), random_volumes(3, {1, 4, 4, 4}, 9), {});
  const std::string bytes = slurp(good);
  uint64_t n;
  std::memcpy(&n, bytes.data(), 8);

  expect_open_error(dir + "/missing.mcc", "a missing file");
  spit(dir + "/empty.mcc", "");
  expect_open_error(dir + "/empty.mcc", "an empty file");
  spit(dir + "/short.mcc", bytes.substr(0, 5));
  expect_open_error(dir + "/short.mcc", "a 5-byte file");
  spit(dir + "/trunc.mcc", bytes.substr(0, bytes.size() - 100));
  expect_open_error(dir + "/trunc.mcc", "a truncated file");
  spit(dir + "/header_cut.mcc", bytes.substr(0, 8 + n / 2));
  expect_open_error(dir + "/header_cut.mcc", "a file cut inside its header");
  spit(dir + "/extra.mcc", bytes + "junk");
  expect_open_error(dir + "/extra.mcc", "a file with trailing bytes");

  std::string huge = bytes;
  const uint64_t big = uint64_t(1) << 40;
  std::memcpy(huge.data(), &big, 8);
  spit(dir + "/huge.mcc", huge);
  expect_open_error(dir + "/huge.mcc", "an absurd header length");

  std::string broken = bytes;
  broken[8] = '#';  // the JSON's opening brace
  spit(dir + "/json.mcc", broken);
  expect_open_error(dir + "/json.mcc", "broken JSON");

  std::string wrong_dtype = bytes;
  const size_t at = wrong_dtype.find("\"I64\"");
  ASSERT_NE(at, std::string::npos);
  wrong_dtype.replace(at, 5, "\"F64\"");
  spit(dir + "/dtype.mcc", wrong_dtype);
  expect_open_error(dir + "/dtype.mcc", "labels of the wrong dtype");

  // A valid safetensors file that is not a MedConv cache.
  std::string plain = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  const uint64_t pn = plain.size();
  spit(dir + "/plain.mcc", std::string(reinterpret_cast<const char*>(&pn), 8) + plain + "abcd");
  expect_open_error(dir + "/plain.mcc", "a safetensors file without cache metadata");
}

}  // namespace
}  // namespace mc::io
