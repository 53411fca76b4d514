// Causal FFT convolution (ops/conv.h) and the real FFT under it (kernels/cpu/fft.h):
// against direct O(L²) sums in float64, finite differences and PyTorch.
#include <cmath>
#include <complex>
#include <numbers>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/fft.h"
#include "kernels/cpu/fft_conv.h"
#include "ssm/autograd/gradcheck.h"
#include "ssm/autograd/node.h"
#include "ssm/ops/conv.h"
#include "ssm/ops/elementwise.h"
#include "support/testing.h"
#include "support/torch_reference.h"

using namespace ssm;
using ssm::testing::random;
using ssm::testing::rel_error;

namespace {

// y[b,h,l] = Σ_{j≤l} k[h,j] · u[b,h,l−j] (+ skip[h] · u[b,h,l] when skip is defined)
Tensor reference_fft_conv(const Tensor& u, const Tensor& k, const Tensor& skip = Tensor()) {
  const int64_t B = u.size(0), H = u.size(1), L = u.size(2);
  Tensor y = Tensor::zeros({B, H, L}, DType::F64);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t l = 0; l < L; ++l) {
        double s = 0;
        for (int64_t j = 0; j <= l; ++j) s += k.at({h, j}) * u.at({b, h, l - j});
        if (skip.defined()) s += skip.at({h}) * u.at({b, h, l});
        y.set({b, h, l}, s);
      }
  return y;
}

struct Grads {
  Tensor du, dk, dskip;  // dskip undefined without a skip term
};

// Gradients of sum(gy ⊙ y) straight from the definition of y.
Grads reference_fft_conv_grads(const Tensor& u, const Tensor& k, const Tensor& gy,
                               const Tensor& skip = Tensor()) {
  const int64_t B = u.size(0), H = u.size(1), L = u.size(2);
  std::vector<double> vu = u.to_vector(), vk = k.to_vector(), vg = gy.to_vector();
  std::vector<double> vs = skip.defined() ? skip.to_vector() : std::vector<double>(H, 0.0);
  std::vector<double> gu(vu.size(), 0.0), gk(vk.size(), 0.0), gs(H, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t l = 0; l < L; ++l) {
        const int64_t i = (b * H + h) * L + l;
        const double g = vg[i];
        for (int64_t j = 0; j <= l; ++j) {
          gk[h * L + j] += g * vu[i - j];
          gu[i - j] += g * vk[h * L + j];
        }
        gu[i] += g * vs[h];
        gs[h] += g * vu[i];
      }
  return {Tensor::from_vector(gu, u.shape(), DType::F64),
          Tensor::from_vector(gk, k.shape(), DType::F64),
          skip.defined() ? Tensor::from_vector(gs, skip.shape(), DType::F64) : Tensor()};
}

struct Case {
  int64_t B, H, L;
};

}  // namespace

TEST(RealFft, MatchesDirectDftAndInverts) {
  using kernels::cpu::real_fft_plan;
  // Complex lengths N/2 = 1, 2, 7 (generic radix), 100, 1024, 3·5·7 and 4·7·11 (generic).
  for (const int64_t N : {2, 4, 14, 200, 2048, 210, 616}) {
    auto plan = real_fft_plan<double>(N);
    ASSERT_EQ(plan->spectrum_size(), N / 2 + 1);
    std::vector<double> x = random({N}, DType::F64, 60 + N).to_vector();
    std::vector<std::complex<double>> X(N / 2 + 1), scratch(plan->scratch_size());
    plan->forward(x.data(), X.data(), scratch.data());
    double err2 = 0, ref2 = 0;
    for (int64_t k = 0; k <= N / 2; ++k) {
      std::complex<double> direct = 0;
      for (int64_t n = 0; n < N; ++n)
        direct += x[n] * std::polar(1.0, -2 * std::numbers::pi * double(k * n % N) / double(N));
      err2 += std::norm(X[k] - direct);
      ref2 += std::norm(direct);
    }
    EXPECT_LT(std::sqrt(err2 / ref2), 1e-13) << "N=" << N;

    std::vector<double> back(N);
    plan->inverse_unscaled(X.data(), back.data(), N, scratch.data());
    double e2 = 0, r2 = 0;
    for (int64_t n = 0; n < N; ++n) {
      e2 += std::pow(back[n] / plan->inverse_scale() - x[n], 2);
      r2 += x[n] * x[n];
    }
    EXPECT_LT(std::sqrt(e2 / r2), 1e-14) << "N=" << N;
  }
}

