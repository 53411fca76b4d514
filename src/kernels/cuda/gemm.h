#pragma once
// Internal: GEMM on CUDA tensor views through cuBLAS. Pure compute, no autograd. Without the
// backend each function throws ssm::Error.
//
// Tensors are row-major; cuBLAS is column-major. A row-major matrix X (rows, cols) with leading
// dimension ld is, read column-major, Xᵀ with the same ld, so C = A·B is computed as
// Cᵀ = Bᵀ·Aᵀ with no copies. A view with column stride 1 is such a row-major matrix; a view with
// row stride 1 (x.transpose(-1, -2)) is the transpose of one and goes to cuBLAS as a transpose
// flag. Anything else (a stride-2 slice, a broadcast row) is copied once by gemm_operand.
#include "ssm/core/tensor.h"

namespace ssm::kernels::cuda {

// t itself when cuBLAS can read its last two dims as they are, else t.contiguous(). Call it
// before expanding an operand over a broadcast batch, so a copy never materialises the batch.
Tensor gemm_operand(const Tensor& t);

// c[i] = a[i] · b[i] (accumulate = false) or c[i] += a[i] · b[i], for every index i of the
// batch dims. a (…, M, K), b (…, K, N), c (…, M, N) share one batch shape (broadcast operands
// are expanded views with stride 0), all CUDA tensors of one float dtype. c's matrices must be
// row-major (last stride 1). c may have stride-0 batch dims: the products of those batch entries
// are summed into the one matrix (how a broadcast operand's gradient is reduced); without
// `accumulate` the sum starts from zero. K = 0 gives zeros. `op` names the caller in errors.
// The batch runs as strided-batched GEMMs over the dims whose strides allow it, a host loop over
// the others. float32 uses TF32 tensor-core math when cuda::detail::tf32_enabled().
void batched_matmul_into(const char* op, const Tensor& a, const Tensor& b, const Tensor& c,
                         bool accumulate);

}  // namespace ssm::kernels::cuda
