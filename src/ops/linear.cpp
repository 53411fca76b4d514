// matmul and linear: forward and backward are GEMMs through OpenBLAS (kernels/cpu/gemm); CUDA
// tensors go to ops/cuda_linear.cpp (cuBLAS).
#include "ssm/ops/linear.h"

#include <omp.h>

#include <algorithm>
#include <cstring>

#include "kernels/cpu/gemm.h"
#include "ops/cuda_linear.h"
#include "ops/matmul_shapes.h"
#include "ssm/autograd/node.h"
#include "ssm/core/reduce_to_shape.h"
#include "ssm/core/threads.h"

namespace ssm {

namespace {

using matmul_shapes::all_ones;
using matmul_shapes::as_matrix;
using matmul_shapes::batch_of;
using matmul_shapes::leading_rows;
using matmul_shapes::with_matrix;

void check_float_operand(const Tensor& t, const char* op, const char* name) {
  SSM_CHECK(t.defined(), "{}: argument '{}' is undefined", op, name);
  SSM_CHECK(is_floating(t.dtype()), "{}: argument '{}' expected float32 or float64, got {}", op,
            name, dtype_name(t.dtype()));
}

// Every operand on the device of the first one (`ref`, named ref_name).
void check_same_device(const Tensor& t, const Tensor& ref, const char* op, const char* name,
                       const char* ref_name) {
  SSM_CHECK(t.device() == ref.device(), "{}: argument '{}' expected a {} tensor (like {}), got {}",
            op, name, device_name(ref.device()), ref_name, device_name(t.device()));
}

// Broadcasts two batch shapes (right-aligned, size-1 dims stretch) or explains why not.
Shape broadcast_batch(const Tensor& a, const Tensor& b) {
  const Shape sa = batch_of(a), sb = batch_of(b);
  const size_t n = std::max(sa.size(), sb.size());
  Shape out(n, 1);
  for (size_t i = 0; i < n; ++i) {
    const int64_t da = i < n - sa.size() ? 1 : sa[i - (n - sa.size())];
    const int64_t db = i < n - sb.size() ? 1 : sb[i - (n - sb.size())];
    SSM_CHECK(da == db || da == 1 || db == 1,
              "matmul: batch dims of a {} and b {} do not broadcast", shape_str(a.shape()),
              shape_str(b.shape()));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// Copies `row` (n values) into every row of y (rows, n).
template <typename T>
void fill_rows(T* y, const T* row, int64_t rows, int64_t n) {
#pragma omp parallel for schedule(static) if (rows * n >= (int64_t{1} << 16))
  for (int64_t r = 0; r < rows; ++r) std::memcpy(y + r * n, row, sizeof(T) * n);
}

// c = a @ b for 2-d views (any strides BLAS can read; others are copied inside).
Tensor matmul_2d(const Tensor& a, const Tensor& b) {
  Tensor c = Tensor::empty({a.size(0), b.size(1)}, a.dtype());
  cpu::batched_matmul_into(a, b, c, /*accumulate=*/false);
  return c;
}

// Sum over the broadcast batch of a[i] @ b[i], written to a tensor of `target` shape
// (whose batch dims may be missing or 1 where the product's batch is larger).
Tensor batched_matmul_reduced(const Tensor& a, const Tensor& b, const Shape& full_batch,
                              const Shape& target) {
  const int64_t rows = a.size(-2), cols = b.size(-1);
  const Shape full = with_matrix(full_batch, rows, cols);
  if (target == full) {
    Tensor c = Tensor::empty(full, a.dtype());
    cpu::batched_matmul_into(a, b, c, false);
    return c;
  }
  // Broadcast dims of the target become stride-0 dims of the output view: BLAS adds
  // every batch entry's product into the same matrix (beta = 1 on a zeroed buffer).
  Tensor c = Tensor::zeros(target, a.dtype());
  cpu::batched_matmul_into(a, b, c.expand(full), true);
  return c;
}

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_float_operand(a, "matmul", "a");
  check_float_operand(b, "matmul", "b");
  SSM_CHECK(a.dim() >= 2, "matmul: argument 'a' expected shape (…, M, K), got {}",
            shape_str(a.shape()));
  SSM_CHECK(b.dim() >= 2, "matmul: argument 'b' expected shape (…, K, N), got {}",
            shape_str(b.shape()));
  SSM_CHECK(a.dtype() == b.dtype(), "matmul: argument 'b' expected dtype {} (like a), got {}",
            dtype_name(a.dtype()), dtype_name(b.dtype()));
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  SSM_CHECK(b.size(-2) == K, "matmul: argument 'b' expected shape (…, {}, N) to match a {}, got {}",
            K, shape_str(a.shape()), shape_str(b.shape()));
  check_same_device(b, a, "matmul", "b", "a");
  const Shape batch = broadcast_batch(a, b);
  if (a.device() == Device::CUDA) return cuda_matmul(a, b, batch);
  const Shape out_shape = with_matrix(batch, M, N);
  const Tensor ad = a.detach(), bd = b.detach();

  // b shared by the whole batch and a's batch contiguous: one tall GEMM (batch·M, K) @ (K, N)
  // instead of a loop of small ones; the backward then also runs as two single GEMMs.
  const bool flat = all_ones(batch_of(b)) && ad.is_contiguous();
  Tensor out;
  if (flat) {
    out = matmul_2d(ad.reshape({leading_rows(ad.shape()), K}), as_matrix(bd)).view(out_shape);
  } else {
    out = Tensor::empty(out_shape, a.dtype());
    cpu::batched_matmul_into(ad.expand(with_matrix(batch, M, K)),
                             bd.expand(with_matrix(batch, K, N)), out, false);
  }

  const bool need_a = a.requires_grad(), need_b = b.requires_grad();
  return record("matmul", out, {a, b},
                [ad, bd, batch, flat, need_a, need_b, M, K, N](const std::vector<Tensor>& g) {
                  const Tensor go = g[0].contiguous();
                  Tensor ga, gb;
                  if (flat) {
                    const Tensor a2 = ad.reshape({leading_rows(ad.shape()), K});
                    const Tensor g2 = go.view({leading_rows(go.shape()), N});
                    const Tensor b2 = as_matrix(bd);
                    // dA = dC · Bᵀ, dB = Aᵀ · dC with the batch folded into the rows.
                    if (need_a) ga = matmul_2d(g2, b2.transpose(0, 1)).view(ad.shape());
                    if (need_b) gb = matmul_2d(a2.transpose(0, 1), g2).view(bd.shape());
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

Tensor linear(const Tensor& x, const Tensor& weight, const Tensor& bias) {
  check_float_operand(x, "linear", "x");
  check_float_operand(weight, "linear", "weight");
  SSM_CHECK(x.dim() >= 1, "linear: argument 'x' expected shape (…, in), got {}",
            shape_str(x.shape()));
  const int64_t in = x.size(-1);
  SSM_CHECK(weight.dim() == 2 && weight.size(1) == in,
            "linear: argument 'weight' expected shape (out, {}) to match x {}, got {}", in,
            shape_str(x.shape()), shape_str(weight.shape()));
  SSM_CHECK(weight.dtype() == x.dtype(),
            "linear: argument 'weight' expected dtype {} (like x), got {}", dtype_name(x.dtype()),
            dtype_name(weight.dtype()));
  const int64_t out_features = weight.size(0);
  if (bias.defined()) {
    SSM_CHECK(bias.dim() == 1 && bias.size(0) == out_features,
              "linear: argument 'bias' expected shape ({}), got {}", out_features,
              shape_str(bias.shape()));
    SSM_CHECK(bias.dtype() == x.dtype(),
              "linear: argument 'bias' expected dtype {} (like x), got {}", dtype_name(x.dtype()),
              dtype_name(bias.dtype()));
  }
  check_same_device(weight, x, "linear", "weight", "x");
  if (bias.defined()) check_same_device(bias, x, "linear", "bias", "x");
  if (x.device() == Device::CUDA) return cuda_linear(x, weight, bias);

  // All leading dims fold into the rows of one GEMM: Y (R, out) = X (R, in) · Wᵀ.
  const Tensor x2 = x.dim() == 2 ? x.detach() : x.detach().reshape({leading_rows(x.shape()), in});
  const int64_t R = x2.size(0);
  const Tensor wd = weight.detach();
  Tensor y = Tensor::empty({R, out_features}, x.dtype());
  const Tensor b = bias.defined() ? bias.detach().contiguous() : Tensor();
  // Rows [r0, r0 + n) of Y: start at the bias and let BLAS add the product (beta = 1).
  const auto rows_of_y = [&](int64_t r0, int64_t n) {
    Tensor yr = y.narrow(0, r0, n);
    if (b.defined())
      SSM_DISPATCH_FLOAT(x.dtype(), "linear", [&] {
        fill_rows(yr.data<scalar_t>(), b.data<scalar_t>(), n, out_features);
      });
    cpu::batched_matmul_into(x2.narrow(0, r0, n), wd.transpose(0, 1), yr, b.defined());
  };
  // A tall product is split by rows over the threads, each running a single-threaded GEMM on
  // its block (inside a parallel region OpenBLAS stays on its calling thread): on the machine
  // of docs/PERFORMANCE.md one thread's GEMM runs at 1.7× the per-thread rate of a two-threaded
  // one, whose threads split the small N and synchronise.
  const int threads = get_num_threads();
  if (threads > 1 && !omp_in_parallel() && R >= 64 * threads &&
      R * in * out_features >= (int64_t{1} << 22)) {
#pragma omp parallel num_threads(threads)
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t r0 = R * t / nt, r1 = R * (t + 1) / nt;
      rows_of_y(r0, r1 - r0);
    }
  } else {
    rows_of_y(0, R);
  }

  Shape out_shape = x.shape();
  out_shape.back() = out_features;
  Tensor out = y.view(out_shape);

  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  const bool need_b = bias.defined() && bias.requires_grad();
  const Shape x_shape = x.shape();
  return record(
      "linear", out, {x, weight, bias},
      [x2, wd, x_shape, need_x, need_w, need_b](const std::vector<Tensor>& g) {
        const int64_t n_out = wd.size(0);
        const Tensor g2 = g[0].contiguous().view({x2.size(0), n_out});
        Tensor gx, gw, gb;
        if (need_x) gx = Tensor::empty({x2.size(0), wd.size(1)}, g2.dtype());
        if (need_w) gw = Tensor::empty(wd.shape(), g2.dtype());
        const auto grad_x = [&] { cpu::batched_matmul_into(g2, wd, gx, false); };
        const auto grad_w = [&] { cpu::batched_matmul_into(g2.transpose(0, 1), x2, gw, false); };
        // dX = dY · W and dW = dYᵀ · X. On two threads the two GEMMs run side by
        // side, one thread each (inside a parallel region OpenBLAS stays on its
        // calling thread): a single-threaded GEMM here is 1.7× faster than half a
        // two-threaded one. With more threads each GEMM keeps all of them.
        if (need_x && need_w && get_num_threads() == 2 && !omp_in_parallel() &&
            x2.size(0) * wd.size(0) * wd.size(1) >= (int64_t{1} << 22)) {
#pragma omp parallel sections num_threads(2)
          {
#pragma omp section
            grad_x();
#pragma omp section
            grad_w();
          }
        } else {
          if (need_x) grad_x();
          if (need_w) grad_w();
        }
        if (need_x) gx = gx.view(x_shape);
        if (need_b) {  // db = Σ_rows dY
          gb = Tensor::empty({n_out}, g2.dtype());
          SSM_DISPATCH_FLOAT(g2.dtype(), "linear", [&] {
            cpu::column_sums(g2.size(0), n_out, g2.data<scalar_t>(), n_out, gb.data<scalar_t>());
          });
        }
        return std::vector<Tensor>{gx, gw, gb};
      });
}

}  // namespace ssm