TEST(RealFft, PaddedForwardAndTruncatedInverse) {
  using kernels::cpu::real_fft_plan;
  // Padding and truncation on either side of N/2, for odd, even and 4-divisible N/2.
  for (const int64_t N : {30, 256, 200}) {
    auto plan = real_fft_plan<double>(N);
    std::vector<std::complex<double>> X1(N / 2 + 1), X2(N / 2 + 1), scratch(plan->scratch_size());
    for (const int64_t nonzero :
         {int64_t{0}, int64_t{1}, int64_t{7}, N / 2 - 1, N / 2, N / 2 + 1, N - 1}) {
      std::vector<double> x = random({N}, DType::F64, 70 + nonzero).to_vector();
      std::vector<double> padded = x;
      for (int64_t n = nonzero; n < N; ++n) padded[n] = 0;
      for (int64_t n = nonzero; n < N; ++n) x[n] = std::nan("");  // must not be read
      plan->forward_padded(x.data(), nonzero, X1.data(), scratch.data());
      plan->forward(padded.data(), X2.data(), scratch.data());
      double e2 = 0, r2 = 0;
      for (int64_t k = 0; k <= N / 2; ++k) {
        e2 += std::norm(X1[k] - X2[k]);
        r2 += std::norm(X2[k]);
      }
      EXPECT_LE(std::sqrt(e2), 1e-14 * std::sqrt(r2)) << "N=" << N << " nonzero=" << nonzero;
      // Writing only the first `keep` outputs leaves the rest untouched.
      const int64_t keep = nonzero;
      std::vector<double> out(N, -7.0), full(N);
      plan->inverse_unscaled(X2.data(), full.data(), N, scratch.data());
      plan->inverse_unscaled(X2.data(), out.data(), keep, scratch.data());
      for (int64_t n = 0; n < N; ++n) {
        if (n < keep) {
          EXPECT_NEAR(out[n], full[n], 1e-12 * N) << "N=" << N << " keep=" << keep << " n=" << n;
        } else {
          EXPECT_EQ(out[n], -7.0) << "N=" << N << " keep=" << keep << " n=" << n;
        }
      }
    }
  }
}

TEST(RealFft, PlansAreCachedAndSafeFromManyThreads) {
  using kernels::cpu::real_fft_plan;
  EXPECT_EQ(real_fft_plan<float>(64).get(), real_fft_plan<float>(64).get());
  EXPECT_NE(static_cast<const void*>(real_fft_plan<float>(64).get()),
            static_cast<const void*>(real_fft_plan<double>(64).get()));
  EXPECT_SSM_ERROR(real_fft_plan<double>(7), "RealFft", "even", "7");
  std::vector<std::thread> threads;
  std::vector<const void*> seen(8);
  for (int i = 0; i < 8; ++i)
    threads.emplace_back([&seen, i] { seen[i] = real_fft_plan<double>(4242).get(); });
  for (auto& t : threads) t.join();
  for (int i = 1; i < 8; ++i) EXPECT_EQ(seen[i], seen[0]);
}

TEST(FftConv, ForwardMatchesDirectSum) {
  // Odd, prime, power-of-two and composite lengths (the transform is padded past 2L to a
  // 5-smooth length where 2L is not one, e.g. L = 7, 61, 77); the last two are large enough
  // for the threaded path.
  for (const Case c : {Case{2, 3, 1}, Case{2, 3, 7}, Case{1, 2, 100}, Case{2, 2, 128},
                       Case{1, 1, 1000}, Case{3, 2, 61}, Case{4, 110, 77}, Case{3, 24, 512}}) {
    Tensor u = random({c.B, c.H, c.L}, DType::F64, 80 + c.L);
    Tensor k = random({c.H, c.L}, DType::F64, 81 + c.L);
    EXPECT_LT(rel_error(fft_conv(u, k), reference_fft_conv(u, k)), 1e-13)
        << "B=" << c.B << " H=" << c.H << " L=" << c.L;
  }
}

