// GEMM on CUDA tensor views through cuBLAS (see gemm.h): each operand's matrix strides become a
// cuBLAS transpose flag and leading dimension, the batch dims whose strides line up become one
// strided-batched call, and every call is checked.
#include "kernels/cuda/gemm.h"

#ifdef SSM_WITH_CUDA
#include <algorithm>
#include <climits>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/cublas.h"
#endif

namespace ssm::kernels::cuda {

#ifdef SSM_WITH_CUDA

namespace {

// How cuBLAS reads a row-major operand matrix (rows, cols) with strides (rs, cs): its memory is a
// row-major matrix with leading dimension ld >= cols (transposed = false), or the transpose of
// one with ld >= rows (transposed = true). A dim of size <= 1 puts no constraint on its stride.
struct Layout {
  bool ok = false;
  bool transposed = false;
  int64_t ld = 1;
};

Layout layout_of(int64_t rows, int64_t cols, int64_t rs, int64_t cs) {
  const int64_t r1 = std::max<int64_t>(rows, 1), c1 = std::max<int64_t>(cols, 1);
  Layout l;
  if ((cs == 1 || cols <= 1) && (rows <= 1 || rs >= c1))
    l = {true, false, rows <= 1 ? c1 : rs};
  else if ((rs == 1 || rows <= 1) && (cols <= 1 || cs >= r1))
    l = {true, true, cols <= 1 ? r1 : cs};
  l.ok = l.ok && l.ld <= INT_MAX;
  return l;
}

Layout layout_of(const Tensor& t) {
  return layout_of(t.size(-2), t.size(-1), t.stride(-2), t.stride(-1));
}

// One batch dim of the product: its size and each operand's stride along it.
struct BatchDim {
  int64_t size, sa, sb, sc;
};

struct Plan {
  std::vector<BatchDim> host;  // looped on the host: the summed dims first, then the rest
  size_t n_summed = 0;         // how many of `host` are dims c is summed over (stride 0)
  int64_t count = 1, sa = 0, sb = 0, sc = 0;  // the strided-batched group
};

// Summed dims (c stride 0) stay on the host, so that products added into one matrix are queued
// one after another rather than raced by one batched call. Of the other dims, the innermost and
// every dim outside it whose strides continue it (stride = count · inner stride, for a, b and c)
// form the strided-batched group.
Plan plan_batch(const Tensor& a, const Tensor& b, const Tensor& c) {
  Plan p;
  std::vector<BatchDim> kept;
  for (int64_t d = 0; d + 2 < c.dim(); ++d) {
    if (c.size(d) == 1) continue;
    const BatchDim bd{c.size(d), a.stride(d), b.stride(d), c.stride(d)};
    (bd.sc == 0 ? p.host : kept).push_back(bd);
  }
  p.n_summed = p.host.size();
  size_t inner = kept.size();
  if (!kept.empty()) {
    const BatchDim& last = kept.back();
    if (last.sa >= 0 && last.sb >= 0 && last.sc > 0 && last.size <= INT_MAX) {
      p.count = last.size;
      p.sa = last.sa;
      p.sb = last.sb;
      p.sc = last.sc;
      inner = kept.size() - 1;
      while (inner > 0) {
        const BatchDim& q = kept[inner - 1];
        if (q.sa != p.count * p.sa || q.sb != p.count * p.sb || q.sc != p.count * p.sc ||
            p.count * q.size > INT_MAX)
          break;
        p.count *= q.size;
        --inner;
      }
    }
  }
  p.host.insert(p.host.end(), kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(inner));
  return p;
}

}  // namespace

Tensor gemm_operand(const Tensor& t) {
  return layout_of(t).ok ? t : t.contiguous();
}

void batched_matmul_into(const char* op, const Tensor& a_in, const Tensor& b_in, const Tensor& c,
                         bool accumulate) {
  const int64_t nd = c.dim();
  SSM_CHECK(nd >= 2 && a_in.dim() == nd && b_in.dim() == nd,
            "{}: GEMM operands a {}, b {}, c {} need one rank >= 2", op, shape_str(a_in.shape()),
            shape_str(b_in.shape()), shape_str(c.shape()));
  const int64_t M = c.size(-2), N = c.size(-1), K = a_in.size(-1);
  Shape expect_a = c.shape(), expect_b = c.shape();
  expect_a.back() = K;
  expect_b[nd - 2] = K;
  SSM_CHECK(a_in.shape() == expect_a && b_in.shape() == expect_b,
            "{}: GEMM operands a {}, b {} do not multiply into c {}", op, shape_str(a_in.shape()),
            shape_str(b_in.shape()), shape_str(c.shape()));
  SSM_CHECK(
      a_in.device() == Device::CUDA && b_in.device() == Device::CUDA && c.device() == Device::CUDA,
      "{}: the cuBLAS GEMM needs CUDA tensors, got a {}, b {}, c {}", op,
      device_name(a_in.device()), device_name(b_in.device()), device_name(c.device()));
  SSM_CHECK(is_floating(c.dtype()) && a_in.dtype() == c.dtype() && b_in.dtype() == c.dtype(),
            "{}: the cuBLAS GEMM needs one float dtype, got a {}, b {}, c {}", op,
            dtype_name(a_in.dtype()), dtype_name(b_in.dtype()), dtype_name(c.dtype()));
  // An empty product writes nothing (and its strides may be anything, e.g. (0, 1) for (3, 0)).
  if (M == 0 || N == 0 || c.numel() == 0) return;
  const Layout lc = layout_of(c);
  SSM_CHECK(lc.ok && !lc.transposed,
            "{}: the GEMM output {} with strides {} is not a row-major matrix", op,
            shape_str(c.shape()), fmt::join(c.strides(), ", "));
  SSM_CHECK(M <= INT_MAX && N <= INT_MAX && K <= INT_MAX,
            "{}: GEMM of (M, N, K) = ({}, {}, {}) exceeds cuBLAS's 32-bit sizes", op, M, N, K);

  // K = 0 reads nothing; a, b may then have strides cuBLAS would refuse, so skip their layouts.
  const Tensor a = K == 0 ? a_in : gemm_operand(a_in), b = K == 0 ? b_in : gemm_operand(b_in);
  const Layout la = K == 0 ? Layout{} : layout_of(a), lb = K == 0 ? Layout{} : layout_of(b);
  SSM_CHECK(K == 0 || (la.ok && lb.ok), "{}: GEMM operand leading dimension exceeds 32 bits", op);
  const Plan plan = plan_batch(a, b, c);

  const bool f64 = c.dtype() == DType::F64;
  const size_t es = dtype_size(c.dtype());
  const cudaDataType_t type = f64 ? CUDA_R_64F : CUDA_R_32F;
  const cublasComputeType_t compute = f64 ? CUBLAS_COMPUTE_64F
                                      : ssm::cuda::detail::tf32_enabled()
                                          ? CUBLAS_COMPUTE_32F_FAST_TF32
                                          : CUBLAS_COMPUTE_32F;
  const double one64 = 1, zero64 = 0;
  const float one32 = 1, zero32 = 0;
  const void* alpha = f64 ? static_cast<const void*>(&one64) : &one32;
  cublasHandle_t handle = K == 0 ? nullptr : ssm::cuda::detail::cublas_handle();
  const cublasOperation_t op_a = la.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_b = lb.transposed ? CUBLAS_OP_T : CUBLAS_OP_N;
  const int ia = static_cast<int>(la.ld), ib = static_cast<int>(lb.ld),
            ic = static_cast<int>(lc.ld);
  const int m = static_cast<int>(N), n = static_cast<int>(M), k = static_cast<int>(K);

  // Column-major, Cᵀ (N, M) = Bᵀ (N, K) · Aᵀ (K, M): cuBLAS's A is our b, its B our a.
  auto run = [&](int64_t oa, int64_t ob, int64_t oc, bool add) {
    char* pc = static_cast<char*>(c.raw_data()) + oc * static_cast<int64_t>(es);
    if (K == 0) {  // the empty sum: zeros, or nothing to add
      if (add) return;
      for (int64_t i = 0; i < plan.count; ++i)
        SSM_CUDA_CHECK(cudaMemset2DAsync(pc + i * plan.sc * static_cast<int64_t>(es), lc.ld * es, 0,
                                         N * es, M, ssm::cuda::detail::stream()),
                       op);
      return;
    }
    const char* pa = static_cast<const char*>(a.raw_data()) + oa * static_cast<int64_t>(es);
    const char* pb = static_cast<const char*>(b.raw_data()) + ob * static_cast<int64_t>(es);
    const void* beta = f64 ? (add ? static_cast<const void*>(&one64) : &zero64)
                           : (add ? static_cast<const void*>(&one32) : &zero32);
    if (plan.count == 1)
      SSM_CUBLAS_CHECK(cublasGemmEx(handle, op_b, op_a, m, n, k, alpha, pb, type, ib, pa, type, ia,
                                    beta, pc, type, ic, compute, CUBLAS_GEMM_DEFAULT),
                       op);
    else
      SSM_CUBLAS_CHECK(
          cublasGemmStridedBatchedEx(handle, op_b, op_a, m, n, k, alpha, pb, type, ib, plan.sb, pa,
                                     type, ia, plan.sa, beta, pc, type, ic, plan.sc,
                                     static_cast<int>(plan.count), compute, CUBLAS_GEMM_DEFAULT),
          op);
  };

  // Host loop, last dim fastest; the summed dims are outermost, so every output matrix gets its
  // first (beta = 0) product before any product is added to it.
  int64_t total = 1;
  for (const BatchDim& d : plan.host) total *= d.size;
  std::vector<int64_t> idx(plan.host.size(), 0);
  for (int64_t it = 0; it < total; ++it) {
    int64_t oa = 0, ob = 0, oc = 0;
    bool first = true;
    for (size_t j = 0; j < plan.host.size(); ++j) {
      oa += idx[j] * plan.host[j].sa;
      ob += idx[j] * plan.host[j].sb;
      oc += idx[j] * plan.host[j].sc;
      if (j < plan.n_summed && idx[j] != 0) first = false;
    }
    run(oa, ob, oc, accumulate || !first);
    for (size_t j = plan.host.size(); j-- > 0;) {
      if (++idx[j] < plan.host[j].size) break;
      idx[j] = 0;
    }
  }
}

#else  // no CUDA backend

Tensor gemm_operand(const Tensor&) {
  SSM_FAIL("cuBLAS GEMM: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}

void batched_matmul_into(const char* op, const Tensor&, const Tensor&, const Tensor&, bool) {
  SSM_FAIL("{}: this build has no CUDA backend (configure with -DSSM_CUDA=ON)", op);
}

#endif

}  // namespace ssm::kernels::cuda
