#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "ssm/io/float16.h"
#include "ssm/io/safetensors.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::io;
using ssm::testing::random;
namespace fs = std::filesystem;

namespace {

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("ssm_test_safetensors_{}_{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

std::string read_bytes(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void write_bytes(const std::string& p, const std::string& bytes) {
  std::ofstream(p, std::ios::binary) << bytes;
}

// A file with the given header text and data bytes; header_len defaults to the text's size.
std::string raw_file(const std::string& header, const std::string& data,
                     uint64_t header_len = UINT64_MAX) {
  if (header_len == UINT64_MAX) header_len = header.size();
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((header_len >> (8 * i)) & 0xff);
  return out + header + data;
}

std::string f32_bytes(std::initializer_list<float> v) {
  return std::string(reinterpret_cast<const char*>(std::data(v)), v.size() * 4);
}

bool python_numpy_available() {
  return std::system("/usr/bin/python3 -c 'import numpy' > /dev/null 2>&1") == 0;
}

}  // namespace

TEST_F(Safetensors, RoundTripAllDtypesAndMetadata) {
  std::map<std::string, Tensor> tensors{
      {"layers.0.weight", random({3, 4}, DType::F32, 1)},
      {"layers.0.bias", random({4}, DType::F64, 2)},
      {"ids", Tensor::from_data<int64_t>({-5, 0, 1LL << 40}, {3})},
      {"small", Tensor::from_data<int32_t>({7, -8}, {2, 1})},
      {"scalar", Tensor::scalar(2.5, DType::F64)},
      {"empty", Tensor::zeros({0, 3})},
      {"transposed", random({2, 5}, DType::F32, 3).transpose(0, 1)},  // written contiguous
  };
  const std::map<std::string, std::string> meta{{"format", "pt"}, {"step", "12"}};
  write_safetensors(path("a.safetensors"), tensors, meta);
  EXPECT_FALSE(fs::exists(path("a.safetensors.tmp")));
  const SafetensorsFile back = read_safetensors(path("a.safetensors"));
  EXPECT_EQ(back.metadata, meta);
  ASSERT_EQ(back.tensors.size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    const Tensor& r = back.tensors.at(name);
    EXPECT_EQ(r.dtype(), t.dtype()) << name;
    EXPECT_EQ(r.shape(), t.shape()) << name;
    EXPECT_EQ(r.to_vector(), t.to_vector()) << name;  // bit-exact
  }
  // The data section starts 8-byte aligned.
  const SafetensorsHeader h = read_safetensors_header(path("a.safetensors"));
  EXPECT_EQ(h.data_start % 8, 0u);
  EXPECT_EQ(h.tensors.size(), tensors.size());
  EXPECT_EQ(fs::file_size(path("a.safetensors")),
            h.data_start + 12 * 4 + 4 * 8 + 3 * 8 + 2 * 4 + 8 + 0 + 10 * 4);
}

TEST_F(Safetensors, Float16AndBFloat16KnownBitPatterns) {
  EXPECT_EQ(f16_to_float(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_float(0xC000), -2.0f);
  EXPECT_EQ(f16_to_float(0x7BFF), 65504.0f);               // largest finite half
  EXPECT_EQ(f16_to_float(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_float(0x03FF), std::ldexp(1023.0f, -24));
  EXPECT_EQ(f16_to_float(0x3555), 0.333251953125f);
  EXPECT_EQ(f16_to_float(0x7C00), INFINITY);
  EXPECT_EQ(f16_to_float(0xFC00), -INFINITY);
  EXPECT_TRUE(std::isnan(f16_to_float(0x7E00)));
  EXPECT_TRUE(std::isnan(f16_to_float(0x7C01)));
  EXPECT_EQ(f16_to_float(0x8000), 0.0f);
  EXPECT_TRUE(std::signbit(f16_to_float(0x8000)));
  EXPECT_EQ(bf16_to_float(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xC049), -3.140625f);
  EXPECT_EQ(bf16_to_float(0x3EAB), 0.333984375f);
  EXPECT_EQ(bf16_to_float(0x0001), std::ldexp(1.0f, -133));  // a float32 subnormal
  EXPECT_EQ(bf16_to_float(0x7F80), INFINITY);
  EXPECT_EQ(bf16_to_float(0xFF80), -INFINITY);
  EXPECT_TRUE(std::isnan(bf16_to_float(0x7FC0)));
  EXPECT_TRUE(std::signbit(bf16_to_float(0x8000)));
}

TEST_F(Safetensors, ReadsHalfPrecisionFilesAsFloat32) {
  // F16 [1, -2, 65504, 2^-24] and BF16 [[1, -3.140625]] written by hand.
  const std::string f16 = std::string("\x00\x3C\x00\xC0\xFF\x7B\x01\x00", 8);
  const std::string bf16 = std::string("\x80\x3F\x49\xC0", 4);
  const std::string header = R"({"h":{"dtype":"F16","shape":[4],"data_offsets":[0,8]},)"
                             R"("b":{"dtype":"BF16","shape":[1,2],"data_offsets":[8,12]}})";
  write_bytes(path("half"), raw_file(header, f16 + bf16));
  const SafetensorsFile f = read_safetensors(path("half"));
  const Tensor& h = f.tensors.at("h");
  EXPECT_EQ(h.dtype(), DType::F32);
  EXPECT_EQ(h.to_vector(), (std::vector<double>{1, -2, 65504, std::ldexp(1.0, -24)}));
  const Tensor& b = f.tensors.at("b");
  EXPECT_EQ(b.shape(), (Shape{1, 2}));
  EXPECT_EQ(b.to_vector(), (std::vector<double>{1, -3.140625}));
}

TEST_F(Safetensors, CorruptFilesGiveClearErrors) {
  const std::string good_header = R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  const std::string data = f32_bytes({1.5f, -2.0f});
  auto expect_error = [&](const std::string& name, const std::string& bytes,
                          std::initializer_list<const char*> fragments) {
    const std::string p = path(name);
    write_bytes(p, bytes);
    try {
      read_safetensors(p);
      ADD_FAILURE() << name << ": expected ssm::Error";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(p), std::string::npos) << msg;  // always names the file
      for (const char* frag : fragments)
        EXPECT_NE(msg.find(frag), std::string::npos) << "'" << msg << "' lacks '" << frag << "'";
    }
  };
  write_bytes(path("good"), raw_file(good_header, data));
  EXPECT_EQ(read_safetensors(path("good")).tensors.at("w").to_vector(),
            (std::vector<double>{1.5, -2.0}));

  expect_error("short", std::string("\x10\x00", 2), {"truncated", "2 bytes"});
  expect_error("header_beyond_end", raw_file(good_header, data, 5000),
               {"header length 5000", "beyond the end"});
  expect_error("bad_json", raw_file(R"({"w":{"dtype":"F32",)", ""), {"not valid JSON"});
  expect_error("not_object", raw_file("[1, 2]", ""), {"JSON object", "array"});
  expect_error("outside",
               raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", data),
               {"'w'", "[4, 12]", "outside the data section", "8 bytes"});
  expect_error("truncated_data", raw_file(good_header, data.substr(0, 5)),
               {"'w'", "outside the data section", "truncated"});
  expect_error("size_mismatch",
               raw_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", data),
               {"'w'", "(3)", "needs 12 bytes", "hold 8"});
  expect_error("dtype", raw_file(R"({"w":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}})", data),
               {"'w'", "'U8'", "not supported"});
  expect_error("no_shape", raw_file(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", data),
               {"'w'", "'shape'"});
  expect_error("negative_shape",
               raw_file(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", data),
               {"'w'", "non-negative"});
  expect_error("reversed_offsets",
               raw_file(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", data),
               {"'w'", "data_offsets"});
  expect_error("overlap",
               raw_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                        R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                        data),
               {"'a'", "'b'", "overlap"});
  expect_error("metadata", raw_file(R"({"__metadata__":{"step":3}})", ""),
               {"__metadata__", "'step'", "string"});
  EXPECT_SSM_ERROR(read_safetensors(path("missing.safetensors")), "read_safetensors",
                   "missing.safetensors", "does not exist");
}

TEST_F(Safetensors, BadTensorsToWrite) {
  EXPECT_SSM_ERROR(write_safetensors(path("x"), {{"a", Tensor()}}), "write_safetensors", "'a'",
                   "undefined");
  EXPECT_SSM_ERROR(write_safetensors(path("x"), {{"__metadata__", Tensor::zeros({1})}}),
                   "write_safetensors", "reserved");
  EXPECT_FALSE(fs::exists(path("x")));
  EXPECT_FALSE(fs::exists(path("x.tmp")));
}

TEST_F(Safetensors, ByteLayoutMatchesHandBuiltPythonReference) {
  if (!python_numpy_available()) GTEST_SKIP() << "/usr/bin/python3 with numpy not available";
  const std::string script = std::string(SSM_SOURCE_DIR) + "/tests/io/safetensors_reference.py";
  const std::string ref = path("ref.safetensors"), half = path("half.safetensors");
  ASSERT_EQ(std::system(fmt::format("/usr/bin/python3 {} {} {}", script, ref, half).c_str()), 0);
  std::map<std::string, Tensor> tensors{
      {"weight", Tensor::from_vector({0.5, -1.25, 3.0, 0.0, 7.75, -2.0}, {2, 3}, DType::F32)},
      {"bias", Tensor::from_vector({1.5, -0.125, 1e10}, {3}, DType::F64)},
      {"index", Tensor::from_data<int64_t>({-3, 4000000000LL}, {2})},
      {"count", Tensor::from_data<int32_t>({7}, {})},
      {"empty", Tensor::zeros({0, 4})},
  };
  write_safetensors(path("ours.safetensors"), tensors, {{"format", "pt"}, {"note", "hi"}});
  const std::string ours = read_bytes(path("ours.safetensors")), theirs = read_bytes(ref);
  EXPECT_EQ(ours.size(), theirs.size());
  EXPECT_TRUE(ours == theirs) << "header ours:   " << ours.substr(8, 200)
                              << "\nheader theirs: " << theirs.substr(8, 200);
  // And our reader decodes numpy's float16 / bfloat16 bytes to numpy's float32 values.
  const SafetensorsFile f = read_safetensors(half);
  for (const char* name : {"h", "b"}) {
    const Tensor& got = f.tensors.at(name);
    const Tensor& want = f.tensors.at(std::string(name) + "_expected");
    EXPECT_EQ(got.shape(), want.shape());
    EXPECT_EQ(got.to_vector(), want.to_vector()) << name;
  }
}
