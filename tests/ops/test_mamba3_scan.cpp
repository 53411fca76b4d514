// Mamba-3 (SISO) scan: the op == a plain float64 recurrence, step-by-step == scan (with and
// without a carried cache), two halves with the state handed over == one run, chunk size
// does not change gradients, finite-difference gradients of every input, float32 vs
// float64, PyTorch autograd, and bad inputs.
#include <cmath>
#include <limits>
#include <vector>

#include "ssm/autograd/gradcheck.h"
#include "ssm/autograd/node.h"
#include "ssm/core/rng.h"
#include "ssm/kernels/mamba3_scan.h"
#include "ssm/ops/mamba3_scan.h"
#include "ssm/ops/reduce.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

struct Case {
  int64_t batch = 2, len = 11, heads = 4, head_dim = 3, groups = 2, state = 6;
  bool A_per_step = true, with_D = true, with_h0 = true, with_prev = true;
};

struct Inputs {
  Tensor x, dt, A, lam, B, C, D, h0, B0, x0;
  std::vector<Tensor> all() const { return {x, dt, A, lam, B, C, D, h0, B0, x0}; }
};

const char* kInputNames[] = {"x",         "dt",       "A", "lam", "B", "C", "D", "initial_state",
                             "initial_B", "initial_x"};

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
  in.dt = draw({c.batch, c.len, c.heads}, g, [](double x) { return 0.05 + 0.3 * std::fabs(x); });
  const Shape a_shape = c.A_per_step ? Shape{c.batch, c.len, c.heads} : Shape{c.heads};
  in.A = draw(a_shape, g, [](double x) { return -0.2 - std::fabs(x); });
  // λ = σ(·) strictly inside (0, 1).
  in.lam = draw({c.batch, c.len, c.heads}, g, [](double x) { return 1.0 / (1.0 + std::exp(-x)); });
  in.B = draw({c.batch, c.len, c.groups, c.state}, g, normal);
  in.C = draw({c.batch, c.len, c.groups, c.state}, g, normal);
  if (c.with_D) in.D = draw({c.heads}, g, normal);
  if (c.with_h0) in.h0 = draw({c.batch, c.heads, c.head_dim, c.state}, g, normal);
  if (c.with_prev) {
    in.B0 = draw({c.batch, c.groups, c.state}, g, normal);
    in.x0 = draw({c.batch, c.heads, c.head_dim}, g, normal);
  }
  return in;
}

Tensor cast(const Tensor& t, DType dtype) {
  return t.defined() ? t.to(dtype) : Tensor();
}

Inputs cast_all(const Inputs& in, DType dtype) {
  return {cast(in.x, dtype),  cast(in.dt, dtype), cast(in.A, dtype), cast(in.lam, dtype),
          cast(in.B, dtype),  cast(in.C, dtype),  cast(in.D, dtype), cast(in.h0, dtype),
          cast(in.B0, dtype), cast(in.x0, dtype)};
}

Mamba3ScanResult run_op(const std::vector<Tensor>& t, int64_t chunk) {
  return mamba3_scan(t[0], t[1], t[2], t[3], t[4], t[5],
                     {.D = t[6],
                      .initial_state = t[7],
                      .initial_B = t[8],
                      .initial_x = t[9],
                      .chunk_size = chunk});
}

