// SSD (Mamba-2): chunked == sequential == step-by-step == a plain float64 recurrence, state
// hand-over, finite-difference gradients of every input, float32 vs float64, PyTorch
// autograd, and bad inputs.
#include <cmath>
#include <vector>

#include "ssm/autograd/gradcheck.h"
#include "ssm/autograd/node.h"
#include "ssm/core/rng.h"
#include "ssm/kernels/ssd.h"
#include "ssm/ops/ssd.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

struct Case {
  int64_t batch = 2, len = 11, heads = 4, head_dim = 3, groups = 2, state = 5;
  bool with_D = true, with_h0 = true;
};

struct Inputs {
  Tensor x, dt, A, B, C, D, h0;
  std::vector<Tensor> all() const { return {x, dt, A, B, C, D, h0}; }
};

const char* kInputNames[] = {"x", "dt", "A", "B", "C", "D", "initial_state"};

Tensor draw(const Shape& shape, Generator& g, double (*f)(double)) {
  std::vector<double> v(shape_numel(shape));
  for (double& x : v) x = f(g.normal());
  return Tensor::from_vector(v, shape, DType::F64);
}

Inputs make_inputs(const Case& c, uint64_t seed) {
  Generator g(seed);
  auto normal = [](double x) { return x; };
  Inputs in;
  in.x = draw({c.batch, c.len, c.heads, c.head_dim}, g, normal);
  in.dt = draw({c.batch, c.len, c.heads}, g, [](double x) { return 0.05 + 0.2 * std::fabs(x); });
  in.A = draw({c.heads}, g, [](double x) { return -0.5 - std::fabs(x); });
  in.B = draw({c.batch, c.len, c.groups, c.state}, g, normal);
  in.C = draw({c.batch, c.len, c.groups, c.state}, g, normal);
  if (c.with_D) in.D = draw({c.heads}, g, normal);
  if (c.with_h0) in.h0 = draw({c.batch, c.heads, c.head_dim, c.state}, g, normal);
  return in;
}

Tensor cast(const Tensor& t, DType dtype) {
  return t.defined() ? t.to(dtype) : Tensor();
}

Inputs cast_all(const Inputs& in, DType dtype) {
  return {cast(in.x, dtype), cast(in.dt, dtype), cast(in.A, dtype), cast(in.B, dtype),
          cast(in.C, dtype), cast(in.D, dtype),  cast(in.h0, dtype)};
}

kernels::cpu::SsdInputs kernel_inputs(const Inputs& in, int64_t chunk) {
  return {.x = in.x,
          .dt = in.dt,
          .A = in.A,
          .B = in.B,
          .C = in.C,
          .D = in.D,
          .initial_state = in.h0,
          .chunk_size = chunk};
}

SsdResult run_op(const std::vector<Tensor>& t, int64_t chunk) {
  return ssd(t[0], t[1], t[2], t[3], t[4], {.D = t[5], .initial_state = t[6], .chunk_size = chunk});
}

// The recurrence one scalar at a time, in float64.
std::pair<Tensor, Tensor> naive_ssd(const Inputs& in) {
  const int64_t batch = in.x.size(0), len = in.x.size(1), heads = in.x.size(2);
  const int64_t head_dim = in.x.size(3), groups = in.B.size(2), n_state = in.B.size(3);
  Tensor y = Tensor::zeros({batch, len, heads, head_dim}, DType::F64);
  Tensor final_state = Tensor::zeros({batch, heads, head_dim, n_state}, DType::F64);
  for (int64_t b = 0; b < batch; ++b) {
    for (int64_t h = 0; h < heads; ++h) {
      const int64_t g = h / (heads / groups);
      std::vector<double> S(head_dim * n_state, 0.0);
      if (in.h0.defined())
        for (int64_t p = 0; p < head_dim; ++p)
          for (int64_t n = 0; n < n_state; ++n) S[p * n_state + n] = in.h0.at({b, h, p, n});
      for (int64_t l = 0; l < len; ++l) {
        const double dt = in.dt.at({b, l, h});
        const double decay = std::exp(dt * in.A.at({h}));
        for (int64_t p = 0; p < head_dim; ++p) {
          const double x = in.x.at({b, l, h, p});
          double out = 0;
          for (int64_t n = 0; n < n_state; ++n) {
            double& s = S[p * n_state + n];
            s = decay * s + dt * x * in.B.at({b, l, g, n});
            out += s * in.C.at({b, l, g, n});
          }
          if (in.D.defined()) out += in.D.at({h}) * x;
          y.set({b, l, h, p}, out);
        }
      }
      for (int64_t p = 0; p < head_dim; ++p)
        for (int64_t n = 0; n < n_state; ++n) final_state.set({b, h, p, n}, S[p * n_state + n]);
    }
  }
  return {y, final_state};
}

