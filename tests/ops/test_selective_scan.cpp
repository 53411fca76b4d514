// Selective scan (Mamba-1): the chunked CPU kernel against a plain float64 recurrence, the
// decode step, state hand-over, finite-difference gradients of every input, float32 vs
// float64, PyTorch autograd, and bad inputs.
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cpu/scan_math.h"
#include "ssm/autograd/gradcheck.h"
#include "ssm/autograd/node.h"
#include "ssm/core/rng.h"
#include "ssm/kernels/selective_scan.h"
#include "ssm/ops/selective_scan.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

struct Case {
  int64_t batch = 2, dim = 4, groups = 2, state = 3, len = 9;
  bool softplus = true, with_D = true, with_z = true, with_bias = true, with_h0 = true;
};

struct Inputs {
  Tensor u, delta, A, B, C, D, z, bias, h0;
  std::vector<Tensor> all() const { return {u, delta, A, B, C, D, z, bias, h0}; }
};

// Normal values passed through f, as float64.
Tensor draw(const Shape& shape, Generator& g, double (*f)(double)) {
  std::vector<double> v(shape_numel(shape));
  for (double& x : v) x = f(g.normal());
  return Tensor::from_vector(v, shape, DType::F64);
}

Inputs make_inputs(const Case& c, uint64_t seed) {
  Generator g(seed);
  auto normal = [](double x) { return x; };
  Inputs in;
  in.u = draw({c.batch, c.dim, c.len}, g, normal);
  // delta: around softplus⁻¹(0.3) with the flag, a positive step without it.
  in.delta = c.softplus ? draw({c.batch, c.dim, c.len}, g, [](double x) { return 0.5 * x - 1.0; })
                        : draw({c.batch, c.dim, c.len}, g,
                               [](double x) { return 0.05 + 0.3 * std::fabs(x); });
  in.A = draw({c.dim, c.state}, g, [](double x) { return -0.3 - std::fabs(x); });
  in.B = draw({c.batch, c.groups, c.state, c.len}, g, normal);
  in.C = draw({c.batch, c.groups, c.state, c.len}, g, normal);
  if (c.with_D) in.D = draw({c.dim}, g, normal);
  if (c.with_z) in.z = draw({c.batch, c.dim, c.len}, g, normal);
  if (c.with_bias) in.bias = draw({c.dim}, g, [](double x) { return 0.2 * x; });
  if (c.with_h0) in.h0 = draw({c.batch, c.dim, c.state}, g, normal);
  return in;
}

Tensor cast(const Tensor& t, DType dtype) {
  return t.defined() ? t.to(dtype) : Tensor();
}

Inputs cast_all(const Inputs& in, DType dtype) {
  return {cast(in.u, dtype), cast(in.delta, dtype), cast(in.A, dtype),
          cast(in.B, dtype), cast(in.C, dtype),     cast(in.D, dtype),
          cast(in.z, dtype), cast(in.bias, dtype),  cast(in.h0, dtype)};
}

SelectiveScanResult run_op(const std::vector<Tensor>& t, bool softplus, int64_t chunk) {
  return selective_scan(t[0], t[1], t[2], t[3], t[4],
                        {.D = t[5],
                         .z = t[6],
                         .delta_bias = t[7],
                         .initial_state = t[8],
                         .delta_softplus = softplus,
                         .chunk_size = chunk});
}

// The recurrence exactly as written in the paper, one scalar at a time, in float64.
std::pair<Tensor, Tensor> naive_scan(const Inputs& in, bool softplus) {
  const int64_t batch = in.u.size(0), dim = in.u.size(1), len = in.u.size(2);
  const int64_t groups = in.B.size(1), n_state = in.A.size(1);
  Tensor out = Tensor::zeros({batch, dim, len}, DType::F64);
  Tensor last = Tensor::zeros({batch, dim, n_state}, DType::F64);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t d = 0; d < dim; ++d) {
      const int64_t g = d / (dim / groups);
      std::vector<double> h(n_state, 0.0);
      if (in.h0.defined())
        for (int64_t n = 0; n < n_state; ++n) h[n] = in.h0.at({b, d, n});
      for (int64_t l = 0; l < len; ++l) {
        double dt = in.delta.at({b, d, l});
        if (in.bias.defined()) dt += in.bias.at({d});
        if (softplus) dt = std::log(1.0 + std::exp(dt));
        const double u = in.u.at({b, d, l});
        double y = 0;
        for (int64_t n = 0; n < n_state; ++n) {
          h[n] = std::exp(dt * in.A.at({d, n})) * h[n] + dt * in.B.at({b, g, n, l}) * u;
          y += in.C.at({b, g, n, l}) * h[n];
        }
        if (in.D.defined()) y += in.D.at({d}) * u;
        if (in.z.defined()) {
          const double z = in.z.at({b, d, l});
          y *= z / (1.0 + std::exp(-z));
        }
        out.set({b, d, l}, y);
      }
      for (int64_t n = 0; n < n_state; ++n) last.set({b, d, n}, h[n]);
    }
  }
  return {out, last};
}

