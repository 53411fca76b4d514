// Cauchy sums, forward and backward (see include/ssm/kernels/cauchy.h).
//
// One OpenMP task per channel h. The loops run over the evaluation points k in vectors of
// W lanes (8 floats / 4 doubles), so nothing is reduced horizontally inside them: per chunk of
// k and per mode n the reciprocals a = 1/(z − λ_n), b = 1/(z − conj λ_n) are formed once, and
// every product vector m then costs four multiply-adds, using
//   v·a + conj(v)·b = (v_re·P1 + v_im·P2) + i·(v_re·P3 + v_im·P4),
//   P1 = a_re + b_re, P2 = b_im − a_im, P3 = a_im + b_im, P4 = a_re − b_re
// (without the conjugate half: P1 = a_re, P2 = −a_im, P3 = a_im, P4 = a_re).
//
// Backward, with gradients of complex values written as ∂ℒ/∂Re + i·∂ℒ/∂Im and G_mk = ∂ℒ/∂r_mk:
// a holomorphic term w = f(x) sends G·conj(f'(x)) to x, a term of conj(x) sends conj(G)·f'(conj x).
//   ∂ℒ/∂v_mn = Σ_k G·conj(a) + conj(G)·b = Σ_k (G_re·P1 + G_im·P3) + i·(G_im·P4 + G_re·P2)
//   ∂ℒ/∂λ_n  = Σ_k U·conj(a)² + conj(W)·b²,   ∂ℒ/∂z_k = −Σ_n U·conj(a)² + W·conj(b)²
// with U_nk = Σ_m conj(v_mn)·G_mk and W_nk = Σ_m v_mn·G_mk (r is holomorphic in z).
// Evaluation points are padded to whole vectors (copies of the last point, zero gradient).
#include "ssm/kernels/cauchy.h"

#include <algorithm>
#include <vector>

#include "kernels/cpu/simd_vec.h"