// The recurrence one scalar at a time, in float64, as the paper writes it:
//   S_t = α_t S_{t−1} + β_t x_{t−1} B_{t−1}ᵀ + γ_t x_t B_tᵀ,   y_t = S_t C_t + D x_t.
std::pair<Tensor, Tensor> plain_mamba3(const Inputs& in) {
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
      for (int64_t t = 0; t < len; ++t) {
        const double dt = in.dt.at({b, t, h}), lam = in.lam.at({b, t, h});
        const double A = in.A.dim() == 1 ? in.A.at({h}) : in.A.at({b, t, h});
        const double alpha = std::exp(A * dt);
        const double beta = (1 - lam) * dt * alpha;
        const double gamma = lam * dt;
        for (int64_t p = 0; p < head_dim; ++p) {
          const double x = in.x.at({b, t, h, p});
          double x_prev = 0;
          if (t > 0)
            x_prev = in.x.at({b, t - 1, h, p});
          else if (in.x0.defined())
            x_prev = in.x0.at({b, h, p});
          double out = 0;
          for (int64_t n = 0; n < n_state; ++n) {
            double B_prev = 0;
            if (t > 0)
              B_prev = in.B.at({b, t - 1, g, n});
            else if (in.B0.defined())
              B_prev = in.B0.at({b, g, n});
            double& s = S[p * n_state + n];
            s = alpha * s + beta * x_prev * B_prev + gamma * x * in.B.at({b, t, g, n});
            out += s * in.C.at({b, t, g, n});
          }
          if (in.D.defined()) out += in.D.at({h}) * x;
          y.set({b, t, h, p}, out);
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

std::vector<Tensor> leaves_of(const Inputs& in) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : in.all()) leaves.push_back(t.defined() ? t.clone().requires_grad_() : t);
  return leaves;
}

std::vector<Tensor> op_gradients(const Inputs& in, int64_t chunk, const Tensor& w_y,
                                 const Tensor& w_final) {
  std::vector<Tensor> leaves = leaves_of(in);
  auto r = run_op(leaves, chunk);
  join_flat({r.y, r.final_state})
      .backward(join_flat({w_y.to(r.y.dtype()), w_final.to(r.y.dtype())}).detach());
  std::vector<Tensor> grads;
  for (const Tensor& t : leaves) grads.push_back(t.defined() ? t.grad() : Tensor());
  return grads;
}

}  // namespace

// ------------------------------------------------------------------ forward

TEST(Mamba3Scan, EqualsPlainRecurrence) {
  for (int64_t len : {1, 7, 64, 100}) {
    for (bool A_per_step : {true, false}) {
      Case c{.len = len, .A_per_step = A_per_step};
      Inputs in = make_inputs(c, 100 + len + A_per_step);
      auto [y_ref, final_ref] = plain_mamba3(in);
      for (int64_t chunk : {1, 16, 64}) {
        auto r = run_op(in.all(), chunk);
        EXPECT_LT(rel_error(r.y, y_ref), 1e-13) << "L=" << len << " chunk=" << chunk;
        EXPECT_LT(rel_error(r.final_state, final_ref), 1e-13) << "L=" << len;
      }
    }
  }
}

TEST(Mamba3Scan, WithoutOptionalInputsAndOneGroup) {
  Case c{.batch = 3,
         .len = 45,
         .heads = 3,
         .head_dim = 4,
         .groups = 1,
         .state = 8,
         .with_D = false,
         .with_h0 = false,
         .with_prev = false};
  Inputs in = make_inputs(c, 5);
  auto [y_ref, final_ref] = plain_mamba3(in);
  auto r = run_op(in.all(), 16);
  EXPECT_LT(rel_error(r.y, y_ref), 1e-13);
  EXPECT_LT(rel_error(r.final_state, final_ref), 1e-13);
}

TEST(Mamba3Scan, PreviousStepTermMatters) {
  // The β term at t = 0 must read initial_x / initial_B: dropping them changes y_0.
  Case c{};
  Inputs in = make_inputs(c, 6);
  Inputs without = in;
  without.B0 = Tensor();
  without.x0 = Tensor();
  auto a = run_op(in.all(), 4), b = run_op(without.all(), 4);
  EXPECT_GT(rel_error(a.y.narrow(1, 0, 1), b.y.narrow(1, 0, 1)), 1e-3);
  EXPECT_LT(rel_error(b.y, plain_mamba3(without).first), 1e-13);
}

TEST(Mamba3Scan, StridedInputsAreReadCorrectly) {
  Case c{};
  Inputs in = make_inputs(c, 7);
  auto ref = run_op(in.all(), 4);
  Inputs strided = in;
  strided.x = in.x.transpose(1, 2).contiguous().transpose(1, 2);
  strided.B = in.B.transpose(1, 2).contiguous().transpose(1, 2);
  strided.lam = in.lam.transpose(0, 1).contiguous().transpose(0, 1);
  ASSERT_FALSE(strided.x.is_contiguous());
  auto r = run_op(strided.all(), 4);
  EXPECT_EQ(rel_error(r.y, ref.y), 0.0);
  EXPECT_EQ(rel_error(r.final_state, ref.final_state), 0.0);
}