// Test-local differentiable op: all tensors flattened and joined into one float64 vector,
// so gradcheck (one output) sees every output of the scan.
Tensor join_flat(const std::vector<Tensor>& parts) {
  std::vector<double> values;
  for (const Tensor& p : parts) {
    auto v = p.to_vector();
    values.insert(values.end(), v.begin(), v.end());
  }
  Tensor out = Tensor::from_vector(values, {static_cast<int64_t>(values.size())}, DType::F64);
  std::vector<Shape> shapes;
  std::vector<DType> dtypes;
  for (const Tensor& p : parts) {
    shapes.push_back(p.shape());
    dtypes.push_back(p.dtype());
  }
  return record("join_flat", out, parts, [shapes, dtypes](const std::vector<Tensor>& g) {
    std::vector<Tensor> grads;
    auto flat = g[0].to_vector();
    size_t offset = 0;
    for (size_t i = 0; i < shapes.size(); ++i) {
      const size_t n = shape_numel(shapes[i]);
      std::vector<double> part(flat.begin() + offset, flat.begin() + offset + n);
      grads.push_back(Tensor::from_vector(part, shapes[i], dtypes[i]));
      offset += n;
    }
    return grads;
  });
}

// Gradients of Σ w_out·out + Σ w_last·last for every defined input.
std::vector<Tensor> op_gradients(const Inputs& in_values, bool softplus, int64_t chunk,
                                 const Tensor& w_out, const Tensor& w_last) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : in_values.all())
    leaves.push_back(t.defined() ? t.clone().requires_grad_() : Tensor());
  auto r = run_op(leaves, softplus, chunk);
  join_flat({r.out, r.last_state})
      .backward(join_flat({w_out.to(r.out.dtype()), w_last.to(r.out.dtype())}).detach());
  std::vector<Tensor> grads;
  for (const Tensor& t : leaves) grads.push_back(t.defined() ? t.grad() : Tensor());
  return grads;
}

const char* kInputNames[] = {"u", "delta", "A", "B", "C", "D", "z", "delta_bias", "initial_state"};

}  // namespace

// ------------------------------------------------------------------ the vectorisable exp

TEST(SelectiveScanMath, VexpMatchesStdExp) {
  using kernels::cpu::detail::vexp;
  double worst_d = 0, worst_f = 0;
  for (double x = -700; x <= 700; x += 0.0137) {
    worst_d = std::max(worst_d, std::fabs(vexp(x) - std::exp(x)) / std::exp(x));
    if (x > -80 && x < 80) {
      const float xf = static_cast<float>(x);
      worst_f = std::max(worst_f, std::fabs(static_cast<double>(vexp(xf)) - std::exp(double(xf))) /
                                      std::exp(double(xf)));
    }
  }
  EXPECT_LT(worst_d, 4e-16);
  EXPECT_LT(worst_f, 2.5e-7);
  EXPECT_EQ(vexp(0.0), 1.0);
  EXPECT_EQ(vexp(-1000.0), 0.0);
  EXPECT_EQ(vexp(-200.0f), 0.0f);
  EXPECT_EQ(vexp(1000.0), std::numeric_limits<double>::infinity());
  EXPECT_TRUE(std::isnan(vexp(std::nan(""))));
}

