// matmul and linear on CUDA tensors as autograd ops: every product, forward and backward, is a
// cuBLAS GEMM on the tensors' own strides (kernels/cuda/gemm.h); linear's bias is a row
// broadcast before the GEMM adds the product (beta = 1) and its gradient a column sum
// (kernels/cuda/linear.h). The shapes follow the CPU version in ops/linear.cpp exactly.
#include "ops/cuda_linear.h"

#include "ssm/autograd/node.h"

#ifdef SSM_WITH_CUDA
#include "core/cuda/check.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/linear.h"
#include "ops/matmul_shapes.h"
#endif

namespace ssm {

#ifdef SSM_WITH_CUDA

namespace {

namespace kc = kernels::cuda;
using matmul_shapes::all_ones;
using matmul_shapes::as_matrix;
using matmul_shapes::batch_of;
using matmul_shapes::leading_rows;
using matmul_shapes::with_matrix;

Tensor device_empty(const Shape& shape, DType dtype) {
  return Tensor::empty(shape, dtype, Device::CUDA);
}

// c = a @ b for 2-d views.
Tensor gemm(const char* op, const Tensor& a, const Tensor& b) {
  Tensor c = device_empty({a.size(0), b.size(1)}, a.dtype());
  kc::batched_matmul_into(op, a, b, c, /*accumulate=*/false);
  return c;
}

// Sum over the broadcast batch of a[i] @ b[i], as a tensor of `target` shape (whose batch dims
// may be missing or 1 where the product's batch is larger: those become stride-0 dims of the
// output view, which the GEMM sums into).
Tensor batched_matmul_reduced(const Tensor& a, const Tensor& b, const Shape& full_batch,
                              const Shape& target) {
  const Shape full = with_matrix(full_batch, a.size(-2), b.size(-1));
  Tensor c = device_empty(target, a.dtype());
  kc::batched_matmul_into("matmul", a, b, target == full ? c : c.expand(full), false);
  return c;
}

}  // namespace

Tensor cuda_matmul(const Tensor& a, const Tensor& b, const Shape& batch) {
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  const Shape out_shape = with_matrix(batch, M, N);
  // Operands cuBLAS cannot read as they are are copied here, before any broadcast expansion.
  const Tensor ad = kc::gemm_operand(a.detach()), bd = kc::gemm_operand(b.detach());

  // b shared by the whole batch and a's batch contiguous: one tall GEMM (batch·M, K) @ (K, N),
  // and the backward then also runs as two single GEMMs.
  const bool flat = all_ones(batch_of(bd)) && ad.is_contiguous();
  Tensor out;
  if (flat) {
    out = gemm("matmul", ad.reshape({leading_rows(ad.shape()), K}), as_matrix(bd)).view(out_shape);
  } else {
    out = device_empty(out_shape, a.dtype());
    kc::batched_matmul_into("matmul", ad.expand(with_matrix(batch, M, K)),
                            bd.expand(with_matrix(batch, K, N)), out, false);
  }

  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record("matmul", out, {a, b},
                [ad, bd, batch, flat, need_a, need_b, M, K, N](const std::vector<Tensor>& g) {
                  const Tensor go = g[0].to(Device::CUDA).contiguous();
                  Tensor ga, gb;
                  if (flat) {
                    const Tensor a2 = ad.reshape({leading_rows(ad.shape()), K});
                    const Tensor g2 = go.view({leading_rows(go.shape()), N});
                    const Tensor b2 = as_matrix(bd);
                    // dA = dC · Bᵀ, dB = Aᵀ · dC with the batch folded into the rows.
                    if (need_a) ga = gemm("matmul", g2, b2.transpose(0, 1)).view(ad.shape());
                    if (need_b) gb = gemm("matmul", a2.transpose(0, 1), g2).view(bd.shape());
                  } else {
                    const Tensor af = ad.expand(with_matrix(batch, M, K));
                    const Tensor bf = bd.expand(with_matrix(batch, K, N));
                    if (need_a)
                      ga = batched_matmul_reduced(go, bf.transpose(-1, -2), batch, ad.shape());
                    if (need_b)
                      gb = batched_matmul_reduced(af.transpose(-1, -2), go, batch, bd.shape());
                  }
                  return std::vector<Tensor>{ga, gb};
                });
}

Tensor cuda_linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  const int64_t in = x.size(-1), n_out = weight.size(0);
  // All leading dims fold into the rows of one GEMM: Y (R, out) = X (R, in) · Wᵀ.
  const Tensor x2 = kc::gemm_operand(
      x.dim() == 2 ? x.detach() : x.detach().reshape({leading_rows(x.shape()), in}));
  const Tensor wd = kc::gemm_operand(weight.detach());
  const int64_t R = x2.size(0);
  Tensor y = device_empty({R, n_out}, x.dtype());
  if (bias.defined()) {
    // Y starts as the bias in every row; the GEMM adds the product to it (beta = 1).
    const Tensor b = bias.detach().contiguous();
    SSM_DISPATCH_FLOAT(x.dtype(), "linear", [&] {
      using T = scalar_t;
      SSM_CUDA_CHECK(kc::fill_rows<T>(y.data_on<T>(Device::CUDA), b.data_on<T>(Device::CUDA), R,
                                      n_out, cuda::detail::stream()),
                     "linear");
    });
  }
  kc::batched_matmul_into("linear", x2, wd.transpose(0, 1), y, bias.defined());

  Shape out_shape = x.shape();
  out_shape.back() = n_out;
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  const bool need_b = bias.defined() && bias.requires_grad();
  const Shape x_shape = x.shape();
  return record("linear", y.view(out_shape), {x, weight, bias},
                [x2, wd, x_shape, need_x, need_w, need_b](const std::vector<Tensor>& g) {
                  const int64_t rows = x2.size(0), n = wd.size(0);
                  const Tensor g2 = g[0].to(Device::CUDA).contiguous().view({rows, n});
                  Tensor gx, gw, gb;
                  if (need_x) gx = gemm("linear", g2, wd).view(x_shape);    // dX = dY · W
                  if (need_w) gw = gemm("linear", g2.transpose(0, 1), x2);  // dW = dYᵀ · X
                  if (need_b) {                                             // db = Σ_rows dY
                    gb = device_empty({n}, g2.dtype());
                    Tensor scratch = device_empty({kc::column_sum_chunks(rows, n) * n}, DType::F64);
                    SSM_DISPATCH_FLOAT(g2.dtype(), "linear", [&] {
                      using T = scalar_t;
                      SSM_CUDA_CHECK(kc::column_sums<T>(g2.data_on<T>(Device::CUDA), rows, n,
                                                        gb.data_on<T>(Device::CUDA),
                                                        scratch.data_on<double>(Device::CUDA),
                                                        cuda::detail::stream()),
                                     "linear");
                    });
                  }
                  return std::vector<Tensor>{gx, gw, gb};
                });
}

#else  // no CUDA backend

Tensor cuda_matmul(const Tensor&, const Tensor&, const Shape&) {
  SSM_FAIL("matmul: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}

Tensor cuda_linear(const Tensor&, const Tensor&, const Tensor&) {
  SSM_FAIL("linear: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}

#endif

}  // namespace ssm