TEST(FftConv, StridedInputsMatchDirectSum) {
  Tensor u = random({2, 9, 4}, DType::F64, 82).permute({0, 2, 1});  // (2, 4, 9) view
  Tensor k = random({9, 4}, DType::F64, 83).transpose(0, 1);        // (4, 9) view
  EXPECT_LT(rel_error(fft_conv(u, k), reference_fft_conv(u, k)), 1e-14);
}

TEST(FftConv, BackwardMatchesDirectSum) {
  // With few channels the b of one h are split into runs whose dk sums are added up
  // (H = 1, 2 here: single-threaded and, for (16, 2, 1100), threaded); with many channels
  // each h is one run ((5, 13, 600), (4, 110, 77), threaded).
  for (const Case c : {Case{2, 3, 7}, Case{3, 2, 100}, Case{2, 1, 1}, Case{5, 13, 600},
                       Case{4, 110, 77}, Case{16, 2, 1100}}) {
    Tensor u = random({c.B, c.H, c.L}, DType::F64, 84, true);
    Tensor k = random({c.H, c.L}, DType::F64, 85, true);
    Tensor gy = random({c.B, c.H, c.L}, DType::F64, 86);
    fft_conv(u, k).backward(gy);
    const Grads ref = reference_fft_conv_grads(u, k, gy);
    EXPECT_LT(rel_error(u.grad(), ref.du), 1e-13) << "B=" << c.B << " H=" << c.H << " L=" << c.L;
    EXPECT_LT(rel_error(k.grad(), ref.dk), 1e-13) << "B=" << c.B << " H=" << c.H << " L=" << c.L;
  }
}

TEST(FftConv, BackwardForOneInputOnly) {
  Tensor u = random({2, 3, 20}, DType::F64, 87, true);
  Tensor k = random({3, 20}, DType::F64, 88);
  Tensor gy = random({2, 3, 20}, DType::F64, 89);
  const Grads ref = reference_fft_conv_grads(u, k, gy);
  fft_conv(u, k).backward(gy);
  EXPECT_LT(rel_error(u.grad(), ref.du), 1e-13);
  EXPECT_FALSE(k.grad().defined());

  Tensor u2 = u.detach();
  Tensor k2 = k.detach().clone().requires_grad_();
  fft_conv(u2, k2).backward(gy);
  EXPECT_LT(rel_error(k2.grad(), ref.dk), 1e-13);
}

TEST(FftConv, Gradcheck) {
  for (const Case c : {Case{2, 3, 7}, Case{1, 2, 1}, Case{2, 2, 16}}) {
    Tensor u = random({c.B, c.H, c.L}, DType::F64, 90, true);
    Tensor k = random({c.H, c.L}, DType::F64, 91, true);
    auto r =
        gradcheck([](const std::vector<Tensor>& in) { return fft_conv(in[0], in[1]); }, {u, k});
    EXPECT_TRUE(r.ok) << "L=" << c.L << "\n" << r.report;
  }
}

TEST(FftConv, Float32AgreesWithFloat64) {
  Tensor u = random({4, 8, 1000}, DType::F64, 92, true);
  Tensor k = random({8, 1000}, DType::F64, 93, true);
  Tensor gy = random({4, 8, 1000}, DType::F64, 94);
  Tensor y64 = fft_conv(u, k);
  y64.backward(gy);
  Tensor u32 = u.detach().to(DType::F32).requires_grad_();
  Tensor k32 = k.detach().to(DType::F32).requires_grad_();
  Tensor y32 = fft_conv(u32, k32);
  EXPECT_EQ(y32.dtype(), DType::F32);
  y32.backward(gy.to(DType::F32));
  EXPECT_LT(rel_error(y32, y64), 1e-5);
  EXPECT_LT(rel_error(u32.grad(), u.grad()), 1e-5);
  EXPECT_LT(rel_error(k32.grad(), k.grad()), 1e-5);
}

