// safetensors reader/writer: round trips, the reference writer's exact bytes, and malformed
// files written byte by byte, each of which must be a clear mc::Error, never a crash.
#include "io/safetensors.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "io/safetensors_format.h"
#include "test_util.h"

namespace mc::io {
namespace {

namespace fs = std::filesystem;
using namespace std::string_literals;

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>()};
}

std::string write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
  return path;
}

std::string le64(uint64_t n) { return std::string(reinterpret_cast<const char*>(&n), 8); }

// A safetensors file: length, header as given (no padding added), data.
std::string file_bytes(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

Tensor from_bits16(const std::vector<uint16_t>& bits, DType dt) {
  Tensor t = Tensor::empty({int64_t(bits.size())}, dt);
  std::memcpy(t.raw(), bits.data(), bits.size() * 2);
  return t;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

::testing::AssertionResult open_fails(const std::string& path, const std::string& phrase) {
  try {
    SafeTensorsFile::open(path);
  } catch (const Error& e) {
    const std::string m = e.what();
    if (m.find(path) == std::string::npos) return ::testing::AssertionFailure() << "no path in: " << m;
    if (m.find(phrase) == std::string::npos)
      return ::testing::AssertionFailure() << "no '" << phrase << "' in: " << m;
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "opened without error";
}

std::string entry(const std::string& name, const std::string& dtype, const std::string& shape,
                  const std::string& offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":" + shape +
         ",\"data_offsets\":" + offsets + "}";
}

TEST(Safetensors, RoundTripEveryDtypeBitExact) {
  const std::string path = test::temp_dir() + "/all.safetensors";
  const float inf = std::numeric_limits<float>::infinity();
  StateDict sd = {
      {"f32", test::randn({3, 4}, 1)},
      {"f64", Tensor::from<double>({1e-300, -2.5, 1e300, std::nan("")}, {2, 2})},
      // NaN, inf, -0, subnormal, max: bit patterns must survive untouched
      {"bf16", from_bits16({0x7FC1, 0xFF80, 0x8000, 0x0001, 0x7F7F, float_to_bf16(inf)}, DType::BF16)},
      {"f16", from_bits16({0x7E01, 0xFC00, 0x8000, 0x0001, 0x7BFF, 0x3C00}, DType::F16)},
      {"i64", Tensor::from<int64_t>({INT64_MIN, INT64_MAX, -1}, {3})},
      {"i32", Tensor::from<int32_t>({INT32_MIN, 7}, {2, 1})},
      {"u8", Tensor::from<uint8_t>({0, 255, 128}, {3})},
      {"scalar", Tensor::from<float>({3.5f}, {})},
      {"empty", Tensor::empty({0}, DType::F32)},
      {"empty2d", Tensor::empty({2, 0, 3}, DType::I64)},
  };
  const SafeTensorsMetadata meta = {{"format", "pt"}, {"odd \"key\"\n", "vält\\ue\t\x01"}};
  save_safetensors(path, sd, meta);

  const StateDict back = load_safetensors(path);
  ASSERT_EQ(back.size(), sd.size());
  for (const auto& [name, t] : sd) {
    auto it = std::find_if(back.begin(), back.end(), [&](auto& kv) { return kv.first == name; });
    ASSERT_NE(it, back.end()) << name;
    EXPECT_TRUE(same_bytes(it->second, t)) << name << ": " << it->second.str() << " vs " << t.str();
  }
  const auto file = SafeTensorsFile::open(path);
  EXPECT_EQ(file.metadata(), meta);
  EXPECT_EQ(file.info("scalar").shape, Shape{});
  EXPECT_EQ(file.info("bf16").dtype, "BF16");
  for (const auto& [name, t] : sd) EXPECT_TRUE(same_bytes(file.view(name), t)) << name;
}

TEST(Safetensors, ViewsAreZeroCopyAndOutliveTheFileObject) {
  const std::string path = test::temp_dir() + "/v.safetensors";
  save_safetensors(path, {{"w", Tensor::from<float>({1, 2, 3}, {3})}, {"b", Tensor::from<uint8_t>({9}, {1})}});
  const std::string before = read_bytes(path);
  Tensor v;
  {
    const auto f = SafeTensorsFile::open(path);
    v = f.view("w");
    EXPECT_EQ(v.raw(), f.view("w").raw());  // the mapping itself, not a copy
    EXPECT_NE(v.raw(), f.copy("w").raw());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(v.raw()) % 4, 0u);
  }
  EXPECT_EQ(v.to_vector<float>(), (std::vector<float>{1, 2, 3}));
  v.fill_(7.0);  // copy-on-write: the file must not change
  EXPECT_EQ(v.to_vector<float>(), (std::vector<float>{7, 7, 7}));
  EXPECT_EQ(read_bytes(path), before);
  EXPECT_EQ(load_safetensors(path)[1].second.to_vector<float>(), (std::vector<float>{1, 2, 3}));
}

TEST(Safetensors, HeaderBytesMatchTheReferenceWriter) {
  const std::string dir = test::temp_dir();
  SafeTensorsWriteOptions plain;
  plain.checksum = false;  // our checksum is the only difference (tested below)
  // The reference implementation's own serialization example: one F32 [1, 2, 3] tensor.
  save_safetensors(dir + "/a", {{"attn.0", Tensor::from<float>({0, 1, 2, 3, 4, 5}, {1, 2, 3})}}, {}, plain);
  const std::string h1 = "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
  ASSERT_EQ(h1.size(), 64u);  // already a multiple of 8: no padding
  std::string data1(24, '\0');
  const float vals[] = {0, 1, 2, 3, 4, 5};
  std::memcpy(data1.data(), vals, 24);
  EXPECT_EQ(read_bytes(dir + "/a"), le64(64) + h1 + data1);

  // No tensors, metadata only: 35 bytes of JSON padded with 5 spaces to 40.
  save_safetensors(dir + "/b", {}, {{"framework", "pt"}}, plain);
  EXPECT_EQ(read_bytes(dir + "/b"), le64(40) + "{\"__metadata__\":{\"framework\":\"pt\"}}     ");
  save_safetensors(dir + "/c", {}, {}, plain);
  EXPECT_EQ(read_bytes(dir + "/c"), le64(8) + "{}      ");

  // Data ordered by descending alignment (I64, F32, U8), then by name: every tensor aligned.
  save_safetensors(dir + "/d", {{"b", Tensor::from<uint8_t>({1, 2, 3}, {3})},
                                {"a", Tensor::from<float>({1.f}, {})},
                                {"c", Tensor::from<int64_t>({-1}, {1})}}, {}, plain);
  const std::string h4 = "{" + entry("c", "I64", "[1]", "[0,8]") + "," + entry("a", "F32", "[]", "[8,12]") +
                         "," + entry("b", "U8", "[3]", "[12,15]") + "}";
  ASSERT_EQ(h4.size(), 161u);
  const std::string bytes = read_bytes(dir + "/d");
  EXPECT_EQ(bytes.substr(0, 8 + 168), le64(168) + h4 + "       ");
  EXPECT_EQ(bytes.size(), 8u + 168u + 15u);
}

// Integrity (issue 11): the data's XXH3-64 in __metadata__, verified on open; one flipped data
// byte is an error naming the file; a file without the key (PyTorch's writer) still loads.
TEST(Safetensors, ChecksumRecordedVerifiedAndOptional) {
  const std::string dir = test::temp_dir();
  const Tensor w = Tensor::from<float>({0.5f, -1.f, 2.f, 3.f}, {2, 2});
  save_safetensors(dir + "/w.safetensors", {{"fc.weight", w}}, {{"epoch", "3"}});
  std::string bytes = read_bytes(dir + "/w.safetensors");
  const std::string want = xxh3_hex(bytes.data() + bytes.size() - 16, 16);
  EXPECT_NE(bytes.find("\"mc.data_xxh3_64\":\"" + want + "\""), std::string::npos) << bytes;
  const SafeTensorsFile f = SafeTensorsFile::open(dir + "/w.safetensors");
  EXPECT_TRUE(f.has_checksum());
  EXPECT_EQ(f.metadata(), (SafeTensorsMetadata{{"epoch", "3"}}));  // the checksum is not the caller's
  bytes[bytes.size() - 3] ^= 0x01;  // one bit of fc.weight
  write_bytes(dir + "/bad.safetensors", bytes);
  test::expect_error([&] { SafeTensorsFile::open(dir + "/bad.safetensors"); },
                     {"bad.safetensors", "checksum mismatch", want});
  test::expect_error([&] { load_safetensors(dir + "/bad.safetensors"); }, {"bad.safetensors", "corrupt"});
  EXPECT_FALSE(SafeTensorsFile::open(dir + "/bad.safetensors", false).metadata().empty());
  // Not hex, wrong length: malformed, named.
  std::string odd = read_bytes(dir + "/w.safetensors");
  odd.replace(odd.find(want), 16, "zzzzzzzzzzzzzzzz");
  write_bytes(dir + "/odd.safetensors", odd);
  test::expect_error([&] { SafeTensorsFile::open(dir + "/odd.safetensors"); },
                     {"odd.safetensors", "mc.data_xxh3_64", "not 16 hex digits"});
  // As PyTorch writes it: no checksum, loads.
  const std::string h = "{\"__metadata__\":{\"format\":\"pt\"},\"fc.weight\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
  write_bytes(dir + "/pt.safetensors", le64(h.size()) + h + bytes.substr(bytes.size() - 16));
  const SafeTensorsFile pt = SafeTensorsFile::open(dir + "/pt.safetensors");
  EXPECT_FALSE(pt.has_checksum());
  EXPECT_EQ(pt.size(), 1u);
}

TEST(Safetensors, UnalignedDataFromOldWritersIsCopied) {
  // Name-sorted layout of old writers: a U8 [3] first leaves the F32 at buffer offset 3.
  const std::string h = "{" + entry("a", "U8", "[3]", "[0,3]") + "," + entry("b", "F32", "[1]", "[3,7]") + "}";
  std::string data = "xyz    ";
  const float f = 2.5f;
  std::memcpy(data.data() + 3, &f, 4);
  const std::string path = write_bytes(test::temp_dir() + "/old.safetensors", file_bytes(h + "   ", data));
  const auto file = SafeTensorsFile::open(path);
  const Tensor b = file.view("b");
  EXPECT_EQ(reinterpret_cast<uintptr_t>(b.raw()) % 4, 0u);
  EXPECT_EQ(b.item(), 2.5);
  EXPECT_EQ(file.view("a").to_vector<uint8_t>(), (std::vector<uint8_t>{'x', 'y', 'z'}));
}

TEST(Safetensors, BoolReadsAsU8AndOtherDtypesAreRejectedByName) {
  const std::string h = "{" + entry("mask", "BOOL", "[2]", "[0,2]") + "," +
                        entry("x", "U16", "[1]", "[2,4]") + "}";
  const std::string path = write_bytes(test::temp_dir() + "/d.safetensors", file_bytes(h, "\x01\x00\x05\x00"s));
  const auto file = SafeTensorsFile::open(path);  // valid file: opening is fine
  EXPECT_EQ(file.view("mask").dtype(), DType::U8);
  EXPECT_EQ(file.view("mask").to_vector<uint8_t>(), (std::vector<uint8_t>{1, 0}));
  for (auto read : {+[](const SafeTensorsFile& f) { f.view("x"); }, +[](const SafeTensorsFile& f) { f.copy("x"); }}) {
    try {
      read(file);
      ADD_FAILURE() << "U16 read without error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("unsupported dtype U16 for tensor 'x'"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(load_safetensors(path), Error);
  EXPECT_THROW(file.view("nope"), Error);
}

TEST(Safetensors, WritesAreAtomic) {
  const std::string dir = test::temp_dir(), path = dir + "/w.safetensors";
  save_safetensors(path, {{"a", Tensor::from<float>({1}, {1})}});
  const std::string first = read_bytes(path);
  // A failing save (duplicate names, undefined tensor) leaves the old file and no temporaries.
  EXPECT_THROW(save_safetensors(path, {{"a", Tensor::from<float>({2}, {1})}, {"a", Tensor::from<float>({3}, {1})}}), Error);
  EXPECT_THROW(save_safetensors(path, {{"u", Tensor()}}), Error);
  EXPECT_THROW(save_safetensors(path, {{"__metadata__", Tensor::from<float>({2}, {1})}}), Error);
  EXPECT_THROW(save_safetensors(path, {{"bad\xff", Tensor::from<float>({2}, {1})}}), Error);
  EXPECT_EQ(read_bytes(path), first);
  // Overwriting replaces the file whole.
  save_safetensors(path, {{"b", Tensor::from<double>({4, 5}, {2})}});
  EXPECT_EQ(load_safetensors(path)[0].first, "b");
  size_t files = 0;
  for ([[maybe_unused]] auto& e : fs::directory_iterator(dir)) ++files;
  EXPECT_EQ(files, 1u);
  // A directory that does not exist: an error naming the target.
  EXPECT_THROW(save_safetensors(dir + "/no/such/dir/x.safetensors", {}), Error);
}

// ---------------------------------------------------------------- malformed files
class SafetensorsMalformed : public ::testing::Test {
 protected:
  std::string dir_ = test::temp_dir();
  std::string put(const std::string& name, const std::string& bytes) { return write_bytes(dir_ + "/" + name, bytes); }
  std::string put(const std::string& name, const std::string& header, const std::string& data) {
    return put(name, file_bytes(header, data));
  }
};

TEST_F(SafetensorsMalformed, ShorterThanTheLength) {
  EXPECT_TRUE(open_fails(put("t.st", "\x08\0\0\0\0"s), "shorter than the 8-byte header length"));
  EXPECT_TRUE(open_fails(put("e.st", ""), "shorter than the 8-byte header length"));
}
TEST_F(SafetensorsMalformed, HeaderLengthPastEndOfFile) {
  EXPECT_TRUE(open_fails(put("p.st", le64(100) + "{}"), "runs past the end of the file"));
  EXPECT_TRUE(open_fails(put("q.st", le64(UINT64_MAX) + "{}"), "exceeds the 100 MB limit"));
}
TEST_F(SafetensorsMalformed, HeaderLongerThan100MB) {
  EXPECT_TRUE(open_fails(put("h.st", le64(100'000'001) + "{}"), "exceeds the 100 MB limit"));
}
TEST_F(SafetensorsMalformed, HeaderNotJson) {
  EXPECT_TRUE(open_fails(put("j.st", "{\"a\" 1}", ""), "not valid JSON"));
  EXPECT_TRUE(open_fails(put("k.st", "{\"a\":{\"dtype\":\"F32\"", ""), "not valid JSON"));
  EXPECT_TRUE(open_fails(put("l.st", "{} x", ""), "after the closing '}'"));
  EXPECT_TRUE(open_fails(put("m.st", "{}\0\0\0\0\0\0"s, ""), "after the closing '}'"));
  EXPECT_TRUE(open_fails(put("n.st", "{\"\xff\":{}}", ""), "invalid UTF-8"));
  EXPECT_TRUE(open_fails(put("o.st", "{\"\\ud800\":{}}", ""), "surrogate"));
}
TEST_F(SafetensorsMalformed, HeaderNotAnObject) {
  EXPECT_TRUE(open_fails(put("a.st", "[1, 2]  ", ""), "does not start with '{'"));
  EXPECT_TRUE(open_fails(put("b.st", " {}     ", ""), "does not start with '{'"));
  EXPECT_TRUE(open_fails(put("c.st", "", ""), "does not start with '{'"));
}
TEST_F(SafetensorsMalformed, EntryNotAnObjectOrWrongTypes) {
  EXPECT_TRUE(open_fails(put("a.st", "{\"x\":[1]}", ""), "tensor 'x': expected an object"));
  EXPECT_TRUE(open_fails(put("b.st", "{\"x\":{\"dtype\":5,\"shape\":[1],\"data_offsets\":[0,4]}}", ""),
                         "tensor 'x': \"dtype\" must be a string, got a number"));
  EXPECT_TRUE(open_fails(put("c.st", "{" + entry("x", "F32", "\"1\"", "[0,4]") + "}", ""),
                         "\"shape\" must be an array, got a string"));
  EXPECT_TRUE(open_fails(put("d.st", "{" + entry("x", "F32", "[1.5]", "[0,4]") + "}", ""), "is not an integer"));
  EXPECT_TRUE(open_fails(put("e.st", "{" + entry("x", "F32", "[1e2]", "[0,4]") + "}", ""), "is not an integer"));
  EXPECT_TRUE(open_fails(put("f.st", "{" + entry("x", "F32", "[99999999999999999999]", "[0,4]") + "}", ""),
                         "is too large"));
  EXPECT_TRUE(open_fails(put("g.st", "{" + entry("x", "F32", "[true]", "[0,4]") + "}", ""),
                         "\"shape\" must hold integers, got a boolean"));
  EXPECT_TRUE(open_fails(put("h.st", "{" + entry("x", "F32", "[1]", "[0,4,8]") + "}", ""), "must be [begin, end]"));
  EXPECT_TRUE(open_fails(put("i.st", "{" + entry("x", "F32", "[1]", "[4]") + "}", ""), "must be [begin, end]"));
  EXPECT_TRUE(open_fails(put("j.st", "{" + entry("x", "F32", "[1]", "{}") + "}", ""), "must be [begin, end]"));
  EXPECT_TRUE(open_fails(put("k.st", "{\"x\":{\"dtype\":\"F32\",\"dtype\":\"F32\"}}", ""), "duplicate key \"dtype\""));
}
TEST_F(SafetensorsMalformed, MissingFields) {
  EXPECT_TRUE(open_fails(put("a.st", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1]}}", "abcd"), "tensor 'w': missing \"data_offsets\""));
  EXPECT_TRUE(open_fails(put("b.st", "{\"w\":{\"shape\":[1],\"data_offsets\":[0,4]}}", "abcd"), "missing \"dtype\""));
  EXPECT_TRUE(open_fails(put("c.st", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,4]}}", "abcd"), "missing \"shape\""));
}
TEST_F(SafetensorsMalformed, UnknownDtype) {
  EXPECT_TRUE(open_fails(put("u.st", "{" + entry("w", "F33", "[1]", "[0,4]") + "}", "abcd"),
                         "tensor 'w': unknown dtype \"F33\""));
}
TEST_F(SafetensorsMalformed, ShapeDisagreesWithOffsets) {
  EXPECT_TRUE(open_fails(put("s.st", "{" + entry("w", "F32", "[2,3]", "[0,20]") + "}", std::string(20, 'a')),
                         "needs 24 bytes but data_offsets [0, 20] span 20"));
}
TEST_F(SafetensorsMalformed, NegativeShape) {
  EXPECT_TRUE(open_fails(put("n.st", "{" + entry("w", "F32", "[-2]", "[0,0]") + "}", ""), "\"shape\" entry -2 is negative"));
}
TEST_F(SafetensorsMalformed, EndBeforeBegin) {
  EXPECT_TRUE(open_fails(put("e.st", "{" + entry("w", "U8", "[4]", "[8,4]") + "}", std::string(8, 'a')), "end < begin"));
  EXPECT_TRUE(open_fails(put("f.st", "{" + entry("w", "U8", "[4]", "[-4,0]") + "}", "abcd"), "is negative"));
}
TEST_F(SafetensorsMalformed, OverlappingOffsets) {
  const std::string h = "{" + entry("a", "F32", "[2]", "[0,8]") + "," + entry("b", "F32", "[2]", "[4,12]") + "}";
  EXPECT_TRUE(open_fails(put("o.st", h, std::string(12, 'a')), "tensor 'b': data_offsets [4, 12] overlap tensor 'a'"));
}
TEST_F(SafetensorsMalformed, HoleBetweenOffsets) {
  const std::string h = "{" + entry("b", "F32", "[1]", "[8,12]") + "," + entry("a", "F32", "[1]", "[0,4]") + "}";
  EXPECT_TRUE(open_fails(put("g.st", h, std::string(12, 'a')), "tensor 'b': hole in the data buffer: bytes [4, 8)"));
  EXPECT_TRUE(open_fails(put("z.st", "{" + entry("a", "F32", "[1]", "[4,8]") + "}", std::string(8, 'a')),
                         "hole in the data buffer: bytes [0, 4)"));
}
TEST_F(SafetensorsMalformed, TrailingBytesNotCovered) {
  EXPECT_TRUE(open_fails(put("t.st", "{" + entry("a", "F32", "[1]", "[0,4]") + "}", "abcdef"),
                         "2 trailing bytes after the last tensor"));
  EXPECT_TRUE(open_fails(put("u.st", "{}", "x"), "1 trailing bytes"));
}
TEST_F(SafetensorsMalformed, DuplicateTensorNames) {
  const std::string h = "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("a", "F32", "[1]", "[4,8]") + "}";
  EXPECT_TRUE(open_fails(put("d.st", h, std::string(8, 'a')), "tensor 'a': duplicate tensor name"));
  EXPECT_TRUE(open_fails(put("m.st", "{\"__metadata__\":{},\"__metadata__\":{}}", ""), "duplicate \"__metadata__\""));
  EXPECT_TRUE(open_fails(put("k.st", "{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", ""),
                         "duplicate \"__metadata__\" key 'k'"));
}
TEST_F(SafetensorsMalformed, DataTruncatedMidTensor) {
  const std::string h = "{" + entry("a", "F32", "[1]", "[0,4]") + "," + entry("b", "F32", "[4]", "[4,20]") + "}";
  EXPECT_TRUE(open_fails(put("t.st", h, std::string(10, 'a')),
                         "tensor 'b': data truncated: the tensor ends at data byte 20 but the file holds only 10"));
}
TEST_F(SafetensorsMalformed, HugeShapeOverflows) {
  EXPECT_TRUE(open_fails(put("o.st", "{" + entry("w", "F64", "[1152921504606846976,2]", "[0,0]") + "}", ""),
                         "tensor 'w': shape [1152921504606846976, 2] with dtype F64 overflows"));
  // 2^62 * 4 bytes wraps to exactly 0 in 64 bits: must not pass as an empty tensor.
  EXPECT_TRUE(open_fails(put("p.st", "{" + entry("w", "F32", "[4611686018427387904]", "[0,0]") + "}", ""), "overflows"));
  EXPECT_TRUE(open_fails(put("q.st", "{" + entry("w", "U8", "[9223372036854775807,2]", "[0,0]") + "}", ""),
                         "more than 2^63 elements"));
  // A zero at the end does not excuse an int64 overflow on the way there.
  EXPECT_TRUE(open_fails(put("r.st", "{" + entry("w", "U8", "[4611686018427387904,3,0]", "[0,0]") + "}", ""),
                         "overflows"));
  // Whereas a zero first is just an empty tensor.
  EXPECT_EQ(SafeTensorsFile::open(put("s.st", "{" + entry("w", "U8", "[0,4611686018427387904,3]", "[0,0]") + "}", ""))
                .copy("w").numel(), 0);
}
TEST_F(SafetensorsMalformed, MetadataNotStrings) {
  EXPECT_TRUE(open_fails(put("a.st", "{\"__metadata__\":{\"k\":1}}", ""), "\"__metadata__\" value of 'k' must be a string"));
  EXPECT_TRUE(open_fails(put("b.st", "{\"__metadata__\":[]}", ""), "\"__metadata__\" must be an object of strings"));
}
TEST_F(SafetensorsMalformed, DeepNestingInIgnoredKeys) {
  const std::string deep = std::string(100000, '[') + std::string(100000, ']');
  EXPECT_TRUE(open_fails(put("n.st", "{\"w\":{\"x\":" + deep + ",\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}", "a"),
                         "nested deeper than 64"));
  // Unknown keys within bounds are ignored, as the reference reader does.
  const auto f = SafeTensorsFile::open(put("ok.st", "{\"w\":{\"x\":[[{\"y\":null}]],\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]}}", "a"));
  EXPECT_EQ(f.copy("w").item(), double('a'));
}