// Test-local differentiable op: the tensors flattened and joined into one float64 vector.
Tensor join_flat(const std::vector<Tensor>& parts) {
  std::vector<double> values;
  std::vector<Shape> shapes;
  std::vector<DType> dtypes;
  for (const Tensor& p : parts) {
    auto v = p.to_vector();
    values.insert(values.end(), v.begin(), v.end());
    shapes.push_back(p.shape());
    dtypes.push_back(p.dtype());
  }
  Tensor out = Tensor::from_vector(values, {static_cast<int64_t>(values.size())}, DType::F64);
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

std::vector<Tensor> op_gradients(const Inputs& in_values, int64_t chunk, const Tensor& w_y,
                                 const Tensor& w_final) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : in_values.all())
    leaves.push_back(t.defined() ? t.clone().requires_grad_() : Tensor());
  auto r = run_op(leaves, chunk);
  join_flat({r.y, r.final_state})
      .backward(join_flat({w_y.to(r.y.dtype()), w_final.to(r.y.dtype())}).detach());
  std::vector<Tensor> grads;
  for (const Tensor& t : leaves) grads.push_back(t.defined() ? t.grad() : Tensor());
  return grads;
}

}  // namespace

// ------------------------------------------------------------------ forward

TEST(Ssd, ChunkedSequentialAndNaiveAgree) {
  for (int64_t len : {1, 7, 64, 100, 300}) {
    Case c{.batch = 2, .len = len, .heads = 4, .head_dim = 3, .groups = 2, .state = 5};
    Inputs in = make_inputs(c, 100 + len);
    auto [y_ref, final_ref] = naive_ssd(in);
    auto seq = kernels::cpu::ssd_sequential(kernel_inputs(in, 16));
    EXPECT_LT(rel_error(seq.y, y_ref), 1e-13) << "L=" << len;
    EXPECT_LT(rel_error(seq.final_state, final_ref), 1e-13) << "L=" << len;
    for (int64_t chunk : {1, 16, 64}) {
      auto chunked = kernels::cpu::ssd_chunked_fwd(kernel_inputs(in, chunk));
      EXPECT_LT(rel_error(chunked.y, y_ref), 1e-12) << "L=" << len << " Q=" << chunk;
      EXPECT_LT(rel_error(chunked.final_state, final_ref), 1e-12) << "L=" << len << " Q=" << chunk;
    }
  }
}

TEST(Ssd, WithoutOptionalInputsAndOneGroup) {
  Case c{.batch = 3,
         .len = 45,
         .heads = 3,
         .head_dim = 4,
         .groups = 1,
         .state = 8,
         .with_D = false,
         .with_h0 = false};
  Inputs in = make_inputs(c, 5);
  auto [y_ref, final_ref] = naive_ssd(in);
  auto r = run_op(in.all(), 16);
  EXPECT_LT(rel_error(r.y, y_ref), 1e-12);
  EXPECT_LT(rel_error(r.final_state, final_ref), 1e-12);
  auto seq = kernels::cpu::ssd_sequential(kernel_inputs(in, 16));
  EXPECT_LT(rel_error(seq.y, y_ref), 1e-13);
}

TEST(Ssd, MambaSizedHeadsAndStates) {
  // P = 64, N = 32, 8 heads in 1 group: exercises the GEMM paths with realistic strides.
  Case c{.batch = 1, .len = 150, .heads = 8, .head_dim = 64, .groups = 1, .state = 32};
  Inputs in = make_inputs(c, 6);
  auto seq = kernels::cpu::ssd_sequential(kernel_inputs(in, 64));
  auto chunked = kernels::cpu::ssd_chunked_fwd(kernel_inputs(in, 64));
  EXPECT_LT(rel_error(chunked.y, seq.y), 1e-12);
  EXPECT_LT(rel_error(chunked.final_state, seq.final_state), 1e-12);
}