TEST(FftConv, MatchesPyTorch) {
  if (!ssm::testing::torch_available()) GTEST_SKIP() << "python3-torch not installed";
  Tensor u = random({2, 5, 37}, DType::F64, 95, true);
  Tensor k = random({5, 37}, DType::F64, 96, true);
  Tensor gy = random({2, 5, 37}, DType::F64, 97);
  Tensor y = fft_conv(u, k);
  y.backward(gy);
  auto ref = ssm::testing::run_torch("conv_ref.py", {{"u", u}, {"k", k}, {"gy", gy}});
  EXPECT_LT(rel_error(y, ref.at("y")), 1e-12);
  EXPECT_LT(rel_error(u.grad(), ref.at("du")), 1e-12);
  EXPECT_LT(rel_error(k.grad(), ref.at("dk")), 1e-12);
}

TEST(FftConv, RejectsBadInputs) {
  Tensor u = random({2, 3, 8}, DType::F64, 98);
  Tensor k = random({3, 8}, DType::F64, 99);
  EXPECT_SSM_ERROR(fft_conv(random({3, 8}, DType::F64), k), "fft_conv", "'u'", "(B, H, L)",
                   "(3, 8)");
  EXPECT_SSM_ERROR(fft_conv(u, random({3, 7}, DType::F64)), "fft_conv", "'k'", "(3, 8)", "(3, 7)");
  EXPECT_SSM_ERROR(fft_conv(u, random({2, 3, 8}, DType::F64)), "fft_conv", "'k'", "(H, L)",
                   "(2, 3, 8)");
  EXPECT_SSM_ERROR(fft_conv(u, k.to(DType::F32)), "fft_conv", "'k'", "float64", "float32");
  EXPECT_SSM_ERROR(fft_conv(Tensor::zeros({2, 3, 8}, DType::I32), k), "fft_conv", "'u'", "int32");
}

// ---- The fused skip term: y = k * u + skip[h] · u ----

TEST(FftConv, SkipForwardMatchesDirectSum) {
  // Small, odd and threaded (B·H·L ≥ 2¹⁵: (3, 24, 512), (3, 24, 511), (4, 110, 77)) shapes.
  for (const Case c : {Case{2, 3, 1}, Case{2, 3, 7}, Case{1, 2, 100}, Case{3, 2, 61},
                       Case{4, 110, 77}, Case{3, 24, 512}, Case{3, 24, 511}}) {
    Tensor u = random({c.B, c.H, c.L}, DType::F64, 100 + c.L);
    Tensor k = random({c.H, c.L}, DType::F64, 101 + c.L);
    Tensor skip = random({c.H}, DType::F64, 102 + c.L);
    EXPECT_LT(rel_error(fft_conv(u, k, skip), reference_fft_conv(u, k, skip)), 1e-13)
        << "B=" << c.B << " H=" << c.H << " L=" << c.L;
  }
}

TEST(FftConv, SkipMatchesSeparateMulAdd) {
  // The fused term is what the layers computed before as add(fft_conv(u, k), mul(u, skip)).
  Tensor u = random({3, 24, 511}, DType::F64, 103);
  Tensor k = random({24, 511}, DType::F64, 104);
  Tensor skip = random({24}, DType::F64, 105);
  EXPECT_LT(rel_error(fft_conv(u, k, skip), add(fft_conv(u, k), mul(u, skip.unsqueeze(-1)))),
            1e-15);
}