// ------------------------------------------------------------------ decode step and hand-over

TEST(Mamba3Scan, StepByStepEqualsScan) {
  for (int64_t len : {1, 7, 64, 100}) {
    for (bool carried : {true, false}) {  // with a cache from "earlier", or from zeros
      Case c{.len = len, .with_h0 = carried, .with_prev = carried};
      Inputs in = make_inputs(c, 11 + len + carried);
      auto r = run_op(in.all(), 16);
      Tensor S = carried ? in.h0.clone() : Tensor::zeros({2, 4, 3, 6}, DType::F64);
      Tensor B_prev = carried ? in.B0.clone() : Tensor::zeros({2, 2, 6}, DType::F64);
      Tensor x_prev = carried ? in.x0.clone() : Tensor::zeros({2, 4, 3}, DType::F64);
      Tensor y = Tensor::empty(in.x.shape(), DType::F64);
      for (int64_t t = 0; t < len; ++t) {
        Tensor y_t = mamba3_state_update(S, B_prev, x_prev, in.x.select(1, t), in.dt.select(1, t),
                                         in.A.select(1, t), in.lam.select(1, t), in.B.select(1, t),
                                         in.C.select(1, t), in.D);
        y.narrow(1, t, 1).copy_(y_t.unsqueeze(1));
      }
      EXPECT_LT(rel_error(y, r.y), 1e-13) << "L=" << len;
      EXPECT_LT(rel_error(S, r.final_state), 1e-13) << "L=" << len;
      EXPECT_EQ(rel_error(B_prev, in.B.select(1, len - 1)), 0.0);
      EXPECT_EQ(rel_error(x_prev, in.x.select(1, len - 1)), 0.0);
    }
  }
}

TEST(Mamba3Scan, StepWithPerHeadA) {
  Case c{.len = 9, .A_per_step = false};
  Inputs in = make_inputs(c, 15);
  auto r = run_op(in.all(), 4);
  Tensor S = in.h0.clone(), B_prev = in.B0.clone(), x_prev = in.x0.clone();
  Tensor y = Tensor::empty(in.x.shape(), DType::F64);
  for (int64_t t = 0; t < c.len; ++t)
    y.narrow(1, t, 1).copy_(mamba3_state_update(S, B_prev, x_prev, in.x.select(1, t),
                                                in.dt.select(1, t), in.A, in.lam.select(1, t),
                                                in.B.select(1, t), in.C.select(1, t), in.D)
                                .unsqueeze(1));
  EXPECT_LT(rel_error(y, r.y), 1e-13);
  EXPECT_LT(rel_error(S, r.final_state), 1e-13);
}

TEST(Mamba3Scan, TwoHalvesWithStateHandedOverEqualOneRun) {
  for (int64_t len : {7, 64, 100}) {
    Case c{.len = len};
    Inputs in = make_inputs(c, 12 + len);
    const int64_t first = len / 3 + 1, rest = len - first;
    Generator g(13);
    Tensor w_y = randn(in.x.shape(), DType::F64, &g);
    Tensor w_final = randn(in.h0.shape(), DType::F64, &g);

    std::vector<Tensor> leaves = leaves_of(in);
    auto whole = run_op(leaves, 16);
    join_flat({whole.y, whole.final_state}).backward(join_flat({w_y, w_final}).detach());
    std::vector<Tensor> whole_grads;
    for (Tensor& t : leaves) {
      whole_grads.push_back(t.grad());
      t.zero_grad();
    }

    auto part = [&](int64_t start, int64_t n, const Tensor& h0, const Tensor& B0,
                    const Tensor& x0) {
      std::vector<Tensor> t = leaves;
      for (int i : {0, 1, 2, 3, 4, 5}) t[i] = leaves[i].narrow(1, start, n);
      t[7] = h0;
      t[8] = B0;
      t[9] = x0;
      return run_op(t, 16);
    };
    auto a = part(0, first, leaves[7], leaves[8], leaves[9]);
    // The second half continues from the first's state and its last (x, B).
    auto b = part(first, rest, a.final_state, leaves[4].select(1, first - 1),
                  leaves[0].select(1, first - 1));
    join_flat({a.y, b.y, b.final_state})
        .backward(
            join_flat({w_y.narrow(1, 0, first), w_y.narrow(1, first, rest), w_final}).detach());
    EXPECT_LT(rel_error(a.y, whole.y.narrow(1, 0, first)), 1e-13);
    EXPECT_LT(rel_error(b.y, whole.y.narrow(1, first, rest)), 1e-13);
    EXPECT_LT(rel_error(b.final_state, whole.final_state), 1e-13);
    for (size_t i = 0; i < leaves.size(); ++i)
      EXPECT_LT(rel_error(leaves[i].grad(), whole_grads[i]), 1e-12)
          << kInputNames[i] << " L=" << len;
  }
}

