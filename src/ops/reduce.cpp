// Sum and mean over a set of dims. Every reduction is brought to the form
//   out[a, n] = scale · Σ_k x[a, k, n]      (x viewed as (A, K, N), contiguous)
// directly when the reduced dims form one block of x's dims, else after permuting the kept
// dims to the front (one copy). Sums accumulate in double for both dtypes, so float32
// results carry only the rounding of their inputs, and the order of additions does not
// depend on the thread count. CUDA tensors take the same path to the (A, K, N) form and then
// the device kernel (ops/cuda_reduce), which also accumulates in double.
#include "ssm/ops/reduce.h"

#include <algorithm>
#include <numeric>

#include "kernels/cpu/elementwise.h"
#include "ops/cuda_elementwise.h"
#include "ops/cuda_reduce.h"
#include "ssm/autograd/node.h"

namespace ssm {

namespace {

constexpr int64_t kColumnBlock = 256;  // columns accumulated together when N > 1
// When the (a, column block) tasks are fewer than kTargetTasks, K is cut into chunks (of at
// least kMinChunkElements each) summed separately and then added in chunk order. The cut
// depends only on the shape, so results do not depend on the thread count.
constexpr int64_t kTargetTasks = 64;
constexpr int64_t kMinChunkElements = 8192;

// Σ x[0..n) with eight independent double lanes (vectorises without reassociation flags).
template <typename T>
double row_sum(const T* __restrict x, int64_t n) {
  double lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) lanes[j] += static_cast<double>(x[i + j]);
  double s = 0;
  for (; i < n; ++i) s += static_cast<double>(x[i]);
  for (double l : lanes) s += l;
  return s;
}

// acc[j] = Σ_{k < rows} x[k·N + j] for j < width: rows are read contiguously.
template <typename T>
void column_sums(const T* x, int64_t rows, int64_t N, int64_t width, double* __restrict acc) {
  std::fill(acc, acc + width, 0.0);
  for (int64_t k = 0; k < rows; ++k) {
    const T* __restrict row = x + k * N;
    for (int64_t j = 0; j < width; ++j) acc[j] += static_cast<double>(row[j]);
  }
}

template <typename T>
void sum_akn(const T* x, T* out, int64_t A, int64_t K, int64_t N, double scale) {
  const int64_t width = std::min(N, kColumnBlock);
  const int64_t blocks = (N + width - 1) / width;
  const int64_t tasks = A * blocks;
  int64_t chunks = 1;
  if (tasks < kTargetTasks)
    chunks =
        std::clamp<int64_t>(K * width / kMinChunkElements, 1, (kTargetTasks + tasks - 1) / tasks);
  const int64_t chunk_rows = (K + chunks - 1) / chunks;
  // With one chunk the sums go straight to out; otherwise to per-chunk partials.
  std::vector<double> partial(chunks > 1 ? chunks * A * N : 0);
  const bool parallel = A * K * N > cpu::kParallelThreshold;

#pragma omp parallel for if (parallel) schedule(static)
  for (int64_t t = 0; t < tasks * chunks; ++t) {
    const int64_t c = t % chunks;
    const int64_t a = t / chunks / blocks;
    const int64_t n0 = (t / chunks % blocks) * width;
    const int64_t len = std::min(width, N - n0);
    const int64_t k0 = std::min(K, c * chunk_rows);
    const int64_t rows = std::min(chunk_rows, K - k0);
    const T* base = x + (a * K + k0) * N + n0;
    double acc[kColumnBlock];
    if (N == 1) {
      acc[0] = row_sum(base, rows);
    } else {
      column_sums(base, rows, N, len, acc);
    }
    if (chunks == 1) {
      T* o = out + a * N + n0;
      for (int64_t j = 0; j < len; ++j) o[j] = static_cast<T>(acc[j] * scale);
    } else {
      std::copy(acc, acc + len, partial.data() + (c * A + a) * N + n0);
    }
  }
  if (chunks > 1) {
    const int64_t outputs = A * N;
#pragma omp parallel for if (parallel) schedule(static)
    for (int64_t i = 0; i < outputs; ++i) {
      double s = 0;
      for (int64_t c = 0; c < chunks; ++c) s += partial[c * outputs + i];
      out[i] = static_cast<T>(s * scale);
    }
  }
}

struct ReducePlan {
  std::vector<bool> reduced;  // per dim of x
  Shape keepdim_shape;        // x's shape with reduced dims set to 1
  Shape out_shape;            // keepdim_shape, or with the reduced dims removed
  int64_t count = 1;          // how many elements each output sums
};

ReducePlan make_plan(const char* name, const Tensor& x, const std::vector<int64_t>& dims,
                     bool keepdim) {
  SSM_CHECK(x.defined(), "{}: argument 'x' is an undefined tensor", name);
  SSM_CHECK(is_floating(x.dtype()), "{}: argument 'x' expected float32 or float64, got {}", name,
            dtype_name(x.dtype()));
  ReducePlan p;
  p.reduced.assign(x.dim(), false);
  for (int64_t d : dims) {
    const int64_t w = wrap_dim(d, x.dim(), name);
    SSM_CHECK(!p.reduced[w], "{}: argument 'dims' ({}) names dimension {} twice", name,
              fmt::join(dims, ", "), w);
    p.reduced[w] = true;
  }
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (p.reduced[d]) {
      p.count *= x.size(d);
      p.keepdim_shape.push_back(1);
      if (keepdim) p.out_shape.push_back(1);
    } else {
      p.keepdim_shape.push_back(x.size(d));
      p.out_shape.push_back(x.size(d));
    }
  }
  return p;
}

