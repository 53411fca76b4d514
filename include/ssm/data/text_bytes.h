#pragma once
// Byte-level language modelling on a text file: the vocabulary is the 256 byte values, and
// an example is a window of `context` bytes with the next byte of each position as target.
// The file is split by position (train first, then validation, then test), so no window
// crosses a split and no target byte of one split is another split's input.
#include <cstdint>
#include <memory>
#include <string>

#include "ssm/data/dataset.h"

namespace ssm::data {

inline constexpr int64_t kByteVocabSize = 256;

// The file's bytes. Errors: the file cannot be opened, or it is empty.
std::shared_ptr<const std::string> read_text_bytes(const std::string& path);

// The non-overlapping windows of bytes[begin, end): window i has input
// bytes[begin + i·context, … + context) and target the same shifted by one; there are
// (end − begin − 1) / context of them (a tail shorter than a window is left out).
class ByteWindowDataset : public Dataset {
 public:
  ByteWindowDataset(std::shared_ptr<const std::string> bytes, int64_t begin, int64_t end,
                    int64_t context);
  int64_t size() const override { return count_; }
  Example get(int64_t index) const override;  // input (context) int64, target (context) int64

 private:
  std::shared_ptr<const std::string> bytes_;
  int64_t begin_, context_, count_;
};

struct TextSplits {
  std::shared_ptr<const Dataset> train, val, test;
};

// Train on the first (1 − val_fraction − test_fraction) of the bytes, validate on the next
// val_fraction, test on the last test_fraction (test_fraction 0: test = validation).
// Errors name the file and say how many bytes a split needs (at least context + 1).
TextSplits split_text(std::shared_ptr<const std::string> bytes, int64_t context,
                      double val_fraction, double test_fraction, const std::string& source);

}  // namespace ssm::data