TEST(Ssd, StridedInputsAreReadCorrectly) {
  Case c{};
  Inputs in = make_inputs(c, 7);
  auto ref = run_op(in.all(), 4);
  Inputs strided = in;
  // x as a view of (B, H, L, P) storage.
  strided.x = in.x.transpose(1, 2).contiguous().transpose(1, 2);
  strided.B = in.B.transpose(1, 2).contiguous().transpose(1, 2);
  ASSERT_FALSE(strided.x.is_contiguous());
  auto r = run_op(strided.all(), 4);
  EXPECT_EQ(rel_error(r.y, ref.y), 0.0);
}

// ------------------------------------------------------------------ decode step and hand-over

TEST(Ssd, StepByStepEqualsScan) {
  for (int64_t len : {1, 7, 64, 100, 300}) {
    Case c{.batch = 2, .len = len, .heads = 4, .head_dim = 3, .groups = 2, .state = 5};
    Inputs in = make_inputs(c, 11 + len);
    auto r = run_op(in.all(), 16);
    Tensor S = in.h0.clone();
    Tensor y = Tensor::empty(in.x.shape(), DType::F64);
    for (int64_t l = 0; l < c.len; ++l) {
      Tensor y_l = ssd_state_update(S, in.x.select(1, l), in.dt.select(1, l), in.A,
                                    in.B.select(1, l), in.C.select(1, l), in.D);
      y.narrow(1, l, 1).copy_(y_l.unsqueeze(1));
    }
    EXPECT_LT(rel_error(y, r.y), 1e-12) << "L=" << len;
    EXPECT_LT(rel_error(S, r.final_state), 1e-12) << "L=" << len;
  }
}

TEST(Ssd, TwoHalvesWithStateHandedOverEqualOneRun) {
  for (int64_t len : {7, 64, 100, 300}) {
    Case c{.batch = 2, .len = len, .heads = 4, .head_dim = 3, .groups = 2, .state = 5};
    Inputs in = make_inputs(c, 12 + len);
    const int64_t first = len / 3 + 1;
    Generator g(13);
    Tensor w_y = randn(in.x.shape(), DType::F64, &g);
    Tensor w_final = randn(in.h0.shape(), DType::F64, &g);

    std::vector<Tensor> leaves;
    for (const Tensor& t : in.all()) leaves.push_back(t.clone().requires_grad_());
    auto whole = run_op(leaves, 16);
    join_flat({whole.y, whole.final_state}).backward(join_flat({w_y, w_final}).detach());
    std::vector<Tensor> whole_grads;
    for (Tensor& t : leaves) {
      whole_grads.push_back(t.grad());
      t.zero_grad();
    }

    auto part = [&](int64_t start, int64_t n, const Tensor& h0) {
      std::vector<Tensor> t = leaves;
      for (int i : {0, 1, 3, 4}) t[i] = leaves[i].narrow(1, start, n);
      t[6] = h0;
      return run_op(t, 16);
    };
    auto a = part(0, first, leaves[6]);
    auto b = part(first, len - first, a.final_state);
    join_flat({a.y, b.y, b.final_state})
        .backward(join_flat({w_y.narrow(1, 0, first), w_y.narrow(1, first, len - first), w_final})
                      .detach());
    EXPECT_LT(rel_error(a.y, whole.y.narrow(1, 0, first)), 1e-12);
    EXPECT_LT(rel_error(b.y, whole.y.narrow(1, first, len - first)), 1e-12);
    EXPECT_LT(rel_error(b.final_state, whole.final_state), 1e-12);
    for (size_t i = 0; i < leaves.size(); ++i)
      EXPECT_LT(rel_error(leaves[i].grad(), whole_grads[i]), 1e-11)
          << kInputNames[i] << " L=" << len;
  }
}

// ------------------------------------------------------------------ gradients

TEST(Ssd, GradcheckEveryInput) {
  for (int64_t chunk : {4, 16}) {  // 3 chunks with a partial last one; one chunk
    Case c{};
    Inputs in = make_inputs(c, 20 + chunk);
    std::vector<Tensor> leaves;
    for (const Tensor& t : in.all()) leaves.push_back(t.clone().requires_grad_());
    auto fn = [chunk](const std::vector<Tensor>& t) {
      auto r = run_op(t, chunk);
      return join_flat({r.y, r.final_state});
    };
    auto result = gradcheck(fn, leaves);
    EXPECT_TRUE(result.ok) << result.report;
    EXPECT_LT(result.worst_relative_error, 1e-6);
  }
}

