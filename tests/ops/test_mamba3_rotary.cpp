// Mamba-3's data-dependent rotary embedding: the op == plain cumulative angles and 2×2
// rotations in float64, step-by-step == sequence, two halves with the angle handed over ==
// one run, finite-difference gradients, float32 vs float64, PyTorch autograd, bad inputs.
#include <cmath>
#include <numbers>
#include <vector>

#include "ssm/autograd/gradcheck.h"
#include "ssm/autograd/node.h"
#include "ssm/core/rng.h"
#include "ssm/ops/mamba3_rotary.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using ssm::testing::rel_error;

namespace {

struct Case {
  int64_t batch = 2, len = 9, heads = 3, state = 8, angles = 3;  // 2S < N: a tail passes through
  bool with_angle = true;
};

struct Inputs {
  Tensor x, dt, theta, phi0;
  std::vector<Tensor> all() const { return {x, dt, theta, phi0}; }
};

const char* kInputNames[] = {"x", "dt", "theta", "initial_angle"};

Inputs make_inputs(const Case& c, uint64_t seed) {
  Generator g(seed);
  Inputs in;
  in.x = randn({c.batch, c.len, c.heads, c.state}, DType::F64, &g);
  in.dt = rand_uniform({c.batch, c.len, c.heads}, 0.05, 0.6, DType::F64, &g);
  // θ = π tanh(·) in the mixer: rates of up to π per unit step.
  in.theta = rand_uniform({c.batch, c.len, c.heads, c.angles}, -3.0, 3.0, DType::F64, &g);
  if (c.with_angle) in.phi0 = rand_uniform({c.batch, c.heads, c.angles}, 0.0, 6.0, DType::F64, &g);
  return in;
}

Mamba3RotaryResult run_op(const std::vector<Tensor>& t) {
  return mamba3_rotary(t[0], t[1], t[2], t[3]);
}

// Cumulative angles summed plainly (no wrapping), then the 2×2 rotations, in float64.
std::pair<Tensor, Tensor> plain_rotary(const Inputs& in) {
  const int64_t batch = in.x.size(0), len = in.x.size(1), heads = in.x.size(2);
  const int64_t N = in.x.size(3), S = in.theta.size(3);
  Tensor out = Tensor::zeros(in.x.shape(), DType::F64);
  Tensor angle = Tensor::zeros({batch, heads, S}, DType::F64);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t h = 0; h < heads; ++h) {
      std::vector<double> phi(S, 0.0);
      if (in.phi0.defined())
        for (int64_t i = 0; i < S; ++i) phi[i] = in.phi0.at({b, h, i});
      for (int64_t t = 0; t < len; ++t) {
        for (int64_t i = 0; i < S; ++i) phi[i] += in.dt.at({b, t, h}) * in.theta.at({b, t, h, i});
        for (int64_t i = 0; i < S; ++i) {
          const double x0 = in.x.at({b, t, h, 2 * i}), x1 = in.x.at({b, t, h, 2 * i + 1});
          out.set({b, t, h, 2 * i}, x0 * std::cos(phi[i]) - x1 * std::sin(phi[i]));
          out.set({b, t, h, 2 * i + 1}, x0 * std::sin(phi[i]) + x1 * std::cos(phi[i]));
        }
        for (int64_t n = 2 * S; n < N; ++n) out.set({b, t, h, n}, in.x.at({b, t, h, n}));
      }
      for (int64_t i = 0; i < S; ++i) angle.set({b, h, i}, phi[i]);
    }
  return {out, angle};
}

// Distance between angles modulo 2π, as a relative error against the angles' size.
double angle_error(const Tensor& a, const Tensor& b) {
  auto va = a.to_vector(), vb = b.to_vector();
  double d2 = 0, r2 = 0;
  for (size_t i = 0; i < va.size(); ++i) {
    const double d = std::remainder(va[i] - vb[i], 2 * std::numbers::pi);
    d2 += d * d;
    r2 += vb[i] * vb[i];
  }
  return std::sqrt(d2 / r2);
}

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

std::vector<Tensor> op_gradients(const Inputs& in, DType dtype, const Tensor& w_out,
                                 const Tensor& w_angle) {
  std::vector<Tensor> leaves;
  for (const Tensor& t : in.all())
    leaves.push_back(t.defined() ? t.detach().to(dtype).clone().requires_grad_() : t);
  auto r = run_op(leaves);
  join_flat({r.out, r.angle}).backward(join_flat({w_out.to(dtype), w_angle.to(dtype)}).detach());
  std::vector<Tensor> grads;
  for (const Tensor& t : leaves) grads.push_back(t.defined() ? t.grad() : Tensor());
  return grads;
}

}  // namespace

