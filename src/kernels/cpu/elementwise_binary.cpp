// Broadcasting binary maps. The output is walked as rows of the innermost (merged) dim;
// inside a row each operand either advances (stride 1) or stays put (stride 0), and the
// four combinations get their own loop so each one vectorises.
#include <algorithm>

#include "kernels/cpu/elementwise.h"

namespace ssm::cpu {

namespace {

// Longest stretch of one row handled by one task: keeps a single huge row (the same-shape
// and scalar cases) splittable across threads.
constexpr int64_t kTileLength = 16384;

// Per output dim, the element stride of a contiguous operand of shape `s` (right-aligned
// against `out`); 0 where the operand is broadcast.
std::vector<int64_t> broadcast_strides(const Shape& s, const Shape& out) {
  const size_t nd = out.size();
  std::vector<int64_t> st(nd, 0);
  int64_t acc = 1;
  for (size_t k = s.size(); k-- > 0;) {
    const size_t d = k + nd - s.size();
    st[d] = (s[k] == out[d] && s[k] != 1) ? acc : 0;
    acc *= s[k];
  }
  return st;
}

template <int kStrideA, int kStrideB, typename T, typename F>
inline void row_loop(const T* __restrict a, const T* __restrict b, T* __restrict out, int64_t n,
                     F f) {
  for (int64_t i = 0; i < n; ++i) out[i] = f(a[i * kStrideA], b[i * kStrideB]);
}

template <typename T, typename F>
void run(const T* a, const T* b, T* out, const BroadcastPlan& p, F f) {
  int64_t total = 1;
  for (int64_t s : p.sizes) total *= s;
  if (total == 0) return;
  const int64_t nd = static_cast<int64_t>(p.sizes.size());
  const int64_t inner = p.sizes.back();
  const int64_t rows = total / inner;
  const bool a_moves = p.a_strides.back() != 0, b_moves = p.b_strides.back() != 0;
  const int64_t tile = std::min(inner, kTileLength);
  const int64_t tiles_per_row = (inner + tile - 1) / tile;
  const int64_t tiles = rows * tiles_per_row;

#pragma omp parallel for if (total > kParallelThreshold) schedule(static)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t row = t / tiles_per_row;
    const int64_t begin = (t % tiles_per_row) * tile;
    const int64_t len = std::min(tile, inner - begin);
    // Offsets of this row in a and b: decompose the row index over the outer dims.
    int64_t a_off = 0, b_off = 0, rest = row;
    for (int64_t d = nd - 2; d >= 0; --d) {
      const int64_t idx = rest % p.sizes[d];
      rest /= p.sizes[d];
      a_off += idx * p.a_strides[d];
      b_off += idx * p.b_strides[d];
    }
    const T* pa = a + a_off + (a_moves ? begin : 0);
    const T* pb = b + b_off + (b_moves ? begin : 0);
    T* po = out + row * inner + begin;
    if (a_moves && b_moves) {
      row_loop<1, 1>(pa, pb, po, len, f);
    } else if (a_moves) {
      row_loop<1, 0>(pa, pb, po, len, f);
    } else if (b_moves) {
      row_loop<0, 1>(pa, pb, po, len, f);
    } else {
      row_loop<0, 0>(pa, pb, po, len, f);
    }
  }
}

}  // namespace

BroadcastPlan plan_broadcast(const Shape& a, const Shape& b, const Shape& out) {
  const std::vector<int64_t> sa = broadcast_strides(a, out), sb = broadcast_strides(b, out);
  BroadcastPlan p;
  for (size_t d = 0; d < out.size(); ++d) {
    if (out[d] == 1) continue;  // contributes nothing to the walk
    // Merge into the previous dim when both operands step through the two uniformly.
    if (!p.sizes.empty() && p.a_strides.back() == sa[d] * out[d] &&
        p.b_strides.back() == sb[d] * out[d]) {
      p.sizes.back() *= out[d];
      p.a_strides.back() = sa[d];
      p.b_strides.back() = sb[d];
    } else {
      p.sizes.push_back(out[d]);
      p.a_strides.push_back(sa[d]);
      p.b_strides.push_back(sb[d]);
    }
  }
  if (p.sizes.empty()) {  // a single element
    p.sizes = {1};
    p.a_strides = {0};
    p.b_strides = {0};
  }
  return p;
}

template <typename T>
void binary_forward(BinaryOp op, const T* a, const T* b, T* out, const BroadcastPlan& plan) {
  switch (op) {
    case BinaryOp::Add:
      return run(a, b, out, plan, [](T x, T y) { return x + y; });
    case BinaryOp::Sub:
      return run(a, b, out, plan, [](T x, T y) { return x - y; });
    case BinaryOp::Mul:
      return run(a, b, out, plan, [](T x, T y) { return x * y; });
    case BinaryOp::Div:
      return run(a, b, out, plan, [](T x, T y) { return x / y; });
  }
}

template void binary_forward<float>(BinaryOp, const float*, const float*, float*,
                                    const BroadcastPlan&);
template void binary_forward<double>(BinaryOp, const double*, const double*, double*,
                                     const BroadcastPlan&);

}  // namespace ssm::cpu
