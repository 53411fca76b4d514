#include "ssm/data/dataset.h"

#include <cstring>

namespace ssm::data {

namespace {

void check_nonempty(const std::vector<Example>& examples, const char* what) {
  SSM_CHECK(!examples.empty(), "{}: argument 'examples' is empty", what);
  for (size_t i = 0; i < examples.size(); ++i)
    SSM_CHECK(examples[i].input.defined() && examples[i].target.defined(),
              "{}: example {} has an undefined input or target", what, i);
}

// Stacks same-shape tensors along a new leading dim by copying their bytes.
Tensor stack_same_shape(const std::vector<Tensor>& parts, const char* what, const char* field) {
  const Tensor& first = parts.front();
  Shape out_shape{static_cast<int64_t>(parts.size())};
  out_shape.insert(out_shape.end(), first.shape().begin(), first.shape().end());
  Tensor out = Tensor::empty(out_shape, first.dtype());
  const size_t bytes = static_cast<size_t>(first.numel()) * dtype_size(first.dtype());
  char* dst = static_cast<char*>(out.raw_data());
  for (size_t i = 0; i < parts.size(); ++i) {
    SSM_CHECK(parts[i].shape() == first.shape() && parts[i].dtype() == first.dtype(),
              "{}: {} {} has shape {} {}, example 0 has {} {}", what, field, i,
              shape_str(parts[i].shape()), dtype_name(parts[i].dtype()), shape_str(first.shape()),
              dtype_name(first.dtype()));
    const Tensor c = parts[i].contiguous();
    std::memcpy(dst + i * bytes, c.raw_data(), bytes);
  }
  return out;
}

std::vector<Tensor> targets_of(const std::vector<Example>& examples) {
  std::vector<Tensor> t;
  for (const auto& e : examples) t.push_back(e.target);
  return t;
}

}  // namespace

Batch stack_examples(const std::vector<Example>& examples) {
  check_nonempty(examples, "stack_examples");
  std::vector<Tensor> inputs;
  for (const auto& e : examples) inputs.push_back(e.input);
  return Batch{stack_same_shape(inputs, "stack_examples", "input"),
               stack_same_shape(targets_of(examples), "stack_examples", "target"), Tensor()};
}

Batch pad_examples(const std::vector<Example>& examples, double pad_value) {
  check_nonempty(examples, "pad_examples");
  const Tensor& first = examples.front().input;
  SSM_CHECK(first.dim() >= 1, "pad_examples: inputs expected rank >= 1, got shape {}",
            shape_str(first.shape()));
  int64_t max_len = 0;
  const Shape inner(first.shape().begin() + 1, first.shape().end());
  for (size_t i = 0; i < examples.size(); ++i) {
    const Tensor& x = examples[i].input;
    SSM_CHECK(x.dim() == first.dim() && Shape(x.shape().begin() + 1, x.shape().end()) == inner &&
                  x.dtype() == first.dtype(),
              "pad_examples: input {} has shape {} {}, expected (L, ...{}) {}", i,
              shape_str(x.shape()), dtype_name(x.dtype()), shape_str(inner),
              dtype_name(first.dtype()));
    max_len = std::max(max_len, x.size(0));
  }
  const int64_t batch = static_cast<int64_t>(examples.size());
  Shape out_shape{batch, max_len};
  out_shape.insert(out_shape.end(), inner.begin(), inner.end());
  Tensor inputs = Tensor::full(out_shape, pad_value, first.dtype());
  Tensor lengths = Tensor::empty({batch}, DType::I64);
  const size_t row_bytes = static_cast<size_t>(shape_numel(inner)) * dtype_size(first.dtype());
  char* dst = static_cast<char*>(inputs.raw_data());
  for (int64_t i = 0; i < batch; ++i) {
    const Tensor c = examples[i].input.contiguous();
    std::memcpy(dst + i * max_len * row_bytes, c.raw_data(), c.size(0) * row_bytes);
    lengths.data<int64_t>()[i] = c.size(0);
  }
  return Batch{inputs, stack_same_shape(targets_of(examples), "pad_examples", "target"), lengths};
}

}  // namespace ssm::data
