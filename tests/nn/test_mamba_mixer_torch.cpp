// Mamba-1 mixer vs PyTorch: the output of the parallel (training) forward and the gradients of
// the input and of every parameter, against torch autograd through the equations of DESIGN §5
// (tests/python/mamba_mixer_ref.py, a sequential selective scan), in float64.
#include <string>
#include <vector>

#include "ssm/nn/mamba.h"
#include "ssm/ops/elementwise.h"
#include "support/perturb.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using namespace ssm::nn;
using ssm::testing::rel_error;

namespace {

MambaOptions tiny_options() {
  MambaOptions o;
  o.d_model = 4;
  o.d_state = 3;
  o.d_conv = 3;
  o.expand = 2;  // D_inner = 8
  o.dt_rank = 2;
  return o;
}

double sum_of_squares(const Tensor& t) {
  double s = 0;
  for (double v : t.to_vector()) s += v * v;
  return s;
}

struct Case {
  std::string name;
  int64_t length;
  uint64_t seed;
};

}  // namespace

TEST(MambaMixer, MatchesTorchForwardAndAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  // One length inside the scan's first chunk (128 steps) and one past it, so the backward
  // recomputes from a saved chunk-start state.
  const std::vector<Case> cases = {{"short", 11, 30}, {"long", 131, 40}};
  Generator g(17);
  MambaMixer m(tiny_options(), g, DType::F64);
  ssm::testing::perturb_parameters(m, 18, 0.3);
  std::map<std::string, Tensor> in;
  std::vector<Tensor> xs, dys;
  for (const Case& c : cases) {
    xs.push_back(ssm::testing::random({2, c.length, 4}, DType::F64, c.seed, true));
    dys.push_back(ssm::testing::random({2, c.length, 4}, DType::F64, c.seed + 1));
    for (const auto& [name, t] : m.state_dict()) in[c.name + "/" + name] = t;
    in[c.name + "/x"] = xs.back().detach();
    in[c.name + "/dy"] = dys.back();
  }
  const auto ref = ssm::testing::run_torch("mamba_mixer_ref.py", in);

  for (size_t i = 0; i < cases.size(); ++i) {
    const std::string pre = cases[i].name + "/";
    SCOPED_TRACE(cases[i].name);
    m.zero_grad();
    const Tensor y = m.forward(xs[i]);
    EXPECT_LE(rel_error(y, ref.at(pre + "y")), 1e-12);
    y.backward(dys[i]);
    EXPECT_LE(rel_error(xs[i].grad(), ref.at(pre + "grad.x")), 1e-12);
    const auto params = m.named_parameters();
    // in/x/dt/out proj weights, conv1d weight and bias, dt_proj bias, A_log, D.
    ASSERT_EQ(params.size(), 9u);
    for (const auto& p : params) {
      ASSERT_TRUE(p.tensor.grad().defined()) << p.name;
      const Tensor& expected = ref.at(pre + "grad." + p.name);
      EXPECT_GT(sum_of_squares(expected), 0) << p.name;  // the comparison is not 0 vs 0
      EXPECT_LE(rel_error(p.tensor.grad(), expected), 1e-12) << p.name;
    }
  }
}