TEST(SelectiveScanMath, SoftplusAndSigmoidMatchLibm) {
  using kernels::cpu::detail::vsigmoid;
  using kernels::cpu::detail::vsoftplus;
  double worst_sp_d = 0, worst_sp_f = 0, worst_sig_d = 0, worst_sig_f = 0;
  for (double x = -60; x <= 60; x += 0.00731) {
    const double sp = x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    const double sig = 1.0 / (1.0 + std::exp(-x));
    worst_sp_d = std::max(worst_sp_d, std::fabs(vsoftplus(x) - sp) / sp);
    worst_sig_d = std::max(worst_sig_d, std::fabs(vsigmoid(x) - sig) / sig);
    const float xf = static_cast<float>(x);
    const double spf =
        xf > 0 ? xf + std::log1p(std::exp(-double(xf))) : std::log1p(std::exp(double(xf)));
    const double sigf = 1.0 / (1.0 + std::exp(-double(xf)));
    worst_sp_f = std::max(worst_sp_f, std::fabs(vsoftplus(xf) - spf) / spf);
    worst_sig_f = std::max(worst_sig_f, std::fabs(vsigmoid(xf) - sigf) / sigf);
  }
  EXPECT_LT(worst_sp_d, 1e-15);
  EXPECT_LT(worst_sig_d, 1e-15);
  EXPECT_LT(worst_sp_f, 5e-7);
  EXPECT_LT(worst_sig_f, 5e-7);
  EXPECT_EQ(vsoftplus(1000.0), 1000.0);
  EXPECT_EQ(vsigmoid(-1000.0), 0.0);
  EXPECT_EQ(vsigmoid(1000.0f), 1.0f);
}

// ------------------------------------------------------------------ forward

TEST(SelectiveScan, ForwardMatchesNaiveRecurrence) {
  for (int64_t state : {3, 16}) {
    for (int64_t len : {1, 7, 64, 100, 300}) {
      Case c{.batch = 2, .dim = 4, .groups = 2, .state = state, .len = len};
      Inputs in = make_inputs(c, 100 + len + state);
      auto [out_ref, last_ref] = naive_scan(in, true);
      auto r = run_op(in.all(), true, 64);
      EXPECT_LT(rel_error(r.out, out_ref), 1e-12) << "N=" << state << " L=" << len;
      EXPECT_LT(rel_error(r.last_state, last_ref), 1e-12) << "N=" << state << " L=" << len;
    }
  }
}

TEST(SelectiveScan, ForwardWithoutOptionalInputs) {
  Case c{.batch = 3,
         .dim = 6,
         .groups = 3,
         .state = 8,
         .len = 37,
         .softplus = false,
         .with_D = false,
         .with_z = false,
         .with_bias = false,
         .with_h0 = false};
  Inputs in = make_inputs(c, 5);
  auto [out_ref, last_ref] = naive_scan(in, false);
  auto r = run_op(in.all(), false, 16);
  EXPECT_LT(rel_error(r.out, out_ref), 1e-12);
  EXPECT_LT(rel_error(r.last_state, last_ref), 1e-12);
}

TEST(SelectiveScan, DecaysOutsideTheExpRangeAreExact) {
  // Channel 0 decays through e^−2000 per step (beyond float and double exp range): the kernel
  // must switch to its range-checked exp for such chunks and still match the recurrence.
  Case c{.batch = 2, .dim = 4, .groups = 2, .state = 16, .len = 50};
  Inputs in = make_inputs(c, 9);
  for (int64_t n = 0; n < 16; n += 2) in.A.set({0, n}, -2000.0 / 0.3);
  in.A.set({1, 3}, 2.0);                                            // a growing mode
  for (int64_t l = 0; l < 50; ++l) in.delta.set({0, 1, l}, -30.0);  // dt ≈ 1e-13
  auto [out_ref, last_ref] = naive_scan(in, true);
  auto r64 = run_op(in.all(), true, 16);
  EXPECT_LT(rel_error(r64.out, out_ref), 1e-12);
  EXPECT_LT(rel_error(r64.last_state, last_ref), 1e-12);
  auto r32 = run_op(cast_all(in, DType::F32).all(), true, 16);
  EXPECT_LT(rel_error(r32.out, out_ref), 1e-5);
}

TEST(SelectiveScan, NaNInputsPropagate) {
  Case c{.batch = 1, .dim = 2, .groups = 1, .state = 16, .len = 20};
  Inputs in = make_inputs(c, 10);
  in.delta.set({0, 0, 5}, std::nan(""));
  auto r = run_op(in.all(), true, 8);
  EXPECT_TRUE(std::isnan(r.out.at({0, 0, 7})));
  EXPECT_TRUE(std::isnan(r.last_state.at({0, 0, 3})));
  EXPECT_TRUE(std::isfinite(r.out.at({0, 1, 7})));
}