// ------------------------------------------------------------------ gradients

TEST(Mamba3Scan, GradcheckEveryInput) {
  for (bool A_per_step : {true, false}) {
    for (int64_t chunk : {4, 16}) {  // 3 chunks with a partial last one; one chunk
      Case c{.A_per_step = A_per_step};
      Inputs in = make_inputs(c, 20 + chunk + A_per_step);
      auto fn = [chunk](const std::vector<Tensor>& t) {
        auto r = run_op(t, chunk);
        return join_flat({r.y, r.final_state});
      };
      auto result = gradcheck(fn, leaves_of(in));
      EXPECT_TRUE(result.ok) << result.report;
      EXPECT_LT(result.worst_relative_error, 1e-6);
    }
  }
}

TEST(Mamba3Scan, GradcheckWithoutOptionalInputs) {
  Case c{.batch = 1,
         .len = 9,
         .heads = 2,
         .head_dim = 2,
         .groups = 1,
         .state = 3,
         .with_D = false,
         .with_h0 = false,
         .with_prev = false};
  Inputs in = make_inputs(c, 21);
  auto fn = [](const std::vector<Tensor>& t) {
    auto r = run_op(t, 4);
    return join_flat({r.y, r.final_state});
  };
  auto result = gradcheck(fn, leaves_of(in));
  EXPECT_TRUE(result.ok) << result.report;
}

TEST(Mamba3Scan, ChunkSizeDoesNotChangeGradients) {
  Case c{.len = 100};
  Inputs in = make_inputs(c, 22);
  Generator g(23);
  Tensor w_y = randn(in.x.shape(), DType::F64, &g), w_final = randn(in.h0.shape(), DType::F64, &g);
  auto ref = op_gradients(in, 1000, w_y, w_final);
  for (int64_t chunk : {1, 7, 64}) {
    auto grads = op_gradients(in, chunk, w_y, w_final);
    for (size_t i = 0; i < grads.size(); ++i)
      EXPECT_LT(rel_error(grads[i], ref[i]), 1e-13) << kInputNames[i] << " chunk=" << chunk;
  }
}

