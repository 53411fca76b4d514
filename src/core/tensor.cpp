#include "ssm/core/tensor.h"

#include <cmath>
#include <cstring>
#include <numeric>
#include <sstream>

#include "core/cuda/memory.h"
#include "core/strided.h"
#include "ssm/autograd/node.h"
#include "ssm/core/reduce_to_shape.h"

namespace ssm {

std::string shape_str(const Shape& s) {
  return fmt::format("({})", fmt::join(s, ", "));
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

Shape contiguous_strides(const Shape& s) {
  Shape st(s.size());
  int64_t acc = 1;
  for (int64_t i = static_cast<int64_t>(s.size()) - 1; i >= 0; --i) {
    st[i] = acc;
    acc *= s[i];
  }
  return st;
}

int64_t wrap_dim(int64_t d, int64_t ndim, const char* what) {
  int64_t w = d < 0 ? d + ndim : d;
  SSM_CHECK(w >= 0 && w < ndim, "{}: dimension {} is out of range for a {}-d tensor", what, d,
            ndim);
  return w;
}

namespace {

Tensor make_view(const Tensor& base, Shape shape, Shape strides, int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.storage();
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(impl);
}

template <typename F>
auto dispatch_all(DType t, F&& f) {
  switch (t) {
    case DType::F32:
      return f(float{});
    case DType::F64:
      return f(double{});
    case DType::I32:
      return f(int32_t{});
    case DType::I64:
      return f(int64_t{});
  }
  return f(float{});
}

}  // namespace

// ---------------------------------------------------------------- factories
Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (int64_t d : shape)
    SSM_CHECK(d >= 0, "Tensor::empty: negative dimension in shape {}", shape_str(shape));
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = std::make_shared<Storage>(shape_numel(shape) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(impl);
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) {
  Tensor t = empty(shape, dtype, device);
  const size_t nbytes = t.numel() * dtype_size(dtype);
  if (device == Device::CUDA)
    cuda::detail::zero(t.raw_data(), nbytes);
  else
    std::memset(t.raw_data(), 0, nbytes);
  return t;
}

Tensor Tensor::ones(const Shape& shape, DType dtype) {
  return full(shape, 1.0, dtype);
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype) {
  Tensor t = empty(shape, dtype);
  t.fill_(value);
  return t;
}

Tensor Tensor::arange(int64_t n, DType dtype) {
  Tensor t = empty({n}, dtype);
  dispatch_all(dtype, [&](auto z) {
    using T = decltype(z);
    T* p = t.data<T>();
    for (int64_t i = 0; i < n; ++i) p[i] = static_cast<T>(i);
    return 0;
  });
  return t;
}

Tensor Tensor::from_vector(const std::vector<double>& values, const Shape& shape, DType dtype) {
  SSM_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
            "Tensor::from_vector: {} values do not fill shape {}", values.size(), shape_str(shape));
  Tensor t = empty(shape, dtype);
  dispatch_all(dtype, [&](auto z) {
    using T = decltype(z);
    T* p = t.data<T>();
    for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
    return 0;
  });
  return t;
}

// ---------------------------------------------------------------- metadata
int64_t Tensor::size(int64_t d) const {
  return shape()[wrap_dim(d, dim(), "Tensor::size")];
}
int64_t Tensor::stride(int64_t d) const {
  return strides()[wrap_dim(d, dim(), "Tensor::stride")];
}

bool Tensor::is_contiguous() const {
  int64_t acc = 1;
  for (int64_t i = dim() - 1; i >= 0; --i) {
    if (shape()[i] != 1 && strides()[i] != acc) return false;
    acc *= shape()[i];
  }
  return true;
}

// ---------------------------------------------------------------- element access
double Tensor::at(const std::vector<int64_t>& index) const {
  SSM_CHECK(static_cast<int64_t>(index.size()) == dim(), "Tensor::at: {} indices for a {}-d tensor",
            index.size(), dim());
  int64_t off = 0;
  for (int64_t i = 0; i < dim(); ++i) {
    SSM_CHECK(index[i] >= 0 && index[i] < shape()[i],
              "Tensor::at: index {} out of range for shape {}", index[i], shape_str(shape()));
    off += index[i] * strides()[i];
  }
  return dispatch_all(dtype(), [&](auto z) {
    using T = decltype(z);
    return static_cast<double>(data<T>()[off]);
  });
}

void Tensor::set(const std::vector<int64_t>& index, double value) {
  SSM_CHECK(static_cast<int64_t>(index.size()) == dim(),
            "Tensor::set: {} indices for a {}-d tensor", index.size(), dim());
  int64_t off = 0;
  for (int64_t i = 0; i < dim(); ++i) {
    SSM_CHECK(index[i] >= 0 && index[i] < shape()[i],
              "Tensor::set: index {} out of range for shape {}", index[i], shape_str(shape()));
    off += index[i] * strides()[i];
  }
  dispatch_all(dtype(), [&](auto z) {
    using T = decltype(z);
    data<T>()[off] = static_cast<T>(value);
    return 0;
  });
}

double Tensor::item() const {
  SSM_CHECK(numel() == 1, "Tensor::item: expected one element, got shape {}", shape_str(shape()));
  if (device() != Device::CPU) return detach().to(Device::CPU).item();
  return at(std::vector<int64_t>(dim(), 0));
}

std::vector<double> Tensor::to_vector() const {
  std::vector<double> out(numel());
  dispatch_all(dtype(), [&](auto z) {
    using T = decltype(z);
    detail::strided_copy(out.data(), shape(), contiguous_strides(shape()), data<T>(), strides());
    return 0;
  });
  return out;
}

std::string Tensor::to_string() const {
  std::ostringstream os;
  os << "Tensor" << shape_str(shape()) << " " << dtype_name(dtype()) << " [";
  auto v = to_vector();
  const size_t shown = std::min<size_t>(v.size(), 16);
  for (size_t i = 0; i < shown; ++i) os << (i ? ", " : "") << v[i];
  if (shown < v.size()) os << ", ...";
  os << "]";
  return os.str();
}

// ---------------------------------------------------------------- copies
void Tensor::copy_(const Tensor& src) {
  SSM_CHECK(src.shape() == shape(), "Tensor::copy_: source shape {} differs from destination {}",
            shape_str(src.shape()), shape_str(shape()));
  if (device() == Device::CUDA && src.device() == Device::CUDA && src.dtype() == dtype() &&
      !(src.is_contiguous() && is_contiguous())) {
    cuda::detail::copy_strided(raw_data(), strides().data(), src.raw_data(), src.strides().data(),
                               shape().data(), static_cast<int>(dim()),
                               static_cast<int>(dtype_size(dtype())));
    return;
  }
  if (device() == Device::CUDA || src.device() == Device::CUDA) {
    SSM_CHECK(src.dtype() == dtype() && src.is_contiguous() && is_contiguous(),
              "Tensor::copy_: copies on or to CUDA need one dtype and contiguous tensors, got {} "
              "{} {} -> {} {} {}",
              device_name(src.device()), dtype_name(src.dtype()),
              src.is_contiguous() ? "contiguous" : "strided", device_name(device()),
              dtype_name(dtype()), is_contiguous() ? "contiguous" : "strided");
    using cuda::detail::CopyKind;
    const CopyKind kind = src.device() == Device::CPU ? CopyKind::HostToDevice
                          : device() == Device::CPU   ? CopyKind::DeviceToHost
                                                      : CopyKind::DeviceToDevice;
    cuda::detail::copy(raw_data(), src.raw_data(), numel() * dtype_size(dtype()), kind);
    return;
  }
  if (src.dtype() == dtype() && src.is_contiguous() && is_contiguous()) {
    std::memmove(raw_data(), src.raw_data(), numel() * dtype_size(dtype()));
    return;
  }
  dispatch_all(dtype(), [&](auto zd) {
    using D = decltype(zd);
    return dispatch_all(src.dtype(), [&](auto zs) {
      using S = decltype(zs);
      detail::strided_copy(data<D>(), shape(), strides(), src.data<S>(), src.strides());
      return 0;
    });
  });
}

void Tensor::fill_(double value) {
  dispatch_all(dtype(), [&](auto z) {
    using T = decltype(z);
    if (is_contiguous()) {
      T* p = data<T>();
      for (int64_t i = 0, n = numel(); i < n; ++i) p[i] = static_cast<T>(value);
    } else {
      Tensor tmp = full(shape(), value, dtype());
      copy_(tmp);
    }
    return 0;
  });
}

Tensor Tensor::clone() const {
  Tensor out = empty(shape(), dtype(), device());
  out.copy_(*this);
  return record("clone", out, {*this},
                [](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0]}; });
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor out = empty(shape(), target);
  out.copy_(*this);
  const DType source = dtype();
  if (!is_floating(source) || !is_floating(target)) return out;
  return record("to", out, {*this}, [source](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{g[0].to(source)};
  });
}

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  const Tensor src = contiguous();  // on either side
  Tensor out = empty(shape(), dtype(), target);
  out.copy_(src);
  const Device source = device();
  return record("to", out, {*this}, [source](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{g[0].to(source)};
  });
}