// The reduced values of x (no autograd), scaled by `scale`.
Tensor reduce_values(const char* name, const Tensor& x, const ReducePlan& p, double scale) {
  Tensor xc = x.detach().contiguous();
  // Do the reduced dims form one block? Dims of size 1 can be ignored: they do not move
  // the memory position, whichever side they are counted on.
  int64_t first = -1, last = -1;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (x.size(d) == 1 || !p.reduced[d]) continue;
    if (first < 0) first = d;
    last = d;
  }
  bool block = true;
  for (int64_t d = first + 1; d < last; ++d)
    if (!p.reduced[d] && x.size(d) != 1) block = false;
  int64_t A = 1, K = 1, N = 1;
  if (block && first >= 0) {
    for (int64_t d = 0; d < first; ++d) A *= x.size(d);
    for (int64_t d = first; d <= last; ++d) K *= x.size(d);
    for (int64_t d = last + 1; d < x.dim(); ++d) N *= x.size(d);
  } else if (first < 0) {
    A = x.numel();  // nothing of size > 1 is reduced: a copy (times scale)
  } else {
    std::vector<int64_t> order;
    for (int64_t d = 0; d < x.dim(); ++d)
      if (!p.reduced[d]) order.push_back(d);
    for (int64_t d = 0; d < x.dim(); ++d)
      if (p.reduced[d]) order.push_back(d);
    xc = xc.permute(order).contiguous();
    K = p.count;
    A = x.numel() / std::max<int64_t>(K, 1);
    if (K == 0) A = shape_numel(p.out_shape);
  }
  Tensor out = Tensor::empty(p.out_shape, x.dtype(), x.device());
  if (out.numel() == 0) return out;
  if (x.device() == Device::CUDA) {
    cuda_sum_akn(name, xc, out, A, K, N, scale);
    return out;
  }
  SSM_DISPATCH_FLOAT(x.dtype(), name,
                     [&] { sum_akn(xc.data<scalar_t>(), out.data<scalar_t>(), A, K, N, scale); });
  return out;
}

Tensor reduce_op(const char* name, const Tensor& x, const std::vector<int64_t>& dims, bool keepdim,
                 bool is_mean) {
  const ReducePlan p = make_plan(name, x, dims, keepdim);
  const double scale = is_mean ? 1.0 / static_cast<double>(p.count) : 1.0;
  Tensor out = reduce_values(name, x, p, scale);
  if (!needs_grad({x})) return out;
  const Shape x_shape = x.shape();
  const Shape keep = p.keepdim_shape;
  const Device device = x.device();
  return record(name, out, {x}, [x_shape, keep, scale, device](const std::vector<Tensor>& g) {
    // Every input element receives its output's gradient (times 1/count for the mean).
    Tensor gx = g[0].to(device).reshape(keep).expand(x_shape).contiguous();
    if (scale != 1.0 && device == Device::CUDA) {
      gx = cuda_unary_forward("mean", cpu::UnaryOp::MulScalar, gx, scale);
    } else if (scale != 1.0) {
      SSM_DISPATCH_FLOAT(gx.dtype(), "mean", [&] {
        scalar_t* p = gx.data<scalar_t>();
        const auto s = static_cast<scalar_t>(scale);
        for (int64_t i = 0, n = gx.numel(); i < n; ++i) p[i] *= s;
      });
    }
    return std::vector<Tensor>{gx};
  });
}

std::vector<int64_t> all_dims(const Tensor& x) {
  std::vector<int64_t> d(x.defined() ? x.dim() : 0);
  std::iota(d.begin(), d.end(), 0);
  return d;
}

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_op("sum", x, dims, keepdim, false);
}
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  return reduce_op("mean", x, dims, keepdim, true);
}
Tensor sum_all(const Tensor& x) {
  return reduce_op("sum_all", x, all_dims(x), false, false);
}
Tensor mean_all(const Tensor& x) {
  return reduce_op("mean_all", x, all_dims(x), false, true);
}

Tensor sum_to_shape(const Tensor& x, const Shape& shape) {
  SSM_CHECK(x.defined(), "sum_to_shape: argument 'x' is an undefined tensor");
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  bool compatible = lead >= 0;
  std::vector<int64_t> dims;
  for (int64_t d = 0; compatible && d < x.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
    } else if (shape[d - lead] == 1 && x.size(d) != 1) {
      dims.push_back(d);
    } else {
      compatible = shape[d - lead] == x.size(d);
    }
  }
  SSM_CHECK(compatible, "sum_to_shape: argument 'x' of shape {} cannot be summed to shape {}",
            shape_str(x.shape()), shape_str(shape));
  return reduce_op("sum_to_shape", x, dims, /*keepdim=*/true, false).reshape(shape);
}

}  // namespace ssm