TEST(Mamba3Rotary, EqualsPlainCumulativeRotation) {
  for (int64_t len : {1, 9, 200}) {
    for (bool with_angle : {true, false}) {
      Case c{.len = len, .with_angle = with_angle};
      Inputs in = make_inputs(c, 100 + len + with_angle);
      auto [out_ref, angle_ref] = plain_rotary(in);
      auto r = run_op(in.all());
      EXPECT_LT(rel_error(r.out, out_ref), 1e-12) << "L=" << len;
      EXPECT_LT(angle_error(r.angle, angle_ref), 1e-12) << "L=" << len;
      for (double v : r.angle.to_vector()) {
        EXPECT_GE(v, 0.0);
        EXPECT_LT(v, 2 * std::numbers::pi);
      }
      // Entries past the S pairs pass through untouched.
      EXPECT_EQ(rel_error(r.out.narrow(3, 6, 2), in.x.narrow(3, 6, 2)), 0.0);
    }
  }
}

TEST(Mamba3Rotary, EveryPairRotatedWhenTwoSEqualsN) {
  Case c{.state = 6, .angles = 3};
  Inputs in = make_inputs(c, 3);
  auto [out_ref, angle_ref] = plain_rotary(in);
  auto r = run_op(in.all());
  EXPECT_LT(rel_error(r.out, out_ref), 1e-12);
}

TEST(Mamba3Rotary, StepByStepEqualsSequence) {
  Case c{.len = 50};
  Inputs in = make_inputs(c, 4);
  auto r = run_op(in.all());
  Tensor angle = in.phi0.clone();
  Tensor out = Tensor::empty(in.x.shape(), DType::F64);
  for (int64_t t = 0; t < c.len; ++t) {
    auto s =
        mamba3_rotary_step(in.x.select(1, t), in.dt.select(1, t), in.theta.select(1, t), angle);
    out.narrow(1, t, 1).copy_(s.out.unsqueeze(1));
    angle = s.angle;
  }
  // The same additions and wraps in the same order: equal to the last bit.
  EXPECT_EQ(rel_error(out, r.out), 0.0);
  EXPECT_EQ(rel_error(angle, r.angle), 0.0);
}

TEST(Mamba3Rotary, TwoHalvesWithAngleHandedOverEqualOneRun) {
  Case c{.len = 30};
  Inputs in = make_inputs(c, 5);
  Generator g(6);
  Tensor w_out = randn(in.x.shape(), DType::F64, &g),
         w_angle = randn(in.phi0.shape(), DType::F64, &g);
  std::vector<Tensor> leaves = leaves_of(in);
  auto whole = run_op(leaves);
  join_flat({whole.out, whole.angle}).backward(join_flat({w_out, w_angle}).detach());
  std::vector<Tensor> whole_grads;
  for (Tensor& t : leaves) {
    whole_grads.push_back(t.grad());
    t.zero_grad();
  }
  const int64_t first = 11, rest = c.len - first;
  auto a = mamba3_rotary(leaves[0].narrow(1, 0, first), leaves[1].narrow(1, 0, first),
                         leaves[2].narrow(1, 0, first), leaves[3]);
  auto b = mamba3_rotary(leaves[0].narrow(1, first, rest), leaves[1].narrow(1, first, rest),
                         leaves[2].narrow(1, first, rest), a.angle);
  join_flat({a.out, b.out, b.angle})
      .backward(
          join_flat({w_out.narrow(1, 0, first), w_out.narrow(1, first, rest), w_angle}).detach());
  EXPECT_LT(rel_error(a.out, whole.out.narrow(1, 0, first)), 1e-14);
  EXPECT_LT(rel_error(b.out, whole.out.narrow(1, first, rest)), 1e-12);
  EXPECT_LT(angle_error(b.angle, whole.angle), 1e-13);
  for (size_t i = 0; i < leaves.size(); ++i)
    EXPECT_LT(rel_error(leaves[i].grad(), whole_grads[i]), 1e-12) << kInputNames[i];
}

TEST(Mamba3Rotary, GradcheckEveryInput) {
  for (bool with_angle : {true, false}) {
    Case c{.with_angle = with_angle};
    Inputs in = make_inputs(c, 20 + with_angle);
    auto fn = [](const std::vector<Tensor>& t) {
      auto r = run_op(t);
      return join_flat({r.out, r.angle});
    };
    auto result = gradcheck(fn, leaves_of(in));
    EXPECT_TRUE(result.ok) << result.report;
    EXPECT_LT(result.worst_relative_error, 1e-6);
  }
}