// ---------------------------------------------------------------- views
Tensor Tensor::view(const Shape& new_shape_in) const {
  Shape new_shape = new_shape_in;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < new_shape.size(); ++i) {
    if (new_shape[i] == -1) {
      SSM_CHECK(infer < 0, "view: more than one -1 in shape {}", shape_str(new_shape_in));
      infer = static_cast<int64_t>(i);
    } else {
      known *= new_shape[i];
    }
  }
  if (infer >= 0) {
    SSM_CHECK(known > 0 && numel() % known == 0,
              "view: cannot infer -1 in shape {} for {} elements", shape_str(new_shape_in),
              numel());
    new_shape[infer] = numel() / known;
  }
  SSM_CHECK(shape_numel(new_shape) == numel(), "view: shape {} has {} elements, tensor {} has {}",
            shape_str(new_shape), shape_numel(new_shape), shape_str(shape()), numel());
  SSM_CHECK(is_contiguous(), "view: tensor of shape {} is not contiguous; use reshape",
            shape_str(shape()));
  Tensor out = make_view(*this, new_shape, contiguous_strides(new_shape), offset());
  const Shape in_shape = shape();
  return record("view", out, {*this}, [in_shape](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{g[0].reshape(in_shape)};
  });
}

Tensor Tensor::reshape(const Shape& new_shape) const {
  if (is_contiguous()) return view(new_shape);
  return contiguous().view(new_shape);
}

Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  SSM_CHECK(static_cast<int64_t>(dims.size()) == dim(), "permute: {} dims given for a {}-d tensor",
            dims.size(), dim());
  Shape ns(dim()), nst(dim());
  std::vector<int64_t> inverse(dim(), -1);
  for (int64_t i = 0; i < dim(); ++i) {
    int64_t d = wrap_dim(dims[i], dim(), "permute");
    SSM_CHECK(inverse[d] < 0, "permute: dimension {} repeated", d);
    inverse[d] = i;
    ns[i] = shape()[d];
    nst[i] = strides()[d];
  }
  Tensor out = make_view(*this, ns, nst, offset());
  return record("permute", out, {*this}, [inverse](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{g[0].permute(inverse)};
  });
}

Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  std::vector<int64_t> dims(dim());
  std::iota(dims.begin(), dims.end(), 0);
  std::swap(dims[wrap_dim(d0, dim(), "transpose")], dims[wrap_dim(d1, dim(), "transpose")]);
  return permute(dims);
}

