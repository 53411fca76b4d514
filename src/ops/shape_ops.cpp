// concat, split and glu. concat views every tensor as (outer, size_i · inner) rows and copies
// row by row; its backward hands each input the matching narrow of the gradient. glu reads
// x as (outer, 2, M) with M = (size/2) · inner, so both halves are contiguous rows.
#include "ssm/ops/shape_ops.h"

#include <cmath>
#include <cstring>

#include "kernels/cpu/elementwise.h"
#include "ssm/autograd/node.h"

namespace ssm {

namespace {

int64_t product(const Shape& s, int64_t begin, int64_t end) {
  int64_t p = 1;
  for (int64_t d = begin; d < end; ++d) p *= s[d];
  return p;
}

template <typename T>
inline T sigmoid_of(T v) {
  return T(1) / (T(1) + std::exp(-v));
}

template <typename T>
void glu_forward(const T* x, T* y, int64_t outer, int64_t M) {
#pragma omp parallel for if (outer * M > cpu::kParallelThreshold) schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    const T* __restrict a = x + o * 2 * M;
    const T* __restrict b = a + M;
    T* __restrict out = y + o * M;
    for (int64_t j = 0; j < M; ++j) out[j] = a[j] * sigmoid_of(b[j]);
  }
}

// d(a·σ(b)) = σ(b)·da + a·σ(b)(1 − σ(b))·db
template <typename T>
void glu_backward(const T* x, const T* gy, T* gx, int64_t outer, int64_t M) {
#pragma omp parallel for if (outer * M > cpu::kParallelThreshold) schedule(static)
  for (int64_t o = 0; o < outer; ++o) {
    const T* __restrict a = x + o * 2 * M;
    const T* __restrict b = a + M;
    const T* __restrict g = gy + o * M;
    T* __restrict ga = gx + o * 2 * M;
    T* __restrict gb = ga + M;
    for (int64_t j = 0; j < M; ++j) {
      const T s = sigmoid_of(b[j]);
      ga[j] = g[j] * s;
      gb[j] = g[j] * a[j] * s * (T(1) - s);
    }
  }
}

}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  SSM_CHECK(!xs.empty(), "concat: argument 'xs' is empty, expected at least one tensor");
  for (size_t i = 0; i < xs.size(); ++i) {
    SSM_CHECK(xs[i].defined(), "concat: tensor {} of 'xs' is undefined", i);
    SSM_CHECK(xs[i].device() == Device::CPU, "concat: tensor {} of 'xs' expected on CPU, got {}", i,
              device_name(xs[i].device()));
  }
  const Tensor& first = xs[0];
  const int64_t nd = first.dim();
  dim = wrap_dim(dim, nd, "concat");
  Shape out_shape = first.shape();
  out_shape[dim] = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& x = xs[i];
    SSM_CHECK(x.dtype() == first.dtype(),
              "concat: tensor {} of 'xs' has dtype {}, expected {} like tensor 0", i,
              dtype_name(x.dtype()), dtype_name(first.dtype()));
    bool same = x.dim() == nd;
    for (int64_t d = 0; same && d < nd; ++d) same = d == dim || x.size(d) == first.size(d);
    SSM_CHECK(same,
              "concat: tensor {} of 'xs' has shape {}, expected the shape of tensor 0 {} except in "
              "dimension {}",
              i, shape_str(x.shape()), shape_str(first.shape()), dim);
    out_shape[dim] += x.size(dim);
  }

  Tensor out = Tensor::empty(out_shape, first.dtype());
  const int64_t outer = product(out_shape, 0, dim);
  const int64_t inner = product(out_shape, dim + 1, nd);
  const size_t elem = dtype_size(first.dtype());
  const int64_t out_row = out_shape[dim] * inner;
  char* dst = static_cast<char*>(out.raw_data());
  int64_t offset = 0;  // along dim
  for (const Tensor& x : xs) {
    const Tensor xc = x.detach().contiguous();
    const int64_t row = x.size(dim) * inner;
    const char* src = static_cast<const char*>(xc.raw_data());
    if (row > 0) {
#pragma omp parallel for if (outer * row > cpu::kParallelThreshold) schedule(static)
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(dst + (o * out_row + offset * inner) * elem, src + o * row * elem, row * elem);
    }
    offset += x.size(dim);
  }

  if (!needs_grad(xs)) return out;
  std::vector<int64_t> sizes;
  std::vector<bool> need;
  for (const Tensor& x : xs) {
    sizes.push_back(x.size(dim));
    need.push_back(x.requires_grad());
  }
  return record("concat", out, xs, [sizes, need, dim](const std::vector<Tensor>& g) {
    std::vector<Tensor> grads(sizes.size());
    int64_t start = 0;
    for (size_t i = 0; i < sizes.size(); ++i) {
      if (need[i]) grads[i] = g[0].narrow(dim, start, sizes[i]).contiguous();
      start += sizes[i];
    }
    return grads;
  });
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  SSM_CHECK(x.defined(), "split: argument 'x' is an undefined tensor");
  dim = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    SSM_CHECK(s >= 0, "split: argument 'sizes' ({}) has a negative size", fmt::join(sizes, ", "));
    total += s;
  }
  SSM_CHECK(
      total == x.size(dim),
      "split: argument 'sizes' ({}) adds up to {}, expected x.size({}) = {} for x of shape {}",
      fmt::join(sizes, ", "), total, dim, x.size(dim), shape_str(x.shape()));
  std::vector<Tensor> parts;
  int64_t start = 0;
  for (int64_t s : sizes) {
    parts.push_back(x.narrow(dim, start, s));
    start += s;
  }
  return parts;
}

Tensor glu(const Tensor& x, int64_t dim) {
  SSM_CHECK(x.defined(), "glu: argument 'x' is an undefined tensor");
  SSM_CHECK(is_floating(x.dtype()), "glu: argument 'x' expected float32 or float64, got {}",
            dtype_name(x.dtype()));
  SSM_CHECK(x.device() == Device::CPU, "glu: argument 'x' expected a CPU tensor, got {}",
            device_name(x.device()));
  dim = wrap_dim(dim, x.dim(), "glu");
  SSM_CHECK(x.size(dim) % 2 == 0,
            "glu: argument 'x' of shape {} needs an even size in dimension {}, got {}",
            shape_str(x.shape()), dim, x.size(dim));
  Shape out_shape = x.shape();
  out_shape[dim] /= 2;
  const int64_t outer = product(x.shape(), 0, dim);
  const int64_t M = out_shape[dim] * product(x.shape(), dim + 1, x.dim());
  Tensor xc = x.detach().contiguous();
  Tensor y = Tensor::empty(out_shape, x.dtype());
  SSM_DISPATCH_FLOAT(x.dtype(), "glu",
                     [&] { glu_forward(xc.data<scalar_t>(), y.data<scalar_t>(), outer, M); });
  if (!needs_grad({x})) return y;
  return record("glu", y, {x}, [xc, outer, M](const std::vector<Tensor>& g) {
    Tensor gy = g[0].contiguous();
    Tensor gx = Tensor::empty(xc.shape(), xc.dtype());
    SSM_DISPATCH_FLOAT(xc.dtype(), "glu", [&] {
      glu_backward(xc.data<scalar_t>(), gy.data<scalar_t>(), gx.data<scalar_t>(), outer, M);
    });
    return std::vector<Tensor>{gx};
  });
}

}  // namespace ssm