TEST(SelectiveScan, StridedBAndCAreReadCorrectly) {
  // B, C as transposed views of (B, G, L, N) storage, as a linear layer would produce them.
  Case c{.batch = 2, .dim = 4, .groups = 1, .state = 5, .len = 21};
  Inputs in = make_inputs(c, 6);
  Tensor B_view = in.B.transpose(2, 3).contiguous().transpose(2, 3);
  Tensor C_view = in.C.transpose(2, 3).contiguous().transpose(2, 3);
  ASSERT_FALSE(B_view.is_contiguous());
  auto ref = run_op(in.all(), true, 8);
  Inputs strided = in;
  strided.B = B_view;
  strided.C = C_view;
  auto r = run_op(strided.all(), true, 8);
  EXPECT_EQ(rel_error(r.out, ref.out), 0.0);
}

TEST(SelectiveScan, ChunkSizeChangesNothing) {
  Case c{.batch = 2, .dim = 4, .groups = 2, .state = 16, .len = 100};
  Inputs in = make_inputs(c, 8);
  Generator g(9);
  Tensor w_out = randn({2, 4, 100}, DType::F64, &g), w_last = randn({2, 4, 16}, DType::F64, &g);
  auto r_ref = run_op(in.all(), true, 1000);
  auto grads_ref = op_gradients(in, true, 1000, w_out, w_last);
  for (int64_t chunk : {1, 7, 64, 100}) {
    auto r = run_op(in.all(), true, chunk);
    EXPECT_LT(rel_error(r.out, r_ref.out), 1e-13) << "chunk " << chunk;
    EXPECT_LT(rel_error(r.last_state, r_ref.last_state), 1e-13) << "chunk " << chunk;
    auto grads = op_gradients(in, true, chunk, w_out, w_last);
    for (size_t i = 0; i < grads.size(); ++i)
      EXPECT_LT(rel_error(grads[i], grads_ref[i]), 1e-12) << kInputNames[i] << " chunk " << chunk;
  }
}

TEST(SelectiveScan, KernelSavesTheStateEnteringEachChunk) {
  Case c{.batch = 1, .dim = 2, .groups = 1, .state = 4, .len = 10};
  Inputs in = make_inputs(c, 10);
  kernels::cpu::SelectiveScanInputs k{.u = in.u,
                                      .delta = in.delta,
                                      .A = in.A,
                                      .B = in.B,
                                      .C = in.C,
                                      .D = in.D,
                                      .z = in.z,
                                      .delta_bias = in.bias,
                                      .initial_state = in.h0,
                                      .delta_softplus = true,
                                      .chunk_size = 4};
  auto fwd = kernels::cpu::selective_scan_fwd(k);
  ASSERT_EQ(fwd.chunk_states.shape(), (Shape{1, 2, 3, 4}));
  // Chunk 0 starts from h0; chunk c starts from the final state of a run over the first 4c steps.
  EXPECT_EQ(rel_error(fwd.chunk_states.select(2, 0), in.h0), 0.0);
  for (int64_t c_idx : {1, 2}) {
    Inputs head = in;
    for (Tensor* t : {&head.u, &head.delta, &head.z}) *t = t->narrow(2, 0, 4 * c_idx);
    for (Tensor* t : {&head.B, &head.C}) *t = t->narrow(3, 0, 4 * c_idx);
    auto [out_ref, last_ref] = naive_scan(head, true);
    EXPECT_LT(rel_error(fwd.chunk_states.select(2, c_idx), last_ref), 1e-13);
  }
}

// ------------------------------------------------------------------ decode step and hand-over

TEST(SelectiveScan, StepByStepEqualsScan) {
  for (int64_t state : {3, 16}) {
    for (int64_t len : {1, 7, 64, 100, 300}) {
      Case c{.batch = 2, .dim = 6, .groups = 3, .state = state, .len = len};
      Inputs in = make_inputs(c, 11 + state + len);
      auto r = run_op(in.all(), true, 64);
      Tensor h = in.h0.clone();
      Tensor out = Tensor::empty({2, 6, len}, DType::F64);
      for (int64_t l = 0; l < len; ++l) {
        Tensor y = selective_state_update(h, in.u.select(2, l), in.delta.select(2, l), in.A,
                                          in.B.select(3, l), in.C.select(3, l), in.D,
                                          in.z.select(2, l), in.bias, true);
        out.narrow(2, l, 1).copy_(y.unsqueeze(2));
      }
      EXPECT_LT(rel_error(out, r.out), 1e-13) << "N=" << state << " L=" << len;
      EXPECT_LT(rel_error(h, r.last_state), 1e-13) << "N=" << state << " L=" << len;
    }
  }
}