Tensor Tensor::narrow(int64_t d, int64_t start, int64_t length) const {
  d = wrap_dim(d, dim(), "narrow");
  SSM_CHECK(start >= 0 && length >= 0 && start + length <= shape()[d],
            "narrow: range [{}, {}) out of bounds for dimension {} of size {}", start,
            start + length, d, shape()[d]);
  Shape ns = shape();
  ns[d] = length;
  Tensor out = make_view(*this, ns, strides(), offset() + start * strides()[d]);
  const Shape in_shape = shape();
  const DType dt = dtype();
  const Device dev = device();
  return record("narrow", out, {*this},
                [in_shape, dt, dev, d, start, length](const std::vector<Tensor>& g) {
                  Tensor gi = Tensor::zeros(in_shape, dt, dev);
                  gi.narrow(d, start, length).copy_(g[0]);
                  return std::vector<Tensor>{gi};
                });
}

Tensor Tensor::select(int64_t d, int64_t index) const {
  d = wrap_dim(d, dim(), "select");
  SSM_CHECK(index >= 0 && index < shape()[d],
            "select: index {} out of range for dimension {} of size {}", index, d, shape()[d]);
  return narrow(d, index, 1).squeeze(d);
}

Tensor Tensor::flip(int64_t d) const {
  d = wrap_dim(d, dim(), "flip");
  Shape nst = strides();
  nst[d] = -nst[d];
  const int64_t start = shape()[d] > 0 ? offset() + (shape()[d] - 1) * strides()[d] : offset();
  Tensor out = make_view(*this, shape(), nst, start);
  return record("flip", out, {*this},
                [d](const std::vector<Tensor>& g) { return std::vector<Tensor>{g[0].flip(d)}; });
}

