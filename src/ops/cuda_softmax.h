#pragma once
// Internal: the CUDA half of softmax / log_softmax (ops/softmax.cpp checks the arguments and
// records the op for both devices). Without the backend each throws ssm::Error.
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm {

// y = (log-)softmax of contiguous CUDA x viewed as (outer, n, inner), over the middle axis.
Tensor cuda_softmax_forward(const char* op, const Tensor& x, int64_t outer, int64_t n,
                            int64_t inner, bool log);
// dx from the contiguous CUDA gradient dy and forward output y.
Tensor cuda_softmax_backward(const char* op, const Tensor& dy, const Tensor& y, int64_t outer,
                             int64_t n, int64_t inner, bool log);

}  // namespace ssm
