#pragma once
// Element-wise copy between tensors of the same shape and any strides / dtypes.
#include "ssm/core/tensor.h"

namespace ssm::detail {

template <typename Dst, typename Src>
void strided_copy(Dst* dst, const Shape& shape, const Shape& dst_strides, const Src* src,
                  const Shape& src_strides) {
  const int64_t nd = static_cast<int64_t>(shape.size());
  const int64_t n = shape_numel(shape);
  if (n == 0) return;
  if (nd == 0) {
    dst[0] = static_cast<Dst>(src[0]);
    return;
  }
  std::vector<int64_t> idx(nd, 0);
  const int64_t inner = shape[nd - 1], ds = dst_strides[nd - 1], ss = src_strides[nd - 1];
  int64_t doff = 0, soff = 0;
  for (int64_t done = 0; done < n; done += inner) {
    for (int64_t i = 0; i < inner; ++i) dst[doff + i * ds] = static_cast<Dst>(src[soff + i * ss]);
    // advance the odometer over the outer dims
    for (int64_t d = nd - 2; d >= 0; --d) {
      ++idx[d];
      doff += dst_strides[d];
      soff += src_strides[d];
      if (idx[d] < shape[d]) break;
      doff -= dst_strides[d] * shape[d];
      soff -= src_strides[d] * shape[d];
      idx[d] = 0;
    }
  }
}

}  // namespace ssm::detail