TEST(Mamba3Rotary, Float32AgreesWithFloat64) {
  Case c{.len = 300, .heads = 4, .state = 16, .angles = 8};
  Inputs in = make_inputs(c, 30);
  Generator g(31);
  Tensor w_out = randn(in.x.shape(), DType::F64, &g),
         w_angle = randn(in.phi0.shape(), DType::F64, &g);
  std::vector<Tensor> in32;
  for (const Tensor& t : in.all()) in32.push_back(t.to(DType::F32));
  auto r64 = run_op(in.all());
  auto r32 = run_op(in32);
  EXPECT_EQ(r32.out.dtype(), DType::F32);
  // The angle is a running sum of 300 steps: its float32 rounding (≈ 1e-7 relative per step
  // on values up to 2π) is what bounds the error, well inside 1e-5.
  EXPECT_LT(rel_error(r32.out, r64.out), 1e-5);
  EXPECT_LT(angle_error(r32.angle, r64.angle), 1e-5);
  auto g64 = op_gradients(in, DType::F64, w_out, w_angle);
  auto g32 = op_gradients(in, DType::F32, w_out, w_angle);
  for (size_t i = 0; i < g64.size(); ++i)
    EXPECT_LT(rel_error(g32[i], g64[i]), 1e-5) << kInputNames[i];
}

TEST(Mamba3Rotary, MatchesPyTorchAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  // Two cases in one PyTorch call: with and without an initial angle.
  std::vector<Inputs> cases;
  std::vector<Tensor> w_outs, w_angles;
  std::map<std::string, Tensor> feed;
  for (bool with_angle : {true, false}) {
    Case c{.len = 17, .with_angle = with_angle};
    cases.push_back(make_inputs(c, 40 + with_angle));
    Generator g(41 + with_angle);
    w_outs.push_back(randn(cases.back().x.shape(), DType::F64, &g));
    w_angles.push_back(randn({c.batch, c.heads, c.angles}, DType::F64, &g));
    const std::string prefix = with_angle ? "angle." : "zero.";
    const Inputs& in = cases.back();
    feed[prefix + "x"] = in.x;
    feed[prefix + "dt"] = in.dt;
    feed[prefix + "theta"] = in.theta;
    feed[prefix + "dout"] = w_outs.back();
    feed[prefix + "dfinal"] = w_angles.back();
    if (with_angle) feed[prefix + "initial_angle"] = in.phi0;
  }
  auto ref = ssm::testing::run_torch("mamba3_rotary_ref.py", feed);
  for (size_t k = 0; k < cases.size(); ++k) {
    const std::string prefix = k == 0 ? "angle." : "zero.";
    const std::vector<Tensor> all = cases[k].all();
    auto r = run_op(all);
    EXPECT_LT(rel_error(r.out, ref.at(prefix + "out")), 1e-12) << prefix;
    EXPECT_LT(angle_error(r.angle, ref.at(prefix + "angle")), 1e-12) << prefix;
    auto grads = op_gradients(cases[k], DType::F64, w_outs[k], w_angles[k]);
    for (size_t i = 0; i < grads.size(); ++i) {
      if (!all[i].defined()) continue;
      EXPECT_LT(rel_error(grads[i], ref.at(prefix + "d_" + kInputNames[i])), 1e-12)
          << prefix << kInputNames[i];
    }
  }
}

TEST(Mamba3Rotary, RejectsBadInputs) {
  Case c{};
  Inputs in = make_inputs(c, 50);
  EXPECT_SSM_ERROR(mamba3_rotary(in.x.select(1, 0), in.dt, in.theta), "mamba3_rotary", "'x'",
                   "(B, L, H, N)");
  EXPECT_SSM_ERROR(mamba3_rotary(in.x, in.dt.narrow(2, 0, 2), in.theta), "mamba3_rotary", "'dt'",
                   "(B, L, H)", "(2, 9, 3)", "(2, 9, 2)");
  EXPECT_SSM_ERROR(mamba3_rotary(in.x, in.dt, in.theta.narrow(1, 0, 4)), "'theta'", "(B, L, H, S)",
                   "(2, 9, 3, 3)", "(2, 4, 3, 3)");
  Tensor five_angles = Tensor::zeros({2, 9, 3, 5}, DType::F64);
  EXPECT_SSM_ERROR(mamba3_rotary(in.x, in.dt, five_angles), "'theta'", "S = 5", "N = 8");
  EXPECT_SSM_ERROR(mamba3_rotary(in.x, in.dt, in.theta, in.phi0.narrow(2, 0, 2)), "'initial_angle'",
                   "(B, H, S)", "(2, 3, 3)", "(2, 3, 2)");
  EXPECT_SSM_ERROR(mamba3_rotary(in.x, in.dt.to(DType::F32), in.theta), "'dt'", "float64",
                   "float32");
  EXPECT_SSM_ERROR(mamba3_rotary_step(in.x.select(1, 0), in.dt.select(1, 0), in.theta.select(1, 0),
                                      in.phi0.narrow(1, 0, 1)),
                   "mamba3_rotary_step", "'angle'", "(B, H, S)", "(2, 3, 3)", "(2, 1, 3)");
  EXPECT_SSM_ERROR(mamba3_rotary_step(in.x.select(1, 0), in.dt, in.theta.select(1, 0), in.phi0),
                   "mamba3_rotary_step", "'dt_t'", "(B, H)");
}
