#pragma once
// Datasets of (input, target) examples and the functions that collate them into batches.
#include <cstdint>
#include <functional>
#include <vector>

#include "ssm/core/tensor.h"

namespace ssm::data {

struct Example {
  Tensor input;   // e.g. (L, 1) float pixels or (L,) int64 token ids
  Tensor target;  // e.g. () int64 class index
};

struct Batch {
  Tensor inputs;   // (B, ...) the examples' inputs stacked (padded along dim 0 when ragged)
  Tensor targets;  // (B, ...) the examples' targets stacked
  Tensor lengths;  // (B,) int64 true lengths before padding; undefined for fixed-length data
};

// Random-access collection of examples.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual Example get(int64_t index) const = 0;
};

using CollateFn = std::function<Batch(const std::vector<Example>&)>;

// Stacks examples whose inputs (and targets) all have one shape and dtype: (B, ...).
Batch stack_examples(const std::vector<Example>& examples);

// Pads every input along dim 0 to the longest in the batch with `pad_value`, stacks the
// targets (which must share one shape) and records the true lengths in Batch::lengths.
Batch pad_examples(const std::vector<Example>& examples, double pad_value = 0.0);

}  // namespace ssm::data