TEST(Mamba3Scan, Float32AgreesWithFloat64) {
  Case c{.len = 300, .heads = 4, .head_dim = 16, .groups = 2, .state = 16};
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

TEST(Mamba3Scan, MambaSizedHeadsSharingOneGroup) {
  // P = 32, N = 32, 8 heads reading one group: the per-head dB/dC buffers and their sum.
  Case c{.batch = 1, .len = 40, .heads = 8, .head_dim = 32, .groups = 1, .state = 32};
  Inputs in = make_inputs(c, 32);
  auto [y_ref, final_ref] = plain_mamba3(in);
  auto r = run_op(in.all(), 16);
  EXPECT_LT(rel_error(r.y, y_ref), 1e-13);
  EXPECT_LT(rel_error(r.final_state, final_ref), 1e-13);
  // Heads sharing a group: dB = Σ over heads of each head's own gradient (checked against
  // the op run with the group duplicated per head, G = H).
  Inputs per_head = in;
  per_head.B = in.B.expand({1, 40, 8, 32}).contiguous();
  per_head.C = in.C.expand({1, 40, 8, 32}).contiguous();
  per_head.B0 = in.B0.expand({1, 8, 32}).contiguous();
  Generator g(33);
  Tensor w_y = randn(in.x.shape(), DType::F64, &g), w_final = randn(in.h0.shape(), DType::F64, &g);
  auto shared = op_gradients(in, 16, w_y, w_final);
  auto split = op_gradients(per_head, 16, w_y, w_final);
  EXPECT_LT(rel_error(shared[4], sum(split[4], {2}, true)), 1e-13);
  EXPECT_LT(rel_error(shared[5], sum(split[5], {2}, true)), 1e-13);
  EXPECT_LT(rel_error(shared[8], sum(split[8], {1}, true)), 1e-13);
  for (int i : {0, 1, 2, 3, 6, 7, 9})
    EXPECT_LT(rel_error(shared[i], split[i]), 1e-13) << kInputNames[i];
}

TEST(Mamba3Scan, MatchesPyTorchAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  // Two cases in one PyTorch call: every optional input and A per step; none and A per head.
  std::vector<Inputs> cases;
  std::vector<Tensor> w_ys, w_finals;
  std::map<std::string, Tensor> feed;
  for (bool full : {true, false}) {
    Case c{.len = 19, .A_per_step = full, .with_D = full, .with_h0 = full, .with_prev = full};
    cases.push_back(make_inputs(c, 40 + full));
    Generator g(41 + full);
    w_ys.push_back(randn(cases.back().x.shape(), DType::F64, &g));
    w_finals.push_back(randn({2, 4, 3, 6}, DType::F64, &g));
    const std::string prefix = full ? "full." : "bare.";
    feed[prefix + "dy"] = w_ys.back();
    feed[prefix + "dfinal"] = w_finals.back();
    const std::vector<Tensor> all = cases.back().all();
    for (size_t i = 0; i < all.size(); ++i)
      if (all[i].defined()) feed[prefix + kInputNames[i]] = all[i];
  }
  auto ref = ssm::testing::run_torch("mamba3_scan_ref.py", feed);
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::string prefix = k == 0 ? "full." : "bare.";
    const std::vector<Tensor> all = cases[k].all();
    auto r = run_op(all, 8);
    EXPECT_LT(rel_error(r.y, ref.at(prefix + "y")), 1e-12) << prefix;
    EXPECT_LT(rel_error(r.final_state, ref.at(prefix + "final_state")), 1e-12) << prefix;
    auto grads = op_gradients(cases[k], 8, w_ys[k], w_finals[k]);
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!all[i].defined()) continue;
      EXPECT_LT(rel_error(grads[i], ref.at(prefix + "d_" + kInputNames[i])), 1e-12)
          << prefix << kInputNames[i];
    }
  }
}

TEST(Mamba3Scan, GradientFlowsOnlyToInputsThatRequireIt) {
  Case c{};
  Inputs in = make_inputs(c, 24);
  Tensor x = in.x.clone().requires_grad_();
  auto r = mamba3_scan(x, in.dt, in.A, in.lam, in.B, in.C);
  r.y.backward(Tensor::ones(r.y.shape(), DType::F64));
  EXPECT_GT(rel_error(x.grad(), Tensor::zeros(x.shape(), DType::F64)), 0.5);
  EXPECT_FALSE(in.B.grad().defined());
  NoGradGuard no_grad;
  EXPECT_EQ(mamba3_scan(x, in.dt, in.A, in.lam, in.B, in.C).y.grad_fn(), nullptr);
}

// ------------------------------------------------------------------ bad inputs