TEST(FftConv, SkipBackwardMatchesDirectSum) {
  // (16, 2, 1100) and (3, 1, 9) split each h's batch into runs (whose dskip partials are
  // summed afterwards); the others give each h one run. (3, 24, 512), (3, 24, 511),
  // (5, 13, 600) and (16, 2, 1100) are threaded.
  for (const Case c : {Case{2, 3, 7}, Case{3, 1, 9}, Case{2, 1, 1}, Case{5, 13, 600},
                       Case{3, 24, 512}, Case{3, 24, 511}, Case{16, 2, 1100}}) {
    Tensor u = random({c.B, c.H, c.L}, DType::F64, 106, true);
    Tensor k = random({c.H, c.L}, DType::F64, 107, true);
    Tensor skip = random({c.H}, DType::F64, 108, true);
    Tensor gy = random({c.B, c.H, c.L}, DType::F64, 109);
    fft_conv(u, k, skip).backward(gy);
    const Grads ref = reference_fft_conv_grads(u, k, gy, skip);
    EXPECT_LT(rel_error(u.grad(), ref.du), 1e-13) << "B=" << c.B << " H=" << c.H << " L=" << c.L;
    EXPECT_LT(rel_error(k.grad(), ref.dk), 1e-13) << "B=" << c.B << " H=" << c.H << " L=" << c.L;
    EXPECT_LT(rel_error(skip.grad(), ref.dskip), 1e-13)
        << "B=" << c.B << " H=" << c.H << " L=" << c.L;
  }
}

TEST(FftConv, SkipBackwardForEachSubsetOfInputs) {
  // Every combination of which inputs want a gradient: the kernel then skips the transforms
  // (and the saved spectra) it does not need, e.g. only dskip wanted → no FFT at all.
  const Case c{3, 24, 511};
  const Tensor u0 = random({c.B, c.H, c.L}, DType::F64, 110);
  const Tensor k0 = random({c.H, c.L}, DType::F64, 111);
  const Tensor s0 = random({c.H}, DType::F64, 112);
  const Tensor gy = random({c.B, c.H, c.L}, DType::F64, 113);
  const Grads ref = reference_fft_conv_grads(u0, k0, gy, s0);
  for (int mask = 1; mask < 8; ++mask) {
    Tensor u = u0.clone(), k = k0.clone(), skip = s0.clone();
    if (mask & 1) u.requires_grad_();
    if (mask & 2) k.requires_grad_();
    if (mask & 4) skip.requires_grad_();
    fft_conv(u, k, skip).backward(gy);
    ASSERT_EQ(u.grad().defined(), bool(mask & 1)) << "mask=" << mask;
    ASSERT_EQ(k.grad().defined(), bool(mask & 2)) << "mask=" << mask;
    ASSERT_EQ(skip.grad().defined(), bool(mask & 4)) << "mask=" << mask;
    if (mask & 1) {
      EXPECT_LT(rel_error(u.grad(), ref.du), 1e-13) << "mask=" << mask;
    }
    if (mask & 2) {
      EXPECT_LT(rel_error(k.grad(), ref.dk), 1e-13) << "mask=" << mask;
    }
    if (mask & 4) {
      EXPECT_LT(rel_error(skip.grad(), ref.dskip), 1e-13) << "mask=" << mask;
    }
  }
}

TEST(FftConv, SkipGradientIsDeterministic) {
  // dskip is reduced from per-work-item partials in a fixed order, so repeated runs (whose
  // dynamic schedules differ) give the same bits. (16, 2, 1100) splits each h into runs.
  Tensor u = random({16, 2, 1100}, DType::F32, 114);
  Tensor k = random({2, 1100}, DType::F32, 115);
  Tensor gy = random({16, 2, 1100}, DType::F32, 116);
  std::vector<double> first;
  for (int run = 0; run < 4; ++run) {
    Tensor skip = random({2}, DType::F32, 117, true);
    fft_conv(u, k, skip).backward(gy);
    if (run == 0)
      first = skip.grad().to_vector();
    else
      EXPECT_EQ(skip.grad().to_vector(), first) << "run " << run;
  }
}

TEST(FftConv, SkipGradcheck) {
  for (const Case c : {Case{2, 3, 7}, Case{1, 2, 1}, Case{2, 2, 16}, Case{3, 1, 5}}) {
    Tensor u = random({c.B, c.H, c.L}, DType::F64, 118, true);
    Tensor k = random({c.H, c.L}, DType::F64, 119, true);
    Tensor skip = random({c.H}, DType::F64, 120, true);
    auto r = gradcheck([](const std::vector<Tensor>& in) { return fft_conv(in[0], in[1], in[2]); },
                       {u, k, skip});
    EXPECT_TRUE(r.ok) << "B=" << c.B << " H=" << c.H << " L=" << c.L << "\n" << r.report;
  }
}

