#pragma once
// Internal, CUDA builds only: the library's cuBLAS handle (bound to the library's stream) and a
// check that turns a cuBLAS status into an ssm::Error naming the op, the call and the status.
#include <cublas_v2.h>

#include "ssm/core/error.h"

namespace ssm::cuda::detail {

[[noreturn]] inline void cublas_fail(cublasStatus_t status, const char* op, const char* what) {
  SSM_FAIL("{}: cuBLAS error in {}: {} ({})", op, what, cublasGetStatusName(status),
           cublasGetStatusString(status));
}

// Created on first use, its stream set to stream(). Never destroyed (see cublas.cpp).
cublasHandle_t cublas_handle();

// True when the environment variable SSM_CUDA_TF32 is "1": float32 GEMMs may then round their
// inputs to TF32 (10-bit mantissa) and run on the tensor cores. Read at every GEMM, so it can be
// switched while a program runs; the default is exact float32 arithmetic.
bool tf32_enabled();

}  // namespace ssm::cuda::detail

// SSM_CUBLAS_CHECK(cublasGemmEx(...), "linear")
#define SSM_CUBLAS_CHECK(call, op)                                     \
  do {                                                                 \
    const cublasStatus_t ssm_cublas_status_ = (call);                  \
    if (ssm_cublas_status_ != CUBLAS_STATUS_SUCCESS)                   \
      ::ssm::cuda::detail::cublas_fail(ssm_cublas_status_, op, #call); \
  } while (0)
