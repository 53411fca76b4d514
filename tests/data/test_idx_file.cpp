#include <unistd.h>

#include <cstdio>
#include <filesystem>

#include "ssm/data/idx_file.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::data;
namespace fs = std::filesystem;

namespace {

class IdxFile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("ssm_test_idx_{}_{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  void write_bytes(const std::string& p, const std::vector<uint8_t>& bytes) const {
    FILE* f = std::fopen(p.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::fwrite(bytes.data(), 1, bytes.size(), f);
    std::fclose(f);
  }
  fs::path dir_;
};

std::vector<uint8_t> random_bytes(size_t n, uint64_t seed) {
  Generator g(seed);
  std::vector<uint8_t> v(n);
  for (auto& b : v) b = static_cast<uint8_t>(g.below(256));
  return v;
}

}  // namespace

TEST_F(IdxFile, Uint8RoundTripPlainAndGzip) {
  IdxArray a{IdxType::U8, {3, 2, 4}, random_bytes(24, 1)};
  for (bool gz : {false, true}) {
    const std::string p = path(gz ? "a.gz" : "a");
    write_idx(p, a, gz);
    const IdxArray b = read_idx(p);
    EXPECT_EQ(b.type, IdxType::U8);
    EXPECT_EQ(b.shape, a.shape);
    EXPECT_EQ(b.bytes, a.bytes);
  }
  // The gzipped file really is compressed data (gzip magic 1f 8b), the plain one is not.
  FILE* f = std::fopen(path("a.gz").c_str(), "rb");
  unsigned char head[2];
  ASSERT_EQ(std::fread(head, 1, 2, f), 2u);
  std::fclose(f);
  EXPECT_EQ(head[0], 0x1f);
  EXPECT_EQ(head[1], 0x8b);
  EXPECT_EQ(fs::file_size(path("a")), 4 + 3 * 4 + 24u);
}

TEST_F(IdxFile, ReadsBigEndianElementsWrittenByHand) {
  // int16 (3): 1, -2, 300 as big-endian bytes; int32 (2): -70000, 5.
  write_bytes(path("i16"), {0, 0, 0x0B, 1, 0, 0, 0, 3, 0x00, 0x01, 0xFF, 0xFE, 0x01, 0x2C});
  IdxArray a = read_idx(path("i16"));
  EXPECT_EQ(a.shape, (Shape{3}));
  EXPECT_EQ(a.value(0), 1);
  EXPECT_EQ(a.value(1), -2);
  EXPECT_EQ(a.value(2), 300);
  write_bytes(path("i32"),
              {0, 0, 0x0C, 1, 0, 0, 0, 2, 0xFF, 0xFE, 0xEE, 0x90, 0x00, 0x00, 0x00, 0x05});
  Tensor t = read_idx(path("i32")).to_tensor(DType::I64);
  EXPECT_EQ(t.to_vector(), (std::vector<double>{-70000, 5}));
  // float32 1.5 = 0x3FC00000; float64 −0.25 = 0xBFD0000000000000.
  write_bytes(path("f32"), {0, 0, 0x0D, 1, 0, 0, 0, 1, 0x3F, 0xC0, 0, 0});
  EXPECT_EQ(read_idx(path("f32")).value(0), 1.5);
  write_bytes(path("f64"), {0, 0, 0x0E, 1, 0, 0, 0, 1, 0xBF, 0xD0, 0, 0, 0, 0, 0, 0});
  EXPECT_EQ(read_idx(path("f64")).value(0), -0.25);
  // And write_idx produces the same bytes back (big-endian on disk).
  write_idx(path("i16_again"), read_idx(path("i16")));
  EXPECT_EQ(fs::file_size(path("i16_again")), 14u);
  EXPECT_EQ(read_idx(path("i16_again")).bytes, a.bytes);
}

TEST_F(IdxFile, ToTensorConverts) {
  IdxArray a{IdxType::U8, {2, 3}, {0, 1, 2, 128, 254, 255}};
  Tensor f = a.to_tensor(DType::F32);
  EXPECT_EQ(f.shape(), (Shape{2, 3}));
  EXPECT_EQ(f.to_vector(), (std::vector<double>{0, 1, 2, 128, 254, 255}));
  EXPECT_EQ(a.to_tensor(DType::I64).dtype(), DType::I64);
}

TEST_F(IdxFile, MissingFileNamesIt) {
  EXPECT_SSM_ERROR(read_idx(path("nope-idx3-ubyte.gz")), "read_idx", "nope-idx3-ubyte.gz",
                   "does not exist");
}

TEST_F(IdxFile, BadMagicNumber) {
  const std::string bad = path("bad");
  write_bytes(bad, {0x12, 0x34, 0x08, 0x01, 0, 0, 0, 1, 7});
  EXPECT_SSM_ERROR(read_idx(bad), "read_idx", bad.c_str(), "bad magic number", "0x12340801");
  write_bytes(path("badtype"), {0, 0, 0x07, 0x01, 0, 0, 0, 1, 7});
  EXPECT_SSM_ERROR(read_idx(path("badtype")), "bad magic number", "0x00000701");
}

TEST_F(IdxFile, HeaderDisagreesWithFileSize) {
  // Header: uint8 (2, 3) = 6 bytes, but 8 data bytes follow.
  const std::string p = path("long");
  write_bytes(p, {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_SSM_ERROR(read_idx(p), "read_idx", p.c_str(), "disagrees", "(2, 3)", "6", "8");
}

TEST_F(IdxFile, TruncatedDataAndHeader) {
  const std::string p = path("short");
  write_bytes(p, {0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3});
  EXPECT_SSM_ERROR(read_idx(p), "read_idx", p.c_str(), "truncated", "needs 6", "has 3");
  write_bytes(path("shorthead"), {0, 0, 8, 3, 0, 0, 0, 2, 0, 0});
  EXPECT_SSM_ERROR(read_idx(path("shorthead")), "read_idx", "truncated", "header", "rank 3");
  write_bytes(path("tiny"), {0, 0});
  EXPECT_SSM_ERROR(read_idx(path("tiny")), "read_idx", "truncated", "magic");
}

TEST_F(IdxFile, TruncatedGzipStream) {
  IdxArray a{IdxType::U8, {50, 40}, random_bytes(2000, 3)};
  write_idx(path("full.gz"), a, /*gzip=*/true);
  std::vector<uint8_t> bytes(fs::file_size(path("full.gz")));
  FILE* f = std::fopen(path("full.gz").c_str(), "rb");
  ASSERT_EQ(std::fread(bytes.data(), 1, bytes.size(), f), bytes.size());
  std::fclose(f);
  bytes.resize(bytes.size() / 2);
  const std::string cut = path("cut.gz");
  write_bytes(cut, bytes);
  EXPECT_SSM_ERROR(read_idx(cut), "read_idx", cut.c_str(), "truncated or corrupt");
}