TEST(FftConv, SkipFloat32AgreesWithFloat64) {
  // (4, 8, 1000) as the test without skip; (3, 24, 511): threaded with odd L.
  for (const Case c : {Case{4, 8, 1000}, Case{3, 24, 511}}) {
    Tensor u = random({c.B, c.H, c.L}, DType::F64, 121, true);
    Tensor k = random({c.H, c.L}, DType::F64, 122, true);
    Tensor skip = random({c.H}, DType::F64, 123, true);
    Tensor gy = random({c.B, c.H, c.L}, DType::F64, 124);
    Tensor y64 = fft_conv(u, k, skip);
    y64.backward(gy);
    Tensor u32 = u.detach().to(DType::F32).requires_grad_();
    Tensor k32 = k.detach().to(DType::F32).requires_grad_();
    Tensor s32 = skip.detach().to(DType::F32).requires_grad_();
    Tensor y32 = fft_conv(u32, k32, s32);
    EXPECT_EQ(y32.dtype(), DType::F32);
    y32.backward(gy.to(DType::F32));
    EXPECT_EQ(s32.grad().dtype(), DType::F32);
    EXPECT_LT(rel_error(y32, y64), 1e-5) << "L=" << c.L;
    EXPECT_LT(rel_error(u32.grad(), u.grad()), 1e-5) << "L=" << c.L;
    EXPECT_LT(rel_error(k32.grad(), k.grad()), 1e-5) << "L=" << c.L;
    EXPECT_LT(rel_error(s32.grad(), skip.grad()), 1e-5) << "L=" << c.L;
  }
}

TEST(FftConv, RejectsBadSkip) {
  Tensor u = random({2, 3, 8}, DType::F64, 125);
  Tensor k = random({3, 8}, DType::F64, 126);
  EXPECT_SSM_ERROR(fft_conv(u, k, random({4}, DType::F64)), "fft_conv", "'skip'", "(3)", "(4)");
  EXPECT_SSM_ERROR(fft_conv(u, k, random({3, 1}, DType::F64)), "fft_conv", "'skip'", "(H)",
                   "(3, 1)");
  EXPECT_SSM_ERROR(fft_conv(u, k, random({3}, DType::F32)), "fft_conv", "'skip'", "float64",
                   "float32");
  EXPECT_SSM_ERROR(fft_conv(u, k, Tensor::zeros({3}, DType::I32)), "fft_conv", "'skip'", "int32");
}

// ---- Spectra of u saved by the forward for the backward's dk ----