TEST(Mamba3Scan, RejectsBadShapes) {
  Case c{};
  Inputs in = make_inputs(c, 50);
  auto with = [&](int index, const Tensor& t) {
    std::vector<Tensor> v = in.all();
    v[index] = t;
    return v;
  };
  EXPECT_SSM_ERROR(run_op(with(0, in.x.select(0, 0)), 4), "mamba3_scan", "'x'", "(B, L, H, P)");
  EXPECT_SSM_ERROR(run_op(with(1, in.dt.narrow(1, 0, 10)), 4), "mamba3_scan", "'dt'", "(B, L, H)",
                   "(2, 11, 4)", "(2, 10, 4)");
  EXPECT_SSM_ERROR(run_op(with(2, in.A.narrow(1, 0, 3)), 4), "'A'", "(B, L, H)", "(2, 11, 4)",
                   "(2, 3, 4)");
  EXPECT_SSM_ERROR(run_op(with(2, in.A.select(0, 0).select(0, 0).narrow(0, 0, 3)), 4), "'A'", "(H)",
                   "(4)", "(3)");
  EXPECT_SSM_ERROR(run_op(with(3, in.lam.narrow(2, 0, 2)), 4), "'lambda'", "(B, L, H)",
                   "(2, 11, 4)", "(2, 11, 2)");
  EXPECT_SSM_ERROR(run_op(with(4, in.B.narrow(3, 0, 4)), 4), "'C'", "(B, L, G, N)", "(2, 11, 2, 4)",
                   "(2, 11, 2, 6)");
  EXPECT_SSM_ERROR(run_op(with(5, in.C.narrow(1, 0, 3)), 4), "'C'", "(2, 11, 2, 6)",
                   "(2, 3, 2, 6)");
  EXPECT_SSM_ERROR(run_op(with(6, in.D.narrow(0, 0, 2)), 4), "'D'", "(H)", "(4)", "(2)");
  EXPECT_SSM_ERROR(run_op(with(7, in.h0.narrow(3, 0, 5)), 4), "'initial_state'", "(B, H, P, N)",
                   "(2, 4, 3, 6)", "(2, 4, 3, 5)");
  EXPECT_SSM_ERROR(run_op(with(8, in.B0.narrow(2, 0, 5)), 4), "'initial_B'", "(B, G, N)",
                   "(2, 2, 6)", "(2, 2, 5)");
  EXPECT_SSM_ERROR(run_op(with(9, in.x0.narrow(1, 0, 1)), 4), "'initial_x'", "(B, H, P)",
                   "(2, 4, 3)", "(2, 1, 3)");
  EXPECT_SSM_ERROR(run_op(with(9, Tensor()), 4), "'initial_B'", "'initial_x'", "together");
  EXPECT_SSM_ERROR(run_op(with(1, in.dt.to(DType::F32)), 4), "'dt'", "float64", "float32");
  // H = 4 heads cannot be split into G = 3 groups.
  Tensor B3 = in.B.narrow(2, 0, 1).expand({2, 11, 3, 6});
  EXPECT_SSM_ERROR(run_op(with(4, B3), 4), "mamba3_scan", "'B'", "G = 3", "H = 4");
  EXPECT_SSM_ERROR(run_op(in.all(), 0), "mamba3_scan", "'chunk_size'", "0");
  namespace k = kernels::cpu;
  k::Mamba3ScanInputs kin{
      .x = in.x, .dt = in.dt, .A = in.A, .lambda = in.lam, .B = in.B, .C = in.C};
  auto fwd = k::mamba3_scan_fwd(kin);
  EXPECT_SSM_ERROR(k::mamba3_scan_bwd(kin, fwd.chunk_states, in.x.narrow(1, 0, 2), Tensor()),
                   "mamba3_scan_bwd", "'dy'", "(B, L, H, P)");
}