TEST(SelectiveScan, TwoHalvesWithStateHandedOverEqualOneRun) {
  for (int64_t len : {7, 64, 100, 300}) {
    Case c{.batch = 2, .dim = 4, .groups = 2, .state = 16, .len = len};
    Inputs in = make_inputs(c, 12 + len);
    const int64_t first = len / 3 + 1;
    Generator g(13);
    Tensor w_out = randn({2, 4, len}, DType::F64, &g), w_last = randn({2, 4, 16}, DType::F64, &g);

    std::vector<Tensor> leaves;
    for (const Tensor& t : in.all()) leaves.push_back(t.clone().requires_grad_());
    auto whole = run_op(leaves, true, 32);
    join_flat({whole.out, whole.last_state}).backward(join_flat({w_out, w_last}).detach());
    std::vector<Tensor> whole_grads;
    for (Tensor& t : leaves) {
      whole_grads.push_back(t.grad());
      t.zero_grad();
    }

    auto part = [&](int64_t start, int64_t n, const Tensor& h0) {
      std::vector<Tensor> t = leaves;
      for (int i : {0, 1, 6}) t[i] = leaves[i].narrow(2, start, n);
      for (int i : {3, 4}) t[i] = leaves[i].narrow(3, start, n);
      t[8] = h0;
      return run_op(t, true, 32);
    };
    auto a = part(0, first, leaves[8]);
    auto b = part(first, len - first, a.last_state);
    join_flat({a.out, b.out, b.last_state})
        .backward(
            join_flat({w_out.narrow(2, 0, first), w_out.narrow(2, first, len - first), w_last})
                .detach());
    EXPECT_LT(rel_error(a.out, whole.out.narrow(2, 0, first)), 1e-13);
    EXPECT_LT(rel_error(b.out, whole.out.narrow(2, first, len - first)), 1e-13);
    EXPECT_LT(rel_error(b.last_state, whole.last_state), 1e-13);
    for (size_t i = 0; i < leaves.size(); ++i)
      EXPECT_LT(rel_error(leaves[i].grad(), whole_grads[i]), 1e-12)
          << kInputNames[i] << " L=" << len;
  }
}

// ------------------------------------------------------------------ gradients

TEST(SelectiveScan, GradcheckEveryInput) {
  for (bool softplus : {true, false}) {
    for (int64_t state : {3, 4}) {  // 4 takes the fixed-size path, 3 the runtime-size one
      Case c{.batch = 2, .dim = 4, .groups = 2, .state = state, .len = 9, .softplus = softplus};
      Inputs in = make_inputs(c, 20 + state + softplus);
      std::vector<Tensor> leaves;
      for (const Tensor& t : in.all()) leaves.push_back(t.clone().requires_grad_());
      auto fn = [softplus](const std::vector<Tensor>& t) {
        auto r = run_op(t, softplus, 4);  // 3 chunks, the last one partial
        return join_flat({r.out, r.last_state});
      };
      auto result = gradcheck(fn, leaves);
      EXPECT_TRUE(result.ok) << result.report;
      EXPECT_LT(result.worst_relative_error, 1e-6);
    }
  }
}

TEST(SelectiveScan, GradcheckWithoutOptionalInputsAndOneGroup) {
  Case c{.batch = 1,
         .dim = 3,
         .groups = 1,
         .state = 2,
         .len = 6,
         .softplus = false,
         .with_D = false,
         .with_z = false,
         .with_bias = false,
         .with_h0 = false};
  Inputs in = make_inputs(c, 21);
  std::vector<Tensor> leaves;
  for (const Tensor& t : in.all()) leaves.push_back(t.defined() ? t.clone().requires_grad_() : t);
  auto fn = [](const std::vector<Tensor>& t) {
    auto r = run_op(t, false, 5);
    return join_flat({r.out, r.last_state});
  };
  auto result = gradcheck(fn, leaves);
  EXPECT_TRUE(result.ok) << result.report;
}