namespace ssm::kernels::cpu {

namespace {

using simd::load;
using simd::store;
using simd::Vec;

constexpr int64_t kParallelWork = int64_t{1} << 14;  // H·M·K·N below this runs on one thread

template <typename T>
struct ChannelScratch {
  int64_t padded = 0;                // K rounded up to whole vectors
  std::vector<T> z_re, z_im;         // (padded)
  std::vector<T> grad_re, grad_im;   // (M, padded), zero beyond K (backward)
  std::vector<T> recip;              // (N, 4, W): one chunk's P1..P4 or a, b per mode
  std::vector<T> acc_v, acc_lambda;  // (M, N, 2, W) and (N, 2, W) (backward)
};

// Copies z of channel h into whole vectors, repeating the last point in the padding.
template <typename T>
void pad_points(const CauchyInputs& in, int64_t h, int64_t K, ChannelScratch<T>& s) {
  constexpr int64_t W = simd::kLanes<T>;
  s.padded = (K + W - 1) / W * W;
  s.z_re.resize(s.padded);
  s.z_im.resize(s.padded);
  for (int64_t k = 0; k < s.padded; ++k) {
    const int64_t src = h * K + std::min(k, K - 1);
    s.z_re[k] = in.z_re.data<T>()[src];
    s.z_im[k] = in.z_im.data<T>()[src];
  }
}

// The reciprocals for the chunk of points at kc, for every mode: a and b (bwd) or P1..P4 (fwd).
template <typename T, bool kConj, bool kCombined>
void chunk_reciprocals(const ChannelScratch<T>& s, int64_t kc, const T* lr, const T* li, int64_t N,
                       T* out) {
  constexpr int64_t W = simd::kLanes<T>;
  const Vec<T> zr = load(s.z_re.data() + kc), zi = load(s.z_im.data() + kc);
  for (int64_t n = 0; n < N; ++n) {
    const Vec<T> dr = zr - lr[n], d1 = zi - li[n], d2 = zi + li[n];
    const Vec<T> s1 = T(1) / (dr * dr + d1 * d1), s2 = T(1) / (dr * dr + d2 * d2);
    const Vec<T> a_re = dr * s1, a_im = -d1 * s1, b_re = dr * s2, b_im = -d2 * s2;
    T* o = out + n * 4 * W;
    if constexpr (!kCombined) {
      store(o, a_re);
      store(o + W, a_im);
      store(o + 2 * W, b_re);
      store(o + 3 * W, b_im);
    } else if constexpr (kConj) {
      store(o, a_re + b_re);
      store(o + W, b_im - a_im);
      store(o + 2 * W, a_im + b_im);
      store(o + 3 * W, a_re - b_re);
    } else {
      store(o, a_re);
      store(o + W, -a_im);
      store(o + 2 * W, a_im);
      store(o + 3 * W, a_re);
    }
  }
}

// r for G product vectors m0 .. m0+G−1 on one chunk of points; accumulators stay in registers.
template <typename T, int G>
void forward_group(const T* __restrict vr, const T* __restrict vi, int64_t N, const T* recip,
                   Vec<T> (&acc_re)[4], Vec<T> (&acc_im)[4]) {
  constexpr int64_t W = simd::kLanes<T>;
  for (int j = 0; j < G; ++j) acc_re[j] = acc_im[j] = Vec<T>{};
  for (int64_t n = 0; n < N; ++n) {
    const T* p = recip + n * 4 * W;
    const Vec<T> p1 = load(p), p2 = load(p + W), p3 = load(p + 2 * W), p4 = load(p + 3 * W);
#pragma GCC unroll 4
    for (int j = 0; j < G; ++j) {
      const T a = vr[j * N + n], b = vi[j * N + n];
      acc_re[j] += a * p1 + b * p2;
      acc_im[j] += a * p3 + b * p4;
    }
  }
}

template <typename T, bool kConj>
void forward_channel(const CauchyInputs& in, int64_t h, int64_t M, int64_t N, int64_t K,
                     ChannelScratch<T>& s, T* __restrict out_re, T* __restrict out_im) {
  constexpr int64_t W = simd::kLanes<T>;
  pad_points(in, h, K, s);
  s.recip.resize(N * 4 * W);
  const T* lr = in.lambda_re.data<T>() + h * N;
  const T* li = in.lambda_im.data<T>() + h * N;
  const T* vr = in.v_re.data<T>() + h * M * N;
  const T* vi = in.v_im.data<T>() + h * M * N;
  for (int64_t kc = 0; kc < s.padded; kc += W) {
    chunk_reciprocals<T, kConj, true>(s, kc, lr, li, N, s.recip.data());
    for (int64_t m0 = 0; m0 < M; m0 += 4) {
      const int64_t group = std::min<int64_t>(4, M - m0);
      Vec<T> acc_re[4], acc_im[4];
      const T *gvr = vr + m0 * N, *gvi = vi + m0 * N;
      switch (group) {
        case 1:
          forward_group<T, 1>(gvr, gvi, N, s.recip.data(), acc_re, acc_im);
          break;
        case 2:
          forward_group<T, 2>(gvr, gvi, N, s.recip.data(), acc_re, acc_im);
          break;
        case 3:
          forward_group<T, 3>(gvr, gvi, N, s.recip.data(), acc_re, acc_im);
          break;
        default:
          forward_group<T, 4>(gvr, gvi, N, s.recip.data(), acc_re, acc_im);
          break;
      }
      const int64_t keep = std::min(W, K - kc);
      for (int64_t j = 0; j < group; ++j)
        for (int64_t lane = 0; lane < keep; ++lane) {
          out_re[(h * M + m0 + j) * K + kc + lane] = acc_re[j][lane];
          out_im[(h * M + m0 + j) * K + kc + lane] = acc_im[j][lane];
        }
    }
  }
}

template <typename T, bool kConj>
void backward_channel(const CauchyInputs& in, const T* grad_re, const T* grad_im, int64_t h,
                      int64_t M, int64_t N, int64_t K, ChannelScratch<T>& s,
                      const CauchyGrads& out) {
  constexpr int64_t W = simd::kLanes<T>;
  pad_points(in, h, K, s);
  const int64_t Kp = s.padded;
  s.grad_re.assign(M * Kp, T(0));
  s.grad_im.assign(M * Kp, T(0));
  for (int64_t m = 0; m < M; ++m)
    for (int64_t k = 0; k < K; ++k) {
      s.grad_re[m * Kp + k] = grad_re[(h * M + m) * K + k];
      s.grad_im[m * Kp + k] = grad_im[(h * M + m) * K + k];
    }
  s.recip.resize(N * 4 * W);
  s.acc_v.assign(M * N * 2 * W, T(0));
  s.acc_lambda.assign(N * 2 * W, T(0));
  const T* lr = in.lambda_re.data<T>() + h * N;
  const T* li = in.lambda_im.data<T>() + h * N;
  const T* vr = in.v_re.data<T>() + h * M * N;
  const T* vi = in.v_im.data<T>() + h * M * N;
  for (int64_t kc = 0; kc < Kp; kc += W) {
    chunk_reciprocals<T, kConj, false>(s, kc, lr, li, N, s.recip.data());
    Vec<T> gz_re{}, gz_im{};
    for (int64_t n = 0; n < N; ++n) {
      const T* rp = s.recip.data() + n * 4 * W;
      const Vec<T> a_re = load(rp), a_im = load(rp + W);
      Vec<T> b_re{}, b_im{}, p1 = a_re, p2 = -a_im, p3 = a_im, p4 = a_re;
      if constexpr (kConj) {
        b_re = load(rp + 2 * W);
        b_im = load(rp + 3 * W);
        p1 = a_re + b_re;
        p2 = b_im - a_im;
        p3 = a_im + b_im;
        p4 = a_re - b_re;
      }
      // S1 = Σ v_re G_re, S2 = Σ v_im G_im, S3 = Σ v_re G_im, S4 = Σ v_im G_re over m.
      Vec<T> S1{}, S2{}, S3{}, S4{};
      for (int64_t m = 0; m < M; ++m) {
        const Vec<T> Gr = load(s.grad_re.data() + m * Kp + kc);
        const Vec<T> Gi = load(s.grad_im.data() + m * Kp + kc);
        const T a = vr[m * N + n], b = vi[m * N + n];
        S1 += a * Gr;
        S2 += b * Gi;
        S3 += a * Gi;
        S4 += b * Gr;
        T* av = s.acc_v.data() + (m * N + n) * 2 * W;
        store(av, load(av) + Gr * p1 + Gi * p3);
        store(av + W, load(av + W) + Gi * p4 + Gr * p2);
      }
      const Vec<T> U_re = S1 + S2, U_im = S3 - S4;
      // conj(a)² = (a_re² − a_im², −2·a_re·a_im)
      const Vec<T> ca2_re = a_re * a_re - a_im * a_im, ca2_im = T(-2) * a_re * a_im;
      Vec<T> tl_re = U_re * ca2_re - U_im * ca2_im, tl_im = U_re * ca2_im + U_im * ca2_re;
      Vec<T> tz_re = tl_re, tz_im = tl_im;
      if constexpr (kConj) {
        const Vec<T> W_re = S1 - S2, W_im = S3 + S4;
        const Vec<T> b2_re = b_re * b_re - b_im * b_im, b2_im = T(2) * b_re * b_im;  // b²
        // λ: + conj(W)·b²;  z: + W·conj(b²)
        tl_re += W_re * b2_re + W_im * b2_im;
        tl_im += W_re * b2_im - W_im * b2_re;
        tz_re += W_re * b2_re + W_im * b2_im;
        tz_im += W_im * b2_re - W_re * b2_im;
      }
      T* al = s.acc_lambda.data() + n * 2 * W;
      store(al, load(al) + tl_re);
      store(al + W, load(al + W) + tl_im);
      gz_re -= tz_re;
      gz_im -= tz_im;
    }
    const int64_t keep = std::min(W, K - kc);
    for (int64_t lane = 0; lane < keep; ++lane) {
      out.z_re.data<T>()[h * K + kc + lane] = gz_re[lane];
      out.z_im.data<T>()[h * K + kc + lane] = gz_im[lane];
    }
  }
  for (int64_t i = 0; i < M * N; ++i) {
    out.v_re.data<T>()[h * M * N + i] = simd::sum_lanes<T>(load(s.acc_v.data() + i * 2 * W));
    out.v_im.data<T>()[h * M * N + i] = simd::sum_lanes<T>(load(s.acc_v.data() + i * 2 * W + W));
  }
  for (int64_t n = 0; n < N; ++n) {
    out.lambda_re.data<T>()[h * N + n] = simd::sum_lanes<T>(load(s.acc_lambda.data() + n * 2 * W));
    out.lambda_im.data<T>()[h * N + n] =
        simd::sum_lanes<T>(load(s.acc_lambda.data() + n * 2 * W + W));
  }
}

template <typename T>
void forward_all(const CauchyInputs& in, int64_t H, int64_t M, int64_t N, int64_t K,
                 const CauchyOutput& out) {
  T* re = out.re.data<T>();
  T* im = out.im.data<T>();
#pragma omp parallel if (H * M * N * K >= kParallelWork)
  {
    ChannelScratch<T> scratch;
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      if (in.conjugate_pairs)
        forward_channel<T, true>(in, h, M, N, K, scratch, re, im);
      else
        forward_channel<T, false>(in, h, M, N, K, scratch, re, im);
    }
  }
}

template <typename T>
void backward_all(const CauchyInputs& in, const T* grad_re, const T* grad_im, int64_t H, int64_t M,
                  int64_t N, int64_t K, const CauchyGrads& out) {
#pragma omp parallel if (H * M * N * K >= kParallelWork)
  {
    ChannelScratch<T> scratch;
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      if (in.conjugate_pairs)
        backward_channel<T, true>(in, grad_re, grad_im, h, M, N, K, scratch, out);
      else
        backward_channel<T, false>(in, grad_re, grad_im, h, M, N, K, scratch, out);
    }
  }
}

}  // namespace

