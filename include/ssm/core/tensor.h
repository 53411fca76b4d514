#pragma once
// Tensor: a strided view (shape, strides, offset) over shared, 64-byte-aligned storage,
// plus the autograd slot (requires_grad, grad, grad_fn). Copying a Tensor copies a handle.
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "ssm/core/dtype.h"
#include "ssm/core/error.h"

namespace ssm {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "(2, 3, 4)"
int64_t shape_numel(const Shape& s);
Shape contiguous_strides(const Shape& s);

struct Storage {
  void* data = nullptr;
  size_t nbytes = 0;
  Device device = Device::CPU;
  Storage(size_t nbytes, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct Node;
class Tensor;

struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape, strides;
  int64_t offset = 0;  // in elements
  DType dtype = DType::F32;
  bool requires_grad = false;
  std::shared_ptr<TensorImpl> grad;  // accumulated gradient (leaves only)
  std::shared_ptr<Node> grad_fn;     // the op that produced this tensor (non-leaves)
  int output_nr = 0;                 // which output of grad_fn this is
};

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- factories (CPU) ----
  static Tensor empty(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor zeros(const Shape& shape, DType dtype = DType::F32, Device device = Device::CPU);
  static Tensor ones(const Shape& shape, DType dtype = DType::F32);
  static Tensor full(const Shape& shape, double value, DType dtype = DType::F32);
  static Tensor scalar(double value, DType dtype = DType::F32) { return full({}, value, dtype); }
  static Tensor arange(int64_t n, DType dtype = DType::F32);
  // Copies `values` (converted to dtype) into a new tensor of `shape`.
  static Tensor from_vector(const std::vector<double>& values, const Shape& shape,
                            DType dtype = DType::F32);
  template <typename T>
  static Tensor from_data(const std::vector<T>& values, const Shape& shape) {
    SSM_CHECK(static_cast<int64_t>(values.size()) == shape_numel(shape),
              "Tensor::from_data: {} values do not fill shape {}", values.size(), shape_str(shape));
    Tensor t = empty(shape, dtype_of<T>::value);
    std::copy(values.begin(), values.end(), t.data<T>());
    return t;
  }

  // ---- metadata ----
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  const Shape& strides() const { return impl().strides; }
  int64_t dim() const { return static_cast<int64_t>(impl().shape.size()); }
  int64_t size(int64_t d) const;  // negative d counts from the end
  int64_t stride(int64_t d) const;
  int64_t numel() const { return shape_numel(impl().shape); }
  int64_t offset() const { return impl().offset; }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device; }
  bool is_contiguous() const;
  const std::shared_ptr<Storage>& storage() const { return impl().storage; }
  TensorImpl* impl_ptr() const { return impl_.get(); }
  const std::shared_ptr<TensorImpl>& impl_shared() const { return impl_; }

  // Pointer to the first element (storage + offset) of a CPU tensor. Checks the element type,
  // and that the memory is host memory (a CPU code path handed a CUDA tensor fails here).
  template <typename T>
  T* data() const {
    SSM_CHECK(dtype() == dtype_of<T>::value, "Tensor::data: tensor is {}, accessed as {}",
              dtype_name(dtype()), dtype_name(dtype_of<T>::value));
    SSM_CHECK(device() == Device::CPU,
              "Tensor::data: a {} tensor {} was read by CPU code (this op has no CUDA kernel "
              "yet; move the tensor with .to(Device::CPU))",
              device_name(device()), shape_str(shape()));
    return static_cast<T*>(impl().storage->data) + impl().offset;
  }
  // The same pointer for a tensor on `device` (kernels of that backend).
  template <typename T>
  T* data_on(Device device) const {
    SSM_CHECK(dtype() == dtype_of<T>::value, "Tensor::data_on: tensor is {}, accessed as {}",
              dtype_name(dtype()), dtype_name(dtype_of<T>::value));
    SSM_CHECK(this->device() == device, "Tensor::data_on: tensor lives on {}, expected {}",
              device_name(this->device()), device_name(device));
    return static_cast<T*>(impl().storage->data) + impl().offset;
  }
  void* raw_data() const {
    return static_cast<char*>(impl().storage->data) + impl().offset * dtype_size(dtype());
  }

  // ---- element access (slow; for tests and debugging) ----
  double item() const;
  double at(const std::vector<int64_t>& index) const;
  void set(const std::vector<int64_t>& index, double value);
  std::vector<double> to_vector() const;  // row-major values converted to double
  std::string to_string() const;

  // ---- views (differentiable; share storage) ----
  Tensor reshape(const Shape& shape) const;  // a view when possible, else a copy
  Tensor view(const Shape& shape) const;     // a view; throws when strides forbid it
  Tensor transpose(int64_t d0, int64_t d1) const;
  Tensor permute(const std::vector<int64_t>& dims) const;
  Tensor narrow(int64_t dim, int64_t start, int64_t length) const;
  Tensor select(int64_t dim, int64_t index) const;  // narrow + squeeze
  Tensor expand(const Shape& shape) const;          // size-1 dims broadcast with stride 0
  Tensor unsqueeze(int64_t dim) const;
  Tensor squeeze(int64_t dim) const;
  Tensor flip(int64_t dim) const;  // reversed along dim (negative stride)
  Tensor flatten() const { return reshape({numel()}); }

  // ---- copies ----
  Tensor contiguous() const;     // itself when already contiguous; differentiable
  Tensor clone() const;          // always a fresh contiguous copy; differentiable
  Tensor to(DType dtype) const;  // differentiable between float types
  // A contiguous copy on `device` (itself when already there); differentiable.
  Tensor to(Device device) const;
  // Copies src (same shape, any strides/dtype) into this tensor's memory. Not tracked.
  // Across or on CUDA: same dtype, both contiguous.
  void copy_(const Tensor& src);
  void fill_(double value);  // not tracked

  // ---- autograd ----
  bool requires_grad() const { return impl().requires_grad; }
  Tensor& requires_grad_(bool on = true);
  Tensor grad() const;  // undefined when no gradient was accumulated
  void set_grad(const Tensor& g);
  void zero_grad();
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  Tensor detach() const;  // shares storage, no history
  // Accumulates d(this)/d(leaf) into every leaf's grad. `grad` defaults to 1 for a scalar.
  void backward(const Tensor& grad = Tensor(), bool retain_graph = false) const;

 private:
  TensorImpl& impl() const {
    SSM_CHECK(impl_ != nullptr, "Tensor: use of an undefined tensor");
    return *impl_;
  }
  std::shared_ptr<TensorImpl> impl_;
};

// Normalises a possibly negative dimension index; `what` names the caller in errors.
int64_t wrap_dim(int64_t d, int64_t ndim, const char* what);

}  // namespace ssm