TEST(SelectiveScan, GradientFlowsOnlyToInputsThatRequireIt) {
  Case c{};
  Inputs in = make_inputs(c, 22);
  Tensor u = in.u.clone().requires_grad_();
  auto r = selective_scan(u, in.delta, in.A, in.B, in.C, {.D = in.D, .delta_softplus = true});
  r.out.backward(Tensor::ones(r.out.shape(), DType::F64));
  EXPECT_TRUE(u.grad().defined());
  EXPECT_GT(rel_error(u.grad(), Tensor::zeros(u.shape(), DType::F64)), 0.5);
  EXPECT_FALSE(in.A.grad().defined());
  {
    NoGradGuard no_grad;
    auto r2 = selective_scan(u, in.delta, in.A, in.B, in.C);
    EXPECT_EQ(r2.out.grad_fn(), nullptr);
  }
}

TEST(SelectiveScan, Float32AgreesWithFloat64) {
  Case c{.batch = 2, .dim = 8, .groups = 2, .state = 16, .len = 300};
  Inputs in = make_inputs(c, 30);
  Generator g(31);
  Tensor w_out = randn({2, 8, 300}, DType::F64, &g), w_last = randn({2, 8, 16}, DType::F64, &g);
  auto r64 = run_op(in.all(), true, 64);
  auto r32 = run_op(cast_all(in, DType::F32).all(), true, 64);
  EXPECT_EQ(r32.out.dtype(), DType::F32);
  EXPECT_LT(rel_error(r32.out, r64.out), 1e-5);
  EXPECT_LT(rel_error(r32.last_state, r64.last_state), 1e-5);
  auto g64 = op_gradients(in, true, 64, w_out, w_last);
  auto g32 = op_gradients(cast_all(in, DType::F32), true, 64, w_out, w_last);
  for (size_t i = 0; i < g64.size(); ++i) {
    EXPECT_EQ(g32[i].dtype(), DType::F32);
    EXPECT_LT(rel_error(g32[i], g64[i]), 1e-5) << kInputNames[i];
  }
}

TEST(SelectiveScan, MatchesPyTorchAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  for (bool full : {true, false}) {
    Case c{.batch = 2,
           .dim = 4,
           .groups = 2,
           .state = 5,
           .len = 23,
           .softplus = full,
           .with_D = full,
           .with_z = full,
           .with_bias = full,
           .with_h0 = full};
    Inputs in = make_inputs(c, 40 + full);
    Generator g(41);
    Tensor w_out = randn({2, 4, 23}, DType::F64, &g), w_last = randn({2, 4, 5}, DType::F64, &g);
    std::map<std::string, Tensor> feed = {
        {"u", in.u},       {"delta", in.delta},
        {"A", in.A},       {"B", in.B},
        {"C", in.C},       {"dout", w_out},
        {"dlast", w_last}, {"delta_softplus", Tensor::scalar(full, DType::F64)}};
    const std::vector<Tensor> all = in.all();
    for (int i : {5, 6, 7, 8})
      if (all[i].defined()) feed[kInputNames[i]] = all[i];
    auto ref = ssm::testing::run_torch("selective_scan_ref.py", feed);
    auto r = run_op(all, full, 8);
    EXPECT_LT(rel_error(r.out, ref.at("out")), 1e-12);
    EXPECT_LT(rel_error(r.last_state, ref.at("last_state")), 1e-12);
    auto grads = op_gradients(in, full, 8, w_out, w_last);
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!all[i].defined()) continue;
      EXPECT_LT(rel_error(grads[i], ref.at(std::string("d_") + kInputNames[i])), 1e-11)
          << kInputNames[i];
    }
  }
}

// ------------------------------------------------------------------ bad inputs

