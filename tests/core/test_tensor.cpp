#include <functional>
#include <utility>

#include "ssm/autograd/gradcheck.h"
#include "ssm/autograd/node.h"
#include "ssm/core/tensor.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/reduce.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::random;
using ssm::testing::rel_error;

TEST(Tensor, StorageIs64ByteAligned) {
  for (int n : {1, 3, 17, 1000}) {
    Tensor t = Tensor::empty({n}, DType::F32);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);
  }
}

TEST(Tensor, FromVectorAndAt) {
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::F64);
  EXPECT_EQ(t.at({1, 2}), 6);
  EXPECT_EQ(t.at({0, 1}), 2);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t.numel(), 6);
}

TEST(Tensor, TransposeIsAViewAndContiguousCopies) {
  Tensor t = Tensor::from_vector({1, 2, 3, 4, 5, 6}, {2, 3}, DType::F32);
  Tensor tt = t.transpose(0, 1);
  EXPECT_EQ(tt.shape(), (Shape{3, 2}));
  EXPECT_FALSE(tt.is_contiguous());
  EXPECT_EQ(tt.storage().get(), t.storage().get());
  EXPECT_EQ(tt.at({2, 1}), 6);
  Tensor c = tt.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.to_vector(), (std::vector<double>{1, 4, 2, 5, 3, 6}));
  t.set({0, 0}, 42);  // views see writes to the base
  EXPECT_EQ(tt.at({0, 0}), 42);
}

TEST(Tensor, NarrowSelectExpandPermute) {
  Tensor t = random({2, 3, 4});
  Tensor n = t.narrow(2, 1, 2);
  EXPECT_EQ(n.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(n.at({1, 2, 1}), t.at({1, 2, 2}));
  Tensor s = t.select(1, 2);
  EXPECT_EQ(s.shape(), (Shape{2, 4}));
  EXPECT_EQ(s.at({1, 3}), t.at({1, 2, 3}));
  Tensor e = Tensor::from_vector({1, 2, 3}, {3, 1}).expand({2, 3, 4});
  EXPECT_EQ(e.at({1, 2, 3}), 3);
  EXPECT_EQ(e.strides()[0], 0);
  Tensor p = t.permute({2, 0, 1});
  EXPECT_EQ(p.shape(), (Shape{4, 2, 3}));
  EXPECT_EQ(p.at({3, 1, 2}), t.at({1, 2, 3}));
}

TEST(Tensor, ReshapeOfNonContiguousCopies) {
  Tensor t = random({3, 4});
  Tensor r = t.transpose(0, 1).reshape({12});
  EXPECT_EQ(r.at({1}), t.at({1, 0}));
  EXPECT_EQ(t.reshape({2, -1}).shape(), (Shape{2, 6}));
}

TEST(Tensor, ReshapeOfContiguousIsAView) {
  Tensor t = random({3, 4});
  Tensor r = t.reshape({2, 6});
  EXPECT_EQ(r.storage(), t.storage());  // no copy
  r.set({1, 5}, 42.0);
  EXPECT_EQ(t.at({2, 3}), 42.0);  // writes go through to the original
}

// Every view op records a node; its backward is checked against finite differences.
TEST(Tensor, ViewOpsGradcheck) {
  Tensor x = random({2, 3, 4}, DType::F64, 31, true);
  Tensor w = random({4, 2, 3}, DType::F64, 32);  // a weighted sum makes each element matter
  const auto weighted = [&](const Tensor& v, const Shape& shape) {
    return sum_all(mul(v.contiguous(), random(shape, DType::F64, 33)));
  };
  const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> ops = {
      {"permute",
       [&](const Tensor& v) {
         return sum_all(mul(v.permute({2, 0, 1}), w));
       }},
      {"transpose",
       [&](const Tensor& v) {
         return weighted(v.transpose(0, 2), {4, 3, 2});
       }},
      {"narrow",
       [&](const Tensor& v) {
         return weighted(v.narrow(2, 1, 2), {2, 3, 2});
       }},
      {"select",
       [&](const Tensor& v) {
         return weighted(v.select(1, 2), {2, 4});
       }},
      {"reshape",
       [&](const Tensor& v) {
         return weighted(v.reshape({6, 4}), {6, 4});
       }},
      {"expand", [&](const Tensor& v) {
         return weighted(v.narrow(1, 0, 1).expand({2, 5, 4}), {2, 5, 4});
       }}};
  for (const auto& [name, op] : ops) {
    auto r = gradcheck([&](const std::vector<Tensor>& in) { return op(in[0]); }, {x});
    EXPECT_TRUE(r.ok) << name << "\n" << r.report;
  }
}

TEST(Tensor, PrintsShapeDtypeAndValues) {
  Tensor t = Tensor::from_vector({1.5, -2, 3}, {3, 1}, DType::F64);
  const std::string s = t.to_string();
  EXPECT_NE(s.find("(3, 1)"), std::string::npos) << s;
  EXPECT_NE(s.find("float64"), std::string::npos) << s;
  EXPECT_NE(s.find("1.5, -2, 3"), std::string::npos) << s;
  EXPECT_NE(random({40}).to_string().find("..."), std::string::npos);  // long tensors elided
}

TEST(Tensor, BadInputsThrowNamedErrors) {
  Tensor t = random({2, 3});
  EXPECT_SSM_ERROR(t.view({4, 2}), "view", "(4, 2)", "(2, 3)");
  EXPECT_SSM_ERROR(t.narrow(1, 2, 2), "narrow", "[2, 4)");
  EXPECT_SSM_ERROR(t.permute({0, 0}), "permute", "dimension 0 repeated");
  EXPECT_SSM_ERROR(t.permute({0, 1, 2}), "permute", "3 dims", "2-d");
  EXPECT_SSM_ERROR(t.expand({3, 3}), "expand", "(2, 3)", "(3, 3)");
  EXPECT_SSM_ERROR(t.size(5), "dimension 5");
  EXPECT_SSM_ERROR(Tensor().shape(), "undefined");
  EXPECT_SSM_ERROR(t.data<float>(), "float64", "float32");
  EXPECT_SSM_ERROR(Tensor::from_vector({1, 2}, {3}), "2 values", "(3)");
}

TEST(Tensor, DtypeConversionRoundTrip) {
  Tensor t = random({5}, DType::F64);
  Tensor f = t.to(DType::F32).to(DType::F64);
  EXPECT_LT(rel_error(f, t), 1e-7);
  Tensor i = Tensor::from_vector({1, 2, 3}, {3}, DType::I64);
  EXPECT_EQ(i.to(DType::F32).at({2}), 3.0f);
}

TEST(Tensor, FlipIsANegativeStrideViewWithGradient) {
  Tensor t = random({2, 5}, DType::F64, 21, true);
  Tensor f = t.flip(1);
  EXPECT_EQ(f.storage().get(), t.storage().get());
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 5; ++j) EXPECT_EQ(f.at({i, j}), t.at({i, 4 - j}));
  Tensor c = f.contiguous();
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_EQ(c.at({1, 0}), t.at({1, 4}));
  Tensor w = random({2, 5}, DType::F64, 22);
  f.contiguous().backward(w);
  for (int i = 0; i < 2; ++i)
    for (int j = 0; j < 5; ++j) EXPECT_EQ(t.grad().at({i, j}), w.at({i, 4 - j}));
}
