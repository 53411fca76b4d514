// Mamba-3 (SISO) mixer vs PyTorch: the output of the parallel (training) forward and the
// gradients of the input and of every parameter, against torch autograd through the equations
// (DESIGN §5, the parameterisation in ssm/nn/mamba3.h; tests/python/mamba3_mixer_ref.py, a
// sequential recurrence), in float64.
#include <memory>
#include <string>
#include <vector>

#include "ssm/nn/mamba3.h"
#include "ssm/ops/elementwise.h"
#include "support/perturb.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using namespace ssm::nn;
using ssm::testing::rel_error;

namespace {

Mamba3Options tiny_options() {
  Mamba3Options o;
  o.d_model = 4;
  o.d_state = 8;   // rope_fraction 0.5: S = 2 angles turn entries 0..3, entries 4..7 do not
  o.expand = 2;    // D_inner = 8
  o.head_dim = 2;  // H = 4
  o.n_groups = 2;  // heads 0, 1 read group 0; heads 2, 3 group 1
  o.chunk_size = 4;
  return o;
}

double sum_of_squares(const Tensor& t) {
  double s = 0;
  for (double v : t.to_vector()) s += v * v;
  return s;
}

struct Case {
  std::string name;
  Mamba3Options options;
  std::unique_ptr<Mamba3Mixer> mixer;
  Tensor x, dy;
};

}  // namespace

TEST(Mamba3Mixer, MatchesTorchForwardAndAutograd) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  // Half the state rotating in two groups, and all of it in one group. L = 11 with chunks of 4:
  // the backward recomputes from saved chunk-start states, the last chunk partial.
  std::vector<Case> cases(2);
  cases[0].name = "half_rope";
  cases[0].options = tiny_options();
  cases[1].name = "full_rope";
  cases[1].options = tiny_options();
  cases[1].options.rope_fraction = 1.0;
  cases[1].options.n_groups = 1;
  std::map<std::string, Tensor> in;
  uint64_t seed = 17;
  for (Case& c : cases) {
    Generator g(seed);
    c.mixer = std::make_unique<Mamba3Mixer>(c.options, g, DType::F64);
    ssm::testing::perturb_parameters(*c.mixer, seed + 1, 0.3);
    c.x = ssm::testing::random({2, 11, 4}, DType::F64, seed + 2, true);
    c.dy = ssm::testing::random({2, 11, 4}, DType::F64, seed + 3);
    seed += 10;
    const std::string pre = c.name + "/";
    for (const auto& [name, t] : c.mixer->state_dict()) in[pre + name] = t;
    in[pre + "x"] = c.x.detach();
    in[pre + "dy"] = c.dy;
    in[pre + "n_groups"] = Tensor::scalar(static_cast<double>(c.options.n_groups), DType::F64);
    in[pre + "eps"] = Tensor::scalar(c.options.norm_eps, DType::F64);
    in[pre + "A_floor"] = Tensor::scalar(c.options.A_floor, DType::F64);
  }
  const auto ref = ssm::testing::run_torch("mamba3_mixer_ref.py", in);

  for (Case& c : cases) {
    const std::string pre = c.name + "/";
    SCOPED_TRACE(c.name);
    const Tensor y = c.mixer->forward(c.x);
    EXPECT_LE(rel_error(y, ref.at(pre + "y")), 1e-12);
    y.backward(c.dy);
    EXPECT_LE(rel_error(c.x.grad(), ref.at(pre + "grad.x")), 1e-12);
    const auto params = c.mixer->named_parameters();
    // in/out proj, dt_bias, B_bias, C_bias, B_norm and C_norm weights, D.
    ASSERT_EQ(params.size(), 8u);
    for (const auto& p : params) {
      ASSERT_TRUE(p.tensor.grad().defined()) << p.name;
      const Tensor& expected = ref.at(pre + "grad." + p.name);
      EXPECT_GT(sum_of_squares(expected), 0) << p.name;  // the comparison is not 0 vs 0
      EXPECT_LE(rel_error(p.tensor.grad(), expected), 1e-12) << p.name;
    }
  }
}
