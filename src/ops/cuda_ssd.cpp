// ssd on CUDA tensors as an autograd op: kernels/cuda/ssd.cu forward (chunked algorithm), and
// its exact backward (which recomputes the chunk states) as the backward rule. The workspace is
// allocated per call from the caching allocator.
#include "ops/cuda_ssd.h"

#include "ssm/autograd/node.h"

#ifdef SSM_WITH_CUDA
#include "core/cuda/check.h"
#include "kernels/cuda/ssd.h"
#endif

namespace ssm {

#ifdef SSM_WITH_CUDA

namespace {

namespace kg = kernels::cuda;

template <typename T>
T* dev(const Tensor& t) {
  return t.defined() ? t.data_on<T>(Device::CUDA) : nullptr;
}

Tensor detached_contiguous(const Tensor& t) {
  return t.defined() ? t.detach().contiguous() : t;
}

Tensor device_empty(const Shape& shape, DType dtype) {
  return Tensor::empty(shape, dtype, Device::CUDA);
}

// The inputs the kernels read, detached and contiguous.
struct Saved {
  Tensor x, dt, A, B, C, D, initial_state;
  int64_t chunk = 128;
};

kg::SsdDims dims_of(const Saved& s) {
  kg::SsdDims d{};
  d.batch = s.x.size(0);
  d.len = s.x.size(1);
  d.heads = s.x.size(2);
  d.head_dim = s.x.size(3);
  d.groups = s.B.size(2);
  d.state = s.B.size(3);
  d.chunk = std::min(s.chunk, d.len);
  d.n_chunks = (d.len + d.chunk - 1) / d.chunk;
  return d;
}

// The forward workspace (Λ, C·Bᵀ, chunk states), shared by both passes.
struct Workspace {
  Tensor acum, cb, states;
};

template <typename T>
Workspace forward_workspace(kg::SsdDevice<T>& a, const kg::SsdDims& d, DType dtype) {
  Workspace w;
  w.acum = device_empty({d.batch, d.heads, d.len}, DType::F64);
  w.cb = device_empty({d.batch, d.groups, d.n_chunks, d.chunk, d.chunk}, dtype);
  w.states = device_empty({d.batch, d.n_chunks + 1, d.heads, d.head_dim, d.state}, dtype);
  a.acum = dev<double>(w.acum);
  a.cb = dev<T>(w.cb);
  a.states = dev<T>(w.states);
  return w;
}

template <typename T>
kg::SsdDevice<T> inputs_of(const Saved& s) {
  kg::SsdDevice<T> a{};
  a.d = dims_of(s);
  a.x = dev<T>(s.x);
  a.dt = dev<T>(s.dt);
  a.A = dev<T>(s.A);
  a.B = dev<T>(s.B);
  a.C = dev<T>(s.C);
  a.D = dev<T>(s.D);
  a.initial_state = dev<T>(s.initial_state);
  return a;
}

std::vector<Tensor> backward(const Saved& s, const Tensor& dy_in, const Tensor& dfinal_in) {
  const char* op = "ssd (backward)";
  const kg::SsdDims d = dims_of(s);
  const DType dtype = s.x.dtype();
  const Tensor dy = dy_in.to(Device::CUDA).contiguous();
  const Tensor dfinal = dfinal_in.defined() ? dfinal_in.to(Device::CUDA).contiguous() : Tensor();
  Tensor dx = device_empty(s.x.shape(), dtype), ddt = device_empty(s.dt.shape(), dtype);
  Tensor dA = device_empty(s.A.shape(), dtype), dB = device_empty(s.B.shape(), dtype);
  Tensor dC = device_empty(s.C.shape(), dtype);
  Tensor dD = s.D.defined() ? device_empty(s.D.shape(), dtype) : Tensor();
  Tensor dinit =
      s.initial_state.defined() ? device_empty(s.initial_state.shape(), dtype) : Tensor();
  Tensor final_state = device_empty({d.batch, d.heads, d.head_dim, d.state}, dtype);
  SSM_DISPATCH_FLOAT(dtype, op, [&] {
    using T = scalar_t;
    kg::SsdDevice<T> a = inputs_of<T>(s);
    const Workspace w = forward_workspace(a, d, dtype);
    const Tensor dstates = device_empty(w.states.shape(), dtype);
    const Tensor m = device_empty({d.batch, d.heads, d.n_chunks, d.chunk, d.chunk}, dtype);
    const Tensor c_state = device_empty({d.batch, d.len, d.heads, d.state}, dtype);
    const Tensor b_state = device_empty(c_state.shape(), dtype);
    const Tensor dxd = device_empty(s.x.shape(), dtype);
    const Tensor dtx = device_empty(s.dt.shape(), dtype), dyx = device_empty(s.dt.shape(), dtype);
    const Tensor dacum = device_empty(w.acum.shape(), DType::F64);
    const Tensor u = device_empty(w.acum.shape(), DType::F64);
    const Tensor da_part = device_empty({d.batch, d.n_chunks, d.heads}, DType::F64);
    a.dy = dev<T>(dy);
    a.dfinal_state = dev<T>(dfinal);
    a.final_state = dev<T>(final_state);
    a.dx = dev<T>(dx);
    a.ddt = dev<T>(ddt);
    a.dA = dev<T>(dA);
    a.dB = dev<T>(dB);
    a.dC = dev<T>(dC);
    a.dD = dev<T>(dD);
    a.dinitial_state = dev<T>(dinit);
    a.dstates = dev<T>(dstates);
    a.m = dev<T>(m);
    a.c_state = dev<T>(c_state);
    a.b_state = dev<T>(b_state);
    a.dxd = dev<T>(dxd);
    a.dtx = dev<T>(dtx);
    a.dyx = dev<T>(dyx);
    a.dacum = dev<double>(dacum);
    a.u = dev<double>(u);
    a.da_part = dev<double>(da_part);
    SSM_CUDA_CHECK(kg::ssd_bwd<T>(a, cuda::detail::stream()), op);
  });
  return {dx, ddt, dA, dB, dC, dD, dinit};
}

}  // namespace

SsdResult cuda_ssd(const Tensor& x, const Tensor& dt, const Tensor& A, const Tensor& B,
                   const Tensor& C, const SsdOptions& options) {
  const char* op = "ssd";
  for (const Tensor* t : {&dt, &A, &B, &C, &options.D, &options.initial_state})
    SSM_CHECK(!t->defined() || t->device() == Device::CUDA,
              "ssd: x is on CUDA but another argument is on {}", device_name(t->device()));
  Saved s{detached_contiguous(x),
          detached_contiguous(dt),
          detached_contiguous(A),
          detached_contiguous(B),
          detached_contiguous(C),
          detached_contiguous(options.D),
          detached_contiguous(options.initial_state),
          options.chunk_size};
  const kg::SsdDims d = dims_of(s);
  const DType dtype = x.dtype();
  Tensor y = device_empty(x.shape(), dtype);
  Tensor final_state = device_empty({d.batch, d.heads, d.head_dim, d.state}, dtype);
  SSM_DISPATCH_FLOAT(dtype, op, [&] {
    using T = scalar_t;
    kg::SsdDevice<T> a = inputs_of<T>(s);
    const Workspace w = forward_workspace(a, d, dtype);
    a.y = dev<T>(y);
    a.final_state = dev<T>(final_state);
    SSM_CUDA_CHECK(kg::ssd_fwd<T>(a, cuda::detail::stream()), op);
  });
  const std::vector<Tensor> inputs = {x, dt, A, B, C, options.D, options.initial_state};
  auto outs = record("ssd", {y, final_state}, inputs,
                     [s](const std::vector<Tensor>& g) { return backward(s, g[0], g[1]); });
  return {outs[0], outs[1]};
}

#else  // no CUDA backend

SsdResult cuda_ssd(const Tensor&, const Tensor&, const Tensor&, const Tensor&, const Tensor&,
                   const SsdOptions&) {
  SSM_FAIL("ssd: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}

#endif

}  // namespace ssm