TEST(FftConvKernel, SavedSpectraAreTheRowTransformsAndGiveTheSameGradients) {
  namespace kc = kernels::cpu;
  // Threaded with odd L, threaded with runs split per h, and single-threaded.
  for (const Case c : {Case{3, 24, 511}, Case{16, 2, 1100}, Case{2, 3, 7}}) {
    const int64_t B = c.B, H = c.H, L = c.L, S = kc::fft_conv_spectrum_size(L);
    const std::vector<double> u = random({B, H, L}, DType::F64, 127).to_vector();
    const std::vector<double> k = random({H, L}, DType::F64, 128).to_vector();
    const std::vector<double> skip = random({H}, DType::F64, 129).to_vector();
    const std::vector<double> dy = random({B, H, L}, DType::F64, 130).to_vector();
    const size_t n = u.size();
    std::vector<double> y_plain(n), y_saving(n);
    std::vector<std::complex<double>> spectra(static_cast<size_t>(B * H * S));
    kc::fft_conv_fwd<double>(u.data(), k.data(), skip.data(), y_plain.data(), nullptr, B, H, L);
    kc::fft_conv_fwd<double>(u.data(), k.data(), skip.data(), y_saving.data(), spectra.data(), B, H,
                             L);
    const Shape shape{B, H, L};
    EXPECT_LT(rel_error(Tensor::from_vector(y_saving, shape, DType::F64),
                        Tensor::from_vector(y_plain, shape, DType::F64)),
              1e-15)
        << "L=" << L;

    // Each saved row is the rfft of that row of u, zero-padded to the transform length.
    auto plan = kc::real_fft_plan<double>(2 * (S - 1));
    std::vector<std::complex<double>> X(S), scratch(plan->scratch_size());
    double e2 = 0, r2 = 0;
    for (int64_t row = 0; row < B * H; ++row) {
      plan->forward_padded(u.data() + row * L, L, X.data(), scratch.data());
      for (int64_t s = 0; s < S; ++s) {
        e2 += std::norm(spectra[static_cast<size_t>(row * S + s)] - X[s]);
        r2 += std::norm(X[s]);
      }
    }
    EXPECT_LT(std::sqrt(e2 / r2), 1e-15) << "L=" << L;

    // The backward from the saved spectra gives the gradients of the one transforming u.
    std::vector<double> du1(n), du2(n), dk1(k.size()), dk2(k.size()), ds1(H), ds2(H);
    kc::fft_conv_bwd<double>(dy.data(), u.data(), nullptr, k.data(), skip.data(), du1.data(),
                             dk1.data(), ds1.data(), B, H, L);
    kc::fft_conv_bwd<double>(dy.data(), u.data(), spectra.data(), k.data(), skip.data(), du2.data(),
                             dk2.data(), ds2.data(), B, H, L);
    const Shape kshape{H, L}, sshape{H};
    EXPECT_LT(rel_error(Tensor::from_vector(dk2, kshape, DType::F64),
                        Tensor::from_vector(dk1, kshape, DType::F64)),
              1e-14)
        << "L=" << L;
    EXPECT_LT(rel_error(Tensor::from_vector(du2, shape, DType::F64),
                        Tensor::from_vector(du1, shape, DType::F64)),
              1e-15)
        << "L=" << L;
    EXPECT_LT(rel_error(Tensor::from_vector(ds2, sshape, DType::F64),
                        Tensor::from_vector(ds1, sshape, DType::F64)),
              1e-15)
        << "L=" << L;
  }
}

TEST(FftConv, SavedSpectraPathGivesReferenceGradients) {
  // k requiring grad makes the forward save the spectra of u; u may or may not want a
  // gradient, and the skip term may or may not be there.
  for (const Case c : {Case{3, 24, 511}, Case{16, 2, 1100}, Case{2, 3, 7}}) {
    for (const bool want_u : {false, true})
      for (const bool with_skip : {false, true}) {
        Tensor u = random({c.B, c.H, c.L}, DType::F64, 131);
        if (want_u) u.requires_grad_();
        Tensor k = random({c.H, c.L}, DType::F64, 132, true);
        Tensor skip = with_skip ? random({c.H}, DType::F64, 133) : Tensor();
        Tensor gy = random({c.B, c.H, c.L}, DType::F64, 134);
        fft_conv(u, k, skip).backward(gy);
        const Grads ref = reference_fft_conv_grads(u, k, gy, skip);
        const std::string what = "L=" + std::to_string(c.L) + " want_u=" + std::to_string(want_u) +
                                 " skip=" + std::to_string(with_skip);
        EXPECT_LT(rel_error(k.grad(), ref.dk), 1e-13) << what;
        if (want_u) {
          EXPECT_LT(rel_error(u.grad(), ref.du), 1e-13) << what;
        } else {
          EXPECT_FALSE(u.grad().defined()) << what;
        }
      }
  }
}

TEST(FftConv, NoGradForwardMatchesRecordingForward) {
  // Under NoGradGuard nothing is recorded (and no spectra are saved); the output is the same.
  Tensor u = random({3, 24, 511}, DType::F64, 135);
  Tensor k = random({24, 511}, DType::F64, 136, true);
  Tensor skip = random({24}, DType::F64, 137, true);
  Tensor recorded = fft_conv(u, k, skip);
  EXPECT_TRUE(recorded.requires_grad());
  Tensor plain;
  {
    NoGradGuard no_grad;
    plain = fft_conv(u, k, skip);
  }
  EXPECT_FALSE(plain.requires_grad());
  EXPECT_LT(rel_error(plain, recorded.detach()), 1e-15);
  EXPECT_LT(rel_error(plain, reference_fft_conv(u, k, skip)), 1e-13);
}