// Every truncation and many single-byte corruptions of a valid file: each must open cleanly or
// throw mc::Error (run under ASan/valgrind to check that nothing reads out of bounds).
TEST_F(SafetensorsMalformed, TruncationsAndCorruptionsNeverCrash) {
  const std::string good = dir_ + "/good.st";
  save_safetensors(good, {{"a", test::randn({2, 3}, 3)}, {"b", Tensor::from<int64_t>({1, 2}, {2})}}, {{"k", "v"}});
  const std::string bytes = read_bytes(good);
  const uint64_t n = bytes.size();
  int opened = 0, errors = 0;
  auto attempt = [&](const std::string& b) {
    try {
      SafeTensorsFile::open(put("x.st", b)).copies();
      ++opened;
    } catch (const Error&) {
      ++errors;
    }
  };
  for (uint64_t len = 0; len < n; ++len) attempt(bytes.substr(0, len));
  EXPECT_EQ(errors, int(n)) << "every truncation must fail";
  for (size_t i = 0; i < 8 + 100 && i < n; ++i)
    for (char c : {'}', '"', ']', ',', '9', '-', '\\', '\xff'}) {
      std::string b = bytes;
      b[i] = c;
      attempt(b);
    }
  EXPECT_GT(errors, int(n));
}

}  // namespace
}  // namespace mc::io
