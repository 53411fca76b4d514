// Selective scan on CUDA, Tensor level: validates, allocates the outputs on the device and
// launches the kernels of selective_scan.cu on the library's stream.
#include "ssm/kernels/selective_scan.h"

#ifdef SSM_WITH_CUDA
#include "core/cuda/check.h"
#include "kernels/cuda/selective_scan_launch.h"
#endif

namespace ssm::kernels::cuda {

#ifdef SSM_WITH_CUDA

namespace {

template <typename T>
StridedIn<T> strided(const Tensor& t) {
  StridedIn<T> s;
  if (!t.defined()) return s;
  s.data = t.data_on<T>(Device::CUDA);
  const int64_t nd = t.dim();
  int64_t* out[4] = {&s.s0, &s.s1, &s.s2, &s.s3};
  for (int64_t i = 0; i < nd && i < 4; ++i) *out[i] = t.stride(i);
  return s;
}

int64_t chunk_count(int64_t len) {
  return (len + kScanChunk - 1) / kScanChunk;
}

void check_cuda_inputs(const cpu::SelectiveScanInputs& in, const char* op) {
  cpu::check_selective_scan_inputs(in, op);  // shapes, dtypes, one device for all
  SSM_CHECK(in.u.device() == Device::CUDA, "{}: the CUDA kernel got {} tensors", op,
            device_name(in.u.device()));
  SSM_CHECK(in.A.size(1) <= kScanMaxState, "{}: state size N = {} exceeds the CUDA limit of {}", op,
            in.A.size(1), kScanMaxState);
  SSM_CHECK(in.u.size(0) * in.u.size(1) < (int64_t{1} << 31),
            "{}: B·D = {} channels exceed the CUDA grid limit", op, in.u.size(0) * in.u.size(1));
}

template <typename T>
ScanArgs<T> make_args(const cpu::SelectiveScanInputs& in) {
  ScanArgs<T> a{};
  a.batch = in.u.size(0);
  a.dim = in.u.size(1);
  a.len = in.u.size(2);
  a.state = in.A.size(1);
  a.groups = in.B.size(1);
  a.n_chunks = chunk_count(a.len);
  a.u = strided<T>(in.u);
  a.delta = strided<T>(in.delta);
  a.z = strided<T>(in.z);
  a.A = strided<T>(in.A);
  a.B = strided<T>(in.B);
  a.C = strided<T>(in.C);
  a.skip = strided<T>(in.D);
  a.delta_bias = strided<T>(in.delta_bias);
  a.h0 = strided<T>(in.initial_state);
  a.softplus = in.delta_softplus;
  return a;
}

Tensor device_empty(const Shape& shape, DType dtype) {
  return Tensor::empty(shape, dtype, Device::CUDA);
}

// A gradient accumulated with atomics starts at zero.
Tensor device_zeros(const Shape& shape, DType dtype, const char* op) {
  Tensor t = device_empty(shape, dtype);
  SSM_CUDA_CHECK(cudaMemsetAsync(t.raw_data(), 0, t.numel() * dtype_size(dtype),
                                 ::ssm::cuda::detail::stream()),
                 op);
  return t;
}

template <typename T>
cpu::SelectiveScanForward forward_impl(const cpu::SelectiveScanInputs& in) {
  const ScanArgs<T> args = make_args<T>(in);
  const DType dt = in.u.dtype();
  cpu::SelectiveScanForward r;
  r.out = device_empty({args.batch, args.dim, args.len}, dt);
  r.last_state = device_empty({args.batch, args.dim, args.state}, dt);
  r.chunk_states = device_empty({args.batch, args.dim, args.n_chunks, args.state}, dt);
  ScanFwdOut<T> out{r.out.data_on<T>(Device::CUDA), r.last_state.data_on<T>(Device::CUDA),
                    r.chunk_states.data_on<T>(Device::CUDA)};
  SSM_CUDA_CHECK_LAUNCH(launch_selective_scan_fwd(args, out, ::ssm::cuda::detail::stream()),
                        "selective_scan_fwd", "selective_scan_fwd_kernel");
  return r;
}

template <typename T>
cpu::SelectiveScanGrads backward_impl(const cpu::SelectiveScanInputs& in,
                                      const Tensor& chunk_states, const Tensor& dout,
                                      const Tensor& dlast) {
  const char* op = "selective_scan_bwd";
  const ScanArgs<T> args = make_args<T>(in);
  const DType dt = in.u.dtype();
  const Shape bdl{args.batch, args.dim, args.len};
  cpu::SelectiveScanGrads g;
  g.du = device_empty(bdl, dt);
  g.ddelta = device_empty(bdl, dt);
  if (in.z.defined()) g.dz = device_empty(bdl, dt);
  g.dA = device_zeros({args.dim, args.state}, dt, op);
  g.dB = device_zeros({args.batch, args.groups, args.state, args.len}, dt, op);
  g.dC = device_zeros({args.batch, args.groups, args.state, args.len}, dt, op);
  if (in.D.defined()) g.dD = device_zeros({args.dim}, dt, op);
  if (in.delta_bias.defined()) g.ddelta_bias = device_zeros({args.dim}, dt, op);
  if (in.initial_state.defined())
    g.dinitial_state = device_empty({args.batch, args.dim, args.state}, dt);

  const Tensor saved = chunk_states.contiguous();
  auto ptr = [](const Tensor& t) { return t.defined() ? t.data_on<T>(Device::CUDA) : nullptr; };
  ScanBwdArgs<T> b{};
  b.chunk_states = ptr(saved);
  b.dout = strided<T>(dout);
  b.dlast = strided<T>(dlast);
  b.du = ptr(g.du);
  b.ddelta = ptr(g.ddelta);
  b.dz = ptr(g.dz);
  b.dA = ptr(g.dA);
  b.dB = ptr(g.dB);
  b.dC = ptr(g.dC);
  b.dskip = ptr(g.dD);
  b.ddelta_bias = ptr(g.ddelta_bias);
  b.dh0 = ptr(g.dinitial_state);
  SSM_CUDA_CHECK_LAUNCH(launch_selective_scan_bwd(args, b, ::ssm::cuda::detail::stream()), op,
                        "selective_scan_bwd_kernel");
  return g;
}

void expect_on_cuda(const Tensor& t, const Shape& shape, const Tensor& u, const char* op,
                    const char* arg, const char* layout) {
  SSM_CHECK(t.shape() == shape, "{}: argument '{}' expected shape {} = {}, got {}", op, arg, layout,
            shape_str(shape), shape_str(t.shape()));
  SSM_CHECK(t.dtype() == u.dtype() && t.device() == Device::CUDA,
            "{}: argument '{}' expected a cuda {} tensor, got {} {}", op, arg,
            dtype_name(u.dtype()), device_name(t.device()), dtype_name(t.dtype()));
}

}  // namespace

cpu::SelectiveScanForward selective_scan_fwd(const cpu::SelectiveScanInputs& in) {
  check_cuda_inputs(in, "selective_scan_fwd");
  return SSM_DISPATCH_FLOAT(in.u.dtype(), "selective_scan_fwd",
                            [&] { return forward_impl<scalar_t>(in); });
}

cpu::SelectiveScanGrads selective_scan_bwd(const cpu::SelectiveScanInputs& in,
                                           const Tensor& chunk_states, const Tensor& dout,
                                           const Tensor& dlast_state) {
  const char* op = "selective_scan_bwd";
  check_cuda_inputs(in, op);
  const int64_t batch = in.u.size(0), dim = in.u.size(1), len = in.u.size(2);
  const int64_t n_state = in.A.size(1);
  SSM_CHECK(dout.defined() && chunk_states.defined(),
            "{}: arguments 'dout' and 'chunk_states' are required", op);
  expect_on_cuda(dout, {batch, dim, len}, in.u, op, "dout", "(B, D, L)");
  expect_on_cuda(chunk_states, {batch, dim, chunk_count(len), n_state}, in.u, op, "chunk_states",
                 "(B, D, ceil(L / 1024), N)");
  if (dlast_state.defined())
    expect_on_cuda(dlast_state, {batch, dim, n_state}, in.u, op, "dlast_state", "(B, D, N)");
  return SSM_DISPATCH_FLOAT(in.u.dtype(), op, [&] {
    return backward_impl<scalar_t>(in, chunk_states, dout, dlast_state);
  });
}

Tensor selective_state_update(Tensor& state, const cpu::SelectiveStepInputs& in) {
  const char* op = "selective_state_update";
  cpu::check_selective_step_inputs(state, in, op);
  SSM_CHECK(in.x.device() == Device::CUDA, "{}: the CUDA kernel got {} tensors", op,
            device_name(in.x.device()));
  return SSM_DISPATCH_FLOAT(in.x.dtype(), op, [&] {
    using T = scalar_t;
    StepArgs<T> a{};
    a.batch = in.x.size(0);
    a.dim = in.x.size(1);
    a.state = in.A.size(1);
    a.groups = in.B.size(1);
    Tensor y = device_empty({a.batch, a.dim}, in.x.dtype());
    a.h = state.data_on<T>(Device::CUDA);
    a.y = y.data_on<T>(Device::CUDA);
    a.x = strided<T>(in.x);
    a.dt = strided<T>(in.dt);
    a.z = strided<T>(in.z);
    a.A = strided<T>(in.A);
    a.B = strided<T>(in.B);
    a.C = strided<T>(in.C);
    a.skip = strided<T>(in.D);
    a.dt_bias = strided<T>(in.dt_bias);
    a.softplus = in.dt_softplus;
    SSM_CUDA_CHECK_LAUNCH(launch_selective_state_update(a, ::ssm::cuda::detail::stream()), op,
                          "selective_state_update_kernel");
    return y;
  });
}

#else  // no CUDA backend

cpu::SelectiveScanForward selective_scan_fwd(const cpu::SelectiveScanInputs&) {
  SSM_FAIL("selective_scan_fwd: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}

cpu::SelectiveScanGrads selective_scan_bwd(const cpu::SelectiveScanInputs&, const Tensor&,
                                           const Tensor&, const Tensor&) {
  SSM_FAIL("selective_scan_bwd: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}

Tensor selective_state_update(Tensor&, const cpu::SelectiveStepInputs&) {
  SSM_FAIL("selective_state_update: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}

#endif

}  // namespace ssm::kernels::cuda