TEST(Ssd, GradcheckWithoutOptionalInputs) {
  Case c{.batch = 1,
         .len = 9,
         .heads = 2,
         .head_dim = 2,
         .groups = 1,
         .state = 3,
         .with_D = false,
         .with_h0 = false};
  Inputs in = make_inputs(c, 21);
  std::vector<Tensor> leaves;
  for (const Tensor& t : in.all()) leaves.push_back(t.defined() ? t.clone().requires_grad_() : t);
  auto fn = [](const std::vector<Tensor>& t) {
    auto r = run_op(t, 4);
    return join_flat({r.y, r.final_state});
  };
  auto result = gradcheck(fn, leaves);
  EXPECT_TRUE(result.ok) << result.report;
}

TEST(Ssd, ChunkSizeDoesNotChangeGradients) {
  Case c{.batch = 2, .len = 100, .heads = 4, .head_dim = 3, .groups = 2, .state = 5};
  Inputs in = make_inputs(c, 22);
  Generator g(23);
  Tensor w_y = randn(in.x.shape(), DType::F64, &g), w_final = randn(in.h0.shape(), DType::F64, &g);
  auto ref = op_gradients(in, 1000, w_y, w_final);
  for (int64_t chunk : {1, 7, 64}) {
    auto grads = op_gradients(in, chunk, w_y, w_final);
    for (size_t i = 0; i < grads.size(); ++i)
      EXPECT_LT(rel_error(grads[i], ref[i]), 1e-11) << kInputNames[i] << " Q=" << chunk;
  }
}

TEST(Ssd, Float32AgreesWithFloat64) {
  Case c{.batch = 2, .len = 300, .heads = 4, .head_dim = 16, .groups = 2, .state = 16};
  Inputs in = make_inputs(c, 30);
  Generator g(31);
  Tensor w_y = randn(in.x.shape(), DType::F64, &g), w_final = randn(in.h0.shape(), DType::F64, &g);
  auto r64 = run_op(in.all(), 64);
  auto r32 = run_op(cast_all(in, DType::F32).all(), 64);
  EXPECT_EQ(r32.y.dtype(), DType::F32);
  EXPECT_LT(rel_error(r32.y, r64.y), 1e-5);
  EXPECT_LT(rel_error(r32.final_state, r64.final_state), 1e-5);
  auto g64 = op_gradients(in, 64, w_y, w_final);
  auto g32 = op_gradients(cast_all(in, DType::F32), 64, w_y, w_final);
  for (size_t i = 0; i < g64.size(); ++i) {
    EXPECT_EQ(g32[i].dtype(), DType::F32);
    EXPECT_LT(rel_error(g32[i], g64[i]), 1e-5) << kInputNames[i];
  }
}

TEST(Ssd, MatchesPyTorchAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  for (bool full : {true, false}) {
    Case c{.batch = 2,
           .len = 19,
           .heads = 4,
           .head_dim = 3,
           .groups = 2,
           .state = 5,
           .with_D = full,
           .with_h0 = full};
    Inputs in = make_inputs(c, 40 + full);
    Generator g(41);
    Tensor w_y = randn(in.x.shape(), DType::F64, &g);
    Tensor w_final = randn({2, 4, 3, 5}, DType::F64, &g);
    std::map<std::string, Tensor> feed = {{"x", in.x},        {"dt", in.dt}, {"A", in.A},
                                          {"B", in.B},        {"C", in.C},   {"dy", w_y},
                                          {"dfinal", w_final}};
    const std::vector<Tensor> all = in.all();
    for (int i : {5, 6})
      if (all[i].defined()) feed[kInputNames[i]] = all[i];
    auto ref = ssm::testing::run_torch("ssd_ref.py", feed);
    auto r = run_op(all, 8);
    EXPECT_LT(rel_error(r.y, ref.at("y")), 1e-12);
    EXPECT_LT(rel_error(r.final_state, ref.at("final_state")), 1e-12);
    auto grads = op_gradients(in, 8, w_y, w_final);
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!all[i].defined()) continue;
      EXPECT_LT(rel_error(grads[i], ref.at(std::string("d_") + kInputNames[i])), 1e-11)
          << kInputNames[i];
    }
  }
}