TEST(SelectiveScan, RejectsBadInputs) {
  Case c{};
  Inputs in = make_inputs(c, 50);
  auto with = [&](int index, const Tensor& t) {
    std::vector<Tensor> v = in.all();
    v[index] = t;
    return v;
  };
  EXPECT_SSM_ERROR(run_op(with(1, in.delta.narrow(2, 0, 8)), true, 4), "selective_scan", "'delta'",
                   "(B, D, L)", "(2, 4, 9)", "(2, 4, 8)");
  EXPECT_SSM_ERROR(run_op(with(0, in.u.select(0, 0)), true, 4), "selective_scan", "'u'",
                   "(B, D, L)");
  EXPECT_SSM_ERROR(run_op(with(2, Tensor::zeros({3, 3}, DType::F64)), true, 4), "'A'", "(D, N)",
                   "(3, 3)");
  EXPECT_SSM_ERROR(run_op(with(3, in.B.narrow(2, 0, 2)), true, 4), "'B'", "(B, G, N, L)",
                   "(2, 2, 3, 9)", "(2, 2, 2, 9)");
  EXPECT_SSM_ERROR(run_op(with(4, in.C.narrow(1, 0, 1)), true, 4), "'C'", "(B, G, N, L)");
  EXPECT_SSM_ERROR(run_op(with(5, Tensor::zeros({5}, DType::F64)), true, 4), "'D'", "(D)");
  EXPECT_SSM_ERROR(run_op(with(6, in.z.narrow(0, 0, 1)), true, 4), "'z'", "(B, D, L)");
  EXPECT_SSM_ERROR(run_op(with(7, Tensor::zeros({2}, DType::F64)), true, 4), "'delta_bias'");
  EXPECT_SSM_ERROR(run_op(with(8, Tensor::zeros({2, 4, 4}, DType::F64)), true, 4),
                   "'initial_state'", "(B, D, N)");
  EXPECT_SSM_ERROR(run_op(with(1, in.delta.to(DType::F32)), true, 4), "'delta'", "float64",
                   "float32");
  // D = 4 channels cannot be split into G = 3 groups.
  Tensor B3 = Tensor::zeros({2, 3, 3, 9}, DType::F64);
  EXPECT_SSM_ERROR(run_op(with(3, B3), true, 4), "selective_scan", "'B'", "G = 3", "D = 4");
  EXPECT_SSM_ERROR(run_op(in.all(), true, 0), "selective_scan", "'chunk_size'", "0");
  EXPECT_SSM_ERROR(run_op(in.all(), true, -3), "'chunk_size'", "-3");
  Tensor ints = Tensor::zeros({2, 4, 9}, DType::I32);
  EXPECT_SSM_ERROR(run_op(with(0, ints), true, 4), "'u'", "float32 or float64");
}

TEST(SelectiveScan, StepRejectsBadInputs) {
  Tensor h = Tensor::zeros({2, 4, 3}, DType::F64);
  Tensor x = Tensor::zeros({2, 4}, DType::F64), A = Tensor::zeros({4, 3}, DType::F64);
  Tensor Bt = Tensor::zeros({2, 2, 3}, DType::F64);
  Tensor wrong_state = Tensor::zeros({2, 4, 5}, DType::F64);
  EXPECT_SSM_ERROR(selective_state_update(wrong_state, x, x, A, Bt, Bt), "selective_state_update",
                   "'state'", "(B, D, N)", "(2, 4, 5)");
  EXPECT_SSM_ERROR(selective_state_update(h, x, x.narrow(1, 0, 3), A, Bt, Bt), "'dt'", "(B, D)");
  EXPECT_SSM_ERROR(selective_state_update(h, x, x, A, Bt, Bt.narrow(2, 0, 2)), "'C'", "(B, G, N)");
  Tensor B3 = Tensor::zeros({2, 3, 3}, DType::F64);
  EXPECT_SSM_ERROR(selective_state_update(h, x, x, A, B3, B3), "'B'", "G = 3", "D = 4");
  Tensor h32 = Tensor::zeros({2, 4, 3}, DType::F32);
  EXPECT_SSM_ERROR(selective_state_update(h32, x, x, A, Bt, Bt), "'state'", "float64");
}

TEST(SelectiveScan, BackwardRejectsMismatchedGradients) {
  Case c{};
  Inputs in = make_inputs(c, 51);
  kernels::cpu::SelectiveScanInputs k{
      .u = in.u, .delta = in.delta, .A = in.A, .B = in.B, .C = in.C, .chunk_size = 4};
  auto fwd = kernels::cpu::selective_scan_fwd(k);
  EXPECT_SSM_ERROR(
      kernels::cpu::selective_scan_bwd(k, fwd.chunk_states, fwd.out.narrow(2, 0, 3), Tensor()),
      "selective_scan_bwd", "'dout'", "(B, D, L)");
  EXPECT_SSM_ERROR(
      kernels::cpu::selective_scan_bwd(k, fwd.chunk_states.narrow(2, 0, 1), fwd.out, Tensor()),
      "'chunk_states'");
}
