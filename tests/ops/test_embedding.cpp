// embedding: gather forward and scatter-add backward against plain loops and finite
// differences.
#include "ssm/autograd/gradcheck.h"
#include "ssm/ops/embedding.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::random;
using ssm::testing::rel_error;

namespace {

std::vector<int64_t> random_ids(int64_t n, int64_t V, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> ids(n);
  for (auto& id : ids) id = static_cast<int64_t>(g.below(V));
  return ids;
}

Tensor naive_embedding(const std::vector<int64_t>& ids, const Shape& id_shape, const Tensor& w) {
  const int64_t D = w.size(1);
  std::vector<double> out;
  for (int64_t id : ids)
    for (int64_t d = 0; d < D; ++d) out.push_back(w.at({id, d}));
  Shape shape = id_shape;
  shape.push_back(D);
  return Tensor::from_vector(out, shape, DType::F64);
}

// dW[v] = Σ over positions i with ids[i] == v of dy[i].
Tensor naive_weight_grad(const std::vector<int64_t>& ids, const Tensor& dy, int64_t V) {
  const int64_t D = dy.size(-1);
  const std::vector<double> G = dy.to_vector();
  std::vector<double> out(V * D, 0.0);
  for (size_t i = 0; i < ids.size(); ++i)
    for (int64_t d = 0; d < D; ++d) out[ids[i] * D + d] += G[i * D + d];
  return Tensor::from_vector(out, {V, D}, DType::F64);
}

}  // namespace

TEST(Embedding, GathersRowsForInt32AndInt64Ids) {
  Tensor w = random({10, 6}, DType::F64, 1);
  const std::vector<int64_t> ids = random_ids(12, 10, 2);
  Tensor i64 = Tensor::from_data<int64_t>(ids, {3, 4});
  Tensor i32 = Tensor::from_data<int32_t>(std::vector<int32_t>(ids.begin(), ids.end()), {3, 4});
  EXPECT_EQ(shape_str(embedding(i64, w).shape()), "(3, 4, 6)");
  EXPECT_EQ(rel_error(embedding(i64, w), naive_embedding(ids, {3, 4}, w)), 0.0);
  EXPECT_EQ(rel_error(embedding(i32, w), naive_embedding(ids, {3, 4}, w)), 0.0);
  Tensor w32 = w.to(DType::F32);
  EXPECT_EQ(embedding(i32, w32).dtype(), DType::F32);
  EXPECT_EQ(rel_error(embedding(i32, w32), naive_embedding(ids, {3, 4}, w32)), 0.0);
}

TEST(Embedding, GradientScatterAddsRepeatedIds) {
  Tensor w = random({5, 3}, DType::F64, 3, true);
  const std::vector<int64_t> ids = {4, 1, 4, 4, 0, 1};
  Tensor dy = random({2, 3, 3}, DType::F64, 4);
  embedding(Tensor::from_data<int64_t>(ids, {2, 3}), w).backward(dy);
  EXPECT_LT(rel_error(w.grad(), naive_weight_grad(ids, dy, 5)), 1e-15);
  for (int64_t d = 0; d < 3; ++d) EXPECT_EQ(w.grad().at({2, d}), 0.0);  // id 2 unused
}

TEST(Embedding, GradientMatchesFiniteDifferences) {
  Tensor ids = Tensor::from_data<int32_t>({2, 0, 2, 3, 2}, {5});
  auto f = [&](const std::vector<Tensor>& in) { return embedding(ids, in[0]); };
  const GradcheckResult r = gradcheck(f, {random({4, 3}, DType::F64, 5, true)});
  EXPECT_TRUE(r.ok) << r.report;
}

TEST(Embedding, ThreadedScatterMatchesNaive) {
  const int64_t V = 37, D = 64;
  const std::vector<int64_t> ids = random_ids(4096, V, 6);  // 4096 · 64 values: threaded path
  Tensor w = random({V, D}, DType::F32, 7, true);
  Tensor dy = random({64, 64, D}, DType::F32, 8);
  Tensor y = embedding(Tensor::from_data<int64_t>(ids, {64, 64}), w);
  EXPECT_EQ(rel_error(y, naive_embedding(ids, {64, 64}, w)), 0.0);
  y.backward(dy);
  EXPECT_LT(rel_error(w.grad(), naive_weight_grad(ids, dy, V)), 1e-6);
}

TEST(Embedding, RejectsBadInputs) {
  Tensor w = random({10, 4}, DType::F64, 9);
  EXPECT_SSM_ERROR(embedding(Tensor::from_data<int64_t>({1, 10, 2}, {3}), w), "embedding", "'ids'",
                   "id 10", "index 1", "V = 10");
  EXPECT_SSM_ERROR(embedding(Tensor::from_data<int32_t>({-1}, {1}), w), "embedding", "'ids'",
                   "id -1", "index 0");
  EXPECT_SSM_ERROR(embedding(random({3}, DType::F64, 10), w), "embedding", "'ids'", "float64");
  EXPECT_SSM_ERROR(embedding(Tensor::from_data<int64_t>({1}, {1}), random({10}, DType::F64, 11)),
                   "embedding", "'weight'", "(V, D)", "(10)");
}