TEST(Ssd, GradientFlowsOnlyToInputsThatRequireIt) {
  Case c{};
  Inputs in = make_inputs(c, 24);
  Tensor x = in.x.clone().requires_grad_();
  auto r = ssd(x, in.dt, in.A, in.B, in.C);
  r.y.backward(Tensor::ones(r.y.shape(), DType::F64));
  EXPECT_GT(rel_error(x.grad(), Tensor::zeros(x.shape(), DType::F64)), 0.5);
  EXPECT_FALSE(in.B.grad().defined());
  NoGradGuard no_grad;
  EXPECT_EQ(ssd(x, in.dt, in.A, in.B, in.C).y.grad_fn(), nullptr);
}

// ------------------------------------------------------------------ bad inputs

TEST(Ssd, RejectsBadInputs) {
  Case c{};
  Inputs in = make_inputs(c, 50);
  auto with = [&](int index, const Tensor& t) {
    std::vector<Tensor> v = in.all();
    v[index] = t;
    return v;
  };
  EXPECT_SSM_ERROR(run_op(with(0, in.x.select(0, 0)), 4), "ssd", "'x'", "(B, L, H, P)");
  EXPECT_SSM_ERROR(run_op(with(1, in.dt.narrow(1, 0, 10)), 4), "ssd", "'dt'", "(B, L, H)",
                   "(2, 11, 4)", "(2, 10, 4)");
  EXPECT_SSM_ERROR(run_op(with(2, Tensor::zeros({3}, DType::F64)), 4), "'A'", "(H)", "(3)");
  EXPECT_SSM_ERROR(run_op(with(3, in.B.narrow(3, 0, 4)), 4), "'C'", "(B, L, G, N)");
  EXPECT_SSM_ERROR(run_op(with(4, in.C.narrow(1, 0, 3)), 4), "'C'", "(B, L, G, N)", "(2, 3, 2, 5)");
  EXPECT_SSM_ERROR(run_op(with(5, Tensor::zeros({2}, DType::F64)), 4), "'D'", "(H)");
  EXPECT_SSM_ERROR(run_op(with(6, Tensor::zeros({2, 4, 3, 4}, DType::F64)), 4), "'initial_state'",
                   "(B, H, P, N)");
  EXPECT_SSM_ERROR(run_op(with(1, in.dt.to(DType::F32)), 4), "'dt'", "float64", "float32");
  // H = 4 heads cannot be split into G = 3 groups.
  Tensor B3 = Tensor::zeros({2, 11, 3, 5}, DType::F64);
  EXPECT_SSM_ERROR(run_op(with(3, B3), 4), "ssd", "'B'", "G = 3", "H = 4");
  EXPECT_SSM_ERROR(run_op(in.all(), 0), "ssd", "'chunk_size'", "0");
  EXPECT_SSM_ERROR(run_op(in.all(), -1), "'chunk_size'", "-1");
  EXPECT_SSM_ERROR(kernels::cpu::ssd_bwd(kernel_inputs(in, 4), in.x.narrow(1, 0, 2), Tensor()),
                   "ssd_bwd", "'dy'", "(B, L, H, P)");
}

TEST(Ssd, StepRejectsBadInputs) {
  Tensor S = Tensor::zeros({2, 4, 3, 5}, DType::F64);
  Tensor x = Tensor::zeros({2, 4, 3}, DType::F64), dt = Tensor::zeros({2, 4}, DType::F64);
  Tensor A = Tensor::zeros({4}, DType::F64), Bt = Tensor::zeros({2, 2, 5}, DType::F64);
  Tensor wrong = Tensor::zeros({2, 4, 3, 6}, DType::F64);
  EXPECT_SSM_ERROR(ssd_state_update(wrong, x, dt, A, Bt, Bt), "ssd_state_update", "'state'",
                   "(B, H, P, N)", "(2, 4, 3, 6)");
  EXPECT_SSM_ERROR(ssd_state_update(S, x, dt.narrow(1, 0, 3), A, Bt, Bt), "'dt'", "(B, H)");
  EXPECT_SSM_ERROR(ssd_state_update(S, x, dt, A.narrow(0, 0, 2), Bt, Bt), "'A'", "(H)");
  Tensor B3 = Tensor::zeros({2, 3, 5}, DType::F64);
  EXPECT_SSM_ERROR(ssd_state_update(S, x, dt, A, B3, B3), "'B'", "G = 3", "H = 4");
}