TEST(Mamba3Scan, RejectsBadValuesAndPropagatesNaN) {
  Case c{};
  Inputs in = make_inputs(c, 51);
  auto with_value = [&](int index, const std::vector<int64_t>& at, double v) {
    std::vector<Tensor> all = in.all();
    all[index] = all[index].clone();
    all[index].set(at, v);
    return all;
  };
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_SSM_ERROR(run_op(with_value(1, {1, 5, 2}, -0.1), 4), "mamba3_scan", "'dt'", ">= 0", "-0.1",
                   "[1, 5, 2]");
  EXPECT_SSM_ERROR(run_op(with_value(1, {0, 3, 1}, nan), 4), "'dt'", "nan", "[0, 3, 1]");
  EXPECT_SSM_ERROR(run_op(with_value(2, {0, 2, 3}, 0.5), 4), "'A'", "<= 0", "0.5", "[0, 2, 3]");
  EXPECT_SSM_ERROR(run_op(with_value(3, {1, 0, 0}, 1.5), 4), "'lambda'", "in [0, 1]", "1.5",
                   "[1, 0, 0]");
  EXPECT_SSM_ERROR(run_op(with_value(3, {0, 10, 3}, -0.25), 4), "'lambda'", "-0.25");
  EXPECT_SSM_ERROR(run_op(with_value(3, {0, 10, 3}, nan), 4), "'lambda'", "nan");
  // λ at the ends of [0, 1] is allowed (σ saturates in float32).
  EXPECT_NO_THROW(run_op(with_value(3, {0, 1, 0}, 1.0), 4));
  EXPECT_NO_THROW(run_op(with_value(3, {0, 1, 0}, 0.0), 4));
  // NaN in x reaches the outputs from its step on, and not before.
  auto r = run_op(with_value(0, {0, 4, 1, 2}, nan), 4);
  EXPECT_FALSE(std::isnan(r.y.at({0, 3, 1, 2})));
  EXPECT_TRUE(std::isnan(r.y.at({0, 4, 1, 2})));
  EXPECT_TRUE(std::isnan(r.final_state.at({0, 1, 2, 0})));
  EXPECT_FALSE(std::isnan(r.final_state.at({1, 1, 2, 0})));
}

TEST(Mamba3Scan, StepRejectsBadInputs) {
  Tensor S = Tensor::zeros({2, 4, 3, 6}, DType::F64);
  Tensor B_prev = Tensor::zeros({2, 2, 6}, DType::F64),
         x_prev = Tensor::zeros({2, 4, 3}, DType::F64);
  Generator g(52);
  Tensor x = randn({2, 4, 3}, DType::F64, &g), dt = Tensor::full({2, 4}, 0.1, DType::F64);
  Tensor A = Tensor::full({4}, -1.0, DType::F64), lam = Tensor::full({2, 4}, 0.5, DType::F64);
  Tensor Bt = randn({2, 2, 6}, DType::F64, &g);
  Tensor wrong = Tensor::zeros({2, 4, 3, 5}, DType::F64);
  EXPECT_SSM_ERROR(mamba3_state_update(wrong, B_prev, x_prev, x, dt, A, lam, Bt, Bt),
                   "mamba3_state_update", "'state'", "(B, H, P, N)", "(2, 4, 3, 6)",
                   "(2, 4, 3, 5)");
  Tensor wrong_prev = Tensor::zeros({2, 2, 5}, DType::F64);
  EXPECT_SSM_ERROR(mamba3_state_update(S, wrong_prev, x_prev, x, dt, A, lam, Bt, Bt), "'prev_B'",
                   "(B, G, N)", "(2, 2, 6)", "(2, 2, 5)");
  EXPECT_SSM_ERROR(mamba3_state_update(S, B_prev, x_prev, x, dt.narrow(1, 0, 3), A, lam, Bt, Bt),
                   "'dt'", "(B, H)");
  EXPECT_SSM_ERROR(mamba3_state_update(S, B_prev, x_prev, x, dt, A.narrow(0, 0, 2), lam, Bt, Bt),
                   "'A'", "(H)");
  Tensor B3 = Tensor::zeros({2, 3, 6}, DType::F64);
  EXPECT_SSM_ERROR(mamba3_state_update(S, B_prev, x_prev, x, dt, A, lam, B3, B3), "'B'", "G = 3",
                   "H = 4");
  Tensor bad_lam = lam.clone();
  bad_lam.set({1, 2}, 2.0);
  EXPECT_SSM_ERROR(mamba3_state_update(S, B_prev, x_prev, x, dt, A, bad_lam, Bt, Bt), "'lambda'",
                   "[1, 2]");
  Tensor strided = Tensor::zeros({2, 3, 4}, DType::F64).transpose(1, 2);
  EXPECT_SSM_ERROR(mamba3_state_update(S, B_prev, strided, x, dt, A, lam, Bt, Bt), "'prev_x'",
                   "contiguous");
}