void check_cauchy_inputs(const CauchyInputs& in, const char* op) {
  const std::pair<const Tensor*, const char*> all[] = {
      {&in.v_re, "v_re"},           {&in.v_im, "v_im"}, {&in.lambda_re, "lambda_re"},
      {&in.lambda_im, "lambda_im"}, {&in.z_re, "z_re"}, {&in.z_im, "z_im"}};
  for (auto [t, name] : all) {
    SSM_CHECK(t->defined(), "{}: argument '{}' is undefined", op, name);
    SSM_CHECK(is_floating(t->dtype()) && t->dtype() == in.v_re.dtype(),
              "{}: argument '{}' expected dtype {} (that of v_re, float32 or float64), got {}", op,
              name, dtype_name(in.v_re.dtype()), dtype_name(t->dtype()));
  }
  SSM_CHECK(in.v_re.dim() == 3, "{}: argument 'v_re' expected shape (H, M, N), got {}", op,
            shape_str(in.v_re.shape()));
  const int64_t H = in.v_re.size(0), N = in.v_re.size(2);
  SSM_CHECK(in.v_im.shape() == in.v_re.shape(),
            "{}: argument 'v_im' expected shape {} like v_re, got {}", op,
            shape_str(in.v_re.shape()), shape_str(in.v_im.shape()));
  for (auto [t, name] : {all[2], all[3]})
    SSM_CHECK(t->shape() == Shape({H, N}), "{}: argument '{}' expected shape (H, N) = {}, got {}",
              op, name, shape_str({H, N}), shape_str(t->shape()));
  SSM_CHECK(in.z_re.dim() == 2 && in.z_re.size(0) == H,
            "{}: argument 'z_re' expected shape (H, K) with H = {}, got {}", op, H,
            shape_str(in.z_re.shape()));
  SSM_CHECK(in.z_im.shape() == in.z_re.shape(),
            "{}: argument 'z_im' expected shape {} like z_re, got {}", op,
            shape_str(in.z_re.shape()), shape_str(in.z_im.shape()));
}

