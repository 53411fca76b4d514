#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <fstream>

#include "ssm/io/atomic_file.h"
#include "ssm/io/safetensors.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::io;
namespace fs = std::filesystem;

namespace {

class AtomicWrite : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("ssm_test_atomic_{}_{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

std::string read_text(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_F(AtomicWrite, CommitReplacesTheFile) {
  const std::string p = path("f");
  std::ofstream(p) << "old";
  {
    AtomicFile f(p);
    f.write("new contents", 12);
    EXPECT_EQ(read_text(p), "old");  // nothing visible before commit
    EXPECT_TRUE(fs::exists(p + ".tmp"));
    f.commit();
  }
  EXPECT_EQ(read_text(p), "new contents");
  EXPECT_FALSE(fs::exists(p + ".tmp"));
}

TEST_F(AtomicWrite, AnErrorBeforeCommitLeavesTheOldFile) {
  const std::string p = path("f");
  std::ofstream(p) << "old";
  try {
    AtomicFile f(p);
    f.write("partial", 7);
    throw Error("simulated failure while writing");
  } catch (const Error&) {
  }
  EXPECT_EQ(read_text(p), "old");
  EXPECT_FALSE(fs::exists(p + ".tmp"));
}

TEST_F(AtomicWrite, FailedSafetensorsWriteLeavesTheOldCheckpoint) {
  const std::string p = path("model.safetensors");
  const Tensor w = ssm::testing::random({64, 64}, DType::F32, 1);
  write_safetensors(p, {{"w", w}});
  const std::string before = read_text(p);
  // A real mid-write failure: cap the file size, so write(2) fails with EFBIG after the
  // header (SIGXFSZ ignored, so the process survives and sees the error).
  struct rlimit old_limit;
  ASSERT_EQ(getrlimit(RLIMIT_FSIZE, &old_limit), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old_limit;
  small.rlim_cur = 4096;
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &small), 0);
  const Tensor big = ssm::testing::random({128, 128}, DType::F32, 2);  // 64 KiB of data
  bool threw = false;
  try {
    write_safetensors(p, {{"w", big}});
  } catch (const Error& e) {
    threw = true;
    EXPECT_NE(std::string(e.what()).find("model.safetensors.tmp"), std::string::npos) << e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old_limit);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_TRUE(threw);
  EXPECT_EQ(read_text(p), before);
  EXPECT_FALSE(fs::exists(p + ".tmp"));
  EXPECT_EQ(read_safetensors(p).tensors.at("w").to_vector(), w.to_vector());
}

TEST_F(AtomicWrite, MissingDirectoryIsNamed) {
  const std::string p = path("no/such/dir/f");
  EXPECT_SSM_ERROR(AtomicFile f(p), "AtomicFile", "no/such/dir/f.tmp", "No such file");
}
