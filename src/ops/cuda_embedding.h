#pragma once
// Internal: the CUDA half of embedding (ops/embedding.cpp has checked dtypes and shapes; weight is
// on the GPU). Without the backend it throws ssm::Error.
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm {

// ids contiguous, int32/int64: on the CPU already validated, or on the GPU (validated on the
// device before the result is returned). Output (…, D) on the GPU.
Tensor cuda_embedding(const Tensor& ids, const Tensor& weight);

// The one error both halves give for an id outside [0, V) (defined in ops/embedding.cpp).
[[noreturn]] void embedding_bad_id(int64_t id, int64_t index, int64_t V);

}  // namespace ssm