CauchyOutput cauchy_fwd(const CauchyInputs& in) {
  const int64_t H = in.v_re.size(0), M = in.v_re.size(1), N = in.v_re.size(2), K = in.z_re.size(1);
  CauchyOutput out{Tensor::empty({H, M, K}, in.v_re.dtype()),
                   Tensor::empty({H, M, K}, in.v_re.dtype())};
  SSM_DISPATCH_FLOAT(in.v_re.dtype(), "cauchy_fwd",
                     [&] { forward_all<scalar_t>(in, H, M, N, K, out); });
  return out;
}

CauchyGrads cauchy_bwd(const CauchyInputs& in, const Tensor& grad_re, const Tensor& grad_im) {
  const int64_t H = in.v_re.size(0), M = in.v_re.size(1), N = in.v_re.size(2), K = in.z_re.size(1);
  for (const Tensor* g : {&grad_re, &grad_im})
    SSM_CHECK(g->is_contiguous() && g->dtype() == in.v_re.dtype() && g->shape() == Shape({H, M, K}),
              "cauchy_bwd: gradient expected contiguous {} {}, got {} {}",
              dtype_name(in.v_re.dtype()), shape_str({H, M, K}), dtype_name(g->dtype()),
              shape_str(g->shape()));
  const DType dt = in.v_re.dtype();
  CauchyGrads out{Tensor::empty({H, M, N}, dt), Tensor::empty({H, M, N}, dt),
                  Tensor::empty({H, N}, dt),    Tensor::empty({H, N}, dt),
                  Tensor::empty({H, K}, dt),    Tensor::empty({H, K}, dt)};
  SSM_DISPATCH_FLOAT(dt, "cauchy_bwd", [&] {
    backward_all<scalar_t>(in, grad_re.data<scalar_t>(), grad_im.data<scalar_t>(), H, M, N, K, out);
  });
  return out;
}

}  // namespace ssm::kernels::cpu
