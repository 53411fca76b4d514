// Products with a single row (M = 1) or column (N = 1) go through GEMV instead of GEMM
// (kernels/cpu/gemm.cpp): every operand layout, accumulation, uninitialised outputs, and the
// decode-step linear, against plain float64 loops.
#include <cmath>
#include <limits>

#include "kernels/cpu/gemm.h"
#include "ssm/autograd/gradcheck.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/linear.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::random;
using ssm::testing::rel_error;

namespace {

// c[i, j] = Σ_k a[i, k] · b[k, j] for 2-d tensors, in float64.
Tensor naive_matmul(const Tensor& a, const Tensor& b) {
  const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
  std::vector<double> C(M * N, 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += a.at({i, k}) * b.at({k, j});
      C[i * N + j] = s;
    }
  return Tensor::from_vector(C, {M, N}, DType::F64);
}

// The operand (rows, cols) stored row-major; or transposed: a transposed view of the first
// rows columns of a (cols, rows + 2) matrix (column stride rows + 2, so even a single row
// reaches BLAS as a transposed operand); or padded: a row-major view with a leading
// dimension larger than its width.
enum class Layout { RowMajor, Transposed, Padded };

Tensor make(int64_t rows, int64_t cols, Layout layout, DType dtype, uint64_t seed) {
  switch (layout) {
    case Layout::RowMajor:
      return random({rows, cols}, dtype, seed);
    case Layout::Transposed:
      return random({cols, rows + 2}, dtype, seed).narrow(1, 0, rows).transpose(0, 1);
    case Layout::Padded:
      return random({rows, cols + 3}, dtype, seed).narrow(1, 1, cols);
  }
  return {};
}

}  // namespace

TEST(MatmulVector, RowTimesMatrixInEveryLayout) {
  const Layout layouts[] = {Layout::RowMajor, Layout::Transposed, Layout::Padded};
  uint64_t seed = 1;
  for (Layout la : layouts)
    for (Layout lb : layouts) {
      const Tensor a = make(1, 37, la, DType::F64, seed++),
                   b = make(37, 19, lb, DType::F64, seed++);
      EXPECT_LT(rel_error(matmul(a, b), naive_matmul(a, b)), 1e-13)
          << "a layout " << static_cast<int>(la) << ", b layout " << static_cast<int>(lb);
    }
}

TEST(MatmulVector, MatrixTimesColumnInEveryLayout) {
  const Layout layouts[] = {Layout::RowMajor, Layout::Transposed, Layout::Padded};
  uint64_t seed = 20;
  for (Layout la : layouts)
    for (Layout lb : layouts) {
      const Tensor a = make(23, 41, la, DType::F64, seed++),
                   b = make(41, 1, lb, DType::F64, seed++);
      EXPECT_LT(rel_error(matmul(a, b), naive_matmul(a, b)), 1e-13)
          << "a layout " << static_cast<int>(la) << ", b layout " << static_cast<int>(lb);
    }
  // 1 × 1 output: both special cases at once.
  const Tensor r = random({1, 9}, DType::F64, 40), c = random({9, 1}, DType::F64, 41);
  EXPECT_LT(rel_error(matmul(r, c), naive_matmul(r, c)), 1e-13);
}

TEST(MatmulVector, OverwritesAnUninitialisedOutputAndAccumulatesWhenAsked) {
  const Tensor a = random({1, 16}, DType::F64, 50), b = random({16, 8}, DType::F64, 51);
  const Tensor col = random({8, 16}, DType::F64, 52), vec = random({16, 1}, DType::F64, 53);
  // Garbage (NaN) in the output must not leak through beta = 0.
  Tensor c = Tensor::full({1, 8}, std::numeric_limits<double>::quiet_NaN(), DType::F64);
  cpu::batched_matmul_into(a, b, c, /*accumulate=*/false);
  EXPECT_LT(rel_error(c, naive_matmul(a, b)), 1e-13);
  Tensor cc = Tensor::full({8, 1}, std::numeric_limits<double>::quiet_NaN(), DType::F64);
  cpu::batched_matmul_into(col, vec, cc, false);
  EXPECT_LT(rel_error(cc, naive_matmul(col, vec)), 1e-13);
  // accumulate: c += a · b (twice the product on top of the first result).
  cpu::batched_matmul_into(a, b, c, /*accumulate=*/true);
  EXPECT_LT(rel_error(c, naive_matmul(a, b) * 2.0), 1e-13);
  cpu::batched_matmul_into(col, vec, cc, true);
  EXPECT_LT(rel_error(cc, naive_matmul(col, vec) * 2.0), 1e-13);
}

TEST(MatmulVector, DecodeStepLinearInFloat32) {
  // x (1, in) · Wᵀ as in a decode step, big enough to run on several threads; in = 100 leaves
  // a remainder after the vectorised blocks.
  for (int64_t in : {256, 100}) {
    const Tensor x = random({1, in}, DType::F32, 60), w = random({1024, in}, DType::F32, 61);
    const Tensor y = linear(x, w);
    const Tensor ref = naive_matmul(x.to(DType::F64), w.to(DType::F64).transpose(0, 1));
    EXPECT_LT(rel_error(y.to(DType::F64), ref), 1e-6) << "in = " << in;
  }
}

TEST(MatmulVector, GradientsOfSingleRowProductsMatchFiniteDifferences) {
  // The backward of x (1, K) · W: dW = xᵀ · dy is an outer product (K = 1 GEMM), dx = dy · Wᵀ
  // a single-row product again.
  const Tensor x = random({1, 5}, DType::F64, 70, true), w = random({4, 5}, DType::F64, 71, true);
  const GradcheckResult r =
      gradcheck([](const std::vector<Tensor>& in) { return linear(in[0], in[1]); }, {x, w});
  EXPECT_TRUE(r.ok) << r.report;
}