Tensor Tensor::unsqueeze(int64_t d) const {
  d = wrap_dim(d, dim() + 1, "unsqueeze");
  Shape ns = shape();
  ns.insert(ns.begin() + d, 1);
  return reshape(ns);
}

Tensor Tensor::squeeze(int64_t d) const {
  d = wrap_dim(d, dim(), "squeeze");
  SSM_CHECK(shape()[d] == 1, "squeeze: dimension {} has size {}, expected 1", d, shape()[d]);
  Shape ns = shape(), nst = strides();
  ns.erase(ns.begin() + d);
  nst.erase(nst.begin() + d);
  Tensor out = make_view(*this, ns, nst, offset());
  const Shape in_shape = shape();
  return record("squeeze", out, {*this}, [in_shape](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{g[0].reshape(in_shape)};
  });
}

Tensor Tensor::expand(const Shape& target) const {
  SSM_CHECK(static_cast<int64_t>(target.size()) >= dim(), "expand: cannot expand shape {} to {}",
            shape_str(shape()), shape_str(target));
  const int64_t lead = static_cast<int64_t>(target.size()) - dim();
  Shape nst(target.size(), 0);
  for (int64_t i = 0; i < static_cast<int64_t>(target.size()); ++i) {
    if (i < lead) continue;
    const int64_t s = shape()[i - lead];
    SSM_CHECK(s == target[i] || s == 1, "expand: cannot expand shape {} to {}", shape_str(shape()),
              shape_str(target));
    nst[i] = (s == target[i]) ? strides()[i - lead] : 0;
  }
  Tensor out = make_view(*this, target, nst, offset());
  const Shape in_shape = shape();
  return record("expand", out, {*this}, [in_shape](const std::vector<Tensor>& g) {
    return std::vector<Tensor>{reduce_to_shape(g[0], in_shape)};
  });
}

// ---------------------------------------------------------------- autograd
Tensor& Tensor::requires_grad_(bool on) {
  SSM_CHECK(!on || is_floating(dtype()),
            "requires_grad_: only float tensors can require grad, got {}", dtype_name(dtype()));
  impl().requires_grad = on;
  return *this;
}

Tensor Tensor::grad() const {
  return impl().grad ? Tensor(impl().grad) : Tensor();
}

void Tensor::set_grad(const Tensor& g) {
  impl().grad = g.defined() ? g.impl_shared() : nullptr;
}

void Tensor::zero_grad() {
  impl().grad = nullptr;
}

Tensor Tensor::detach() const {
  return make_view(*this, shape(), strides(), offset());
}

void Tensor::backward(const Tensor& grad, bool retain_graph) const {
  Tensor seed = grad;
  if (!seed.defined()) {
    SSM_CHECK(numel() == 1, "backward: implicit gradient needs a scalar output, got shape {}",
              shape_str(shape()));
    seed = Tensor::ones(shape(), dtype());
  }
  run_backward({*this}, {seed}, retain_graph);
}

}  // namespace ssm
