// Cauchy sums, forward and backward (see include/ssm/kernels/cauchy.h).
//
// Per channel h (one OpenMP task each) and evaluation point z_k, the reciprocals
// 1/(z_k − λ_n) and 1/(z_k − conj λ_n) are formed once into real/imaginary arrays and reused
// by all M vectors; the loops over n are contiguous and vectorise.
//
// Backward, with gradients of complex values written as ∂ℒ/∂Re + i·∂ℒ/∂Im and G = ∂ℒ/∂r_mk:
// a holomorphic term w = f(x) sends G·conj(f'(x)) to x; a term of conj(x), w = f(conj x),
// sends conj(G)·f'(conj x). With a = 1/(z − λ), b = 1/(z − conj λ):
//   ∂ℒ/∂v_mn += t1 + t2,                  t1 = G·conj(a),  t2 = conj(G)·b
//   ∂ℒ/∂λ_n  += X + Y,                    X = t1·conj(a·v), Y = t2·b·conj(v)
//   ∂ℒ/∂z_k  −= Σ_n (X + conj(Y))        (r is holomorphic in z: ∂r/∂z = −Σ v a² + conj(v) b²)
// Sums over k accumulate in float64 (there are up to L/2 of them).
#include "ssm/kernels/cauchy.h"

#include <vector>

namespace ssm::kernels::cpu {

namespace {

constexpr int64_t kParallelWork = int64_t{1} << 14;  // H·M·K·N below this runs on one thread

// inv1 = 1/(z − λ_n), inv2 = 1/(z − conj λ_n) for all n.
template <typename T>
void reciprocals(T zr, T zi, const T* __restrict lr, const T* __restrict li, int64_t N,
                 T* __restrict a_re, T* __restrict a_im, T* __restrict b_re, T* __restrict b_im) {
#pragma omp simd
  for (int64_t n = 0; n < N; ++n) {
    const T dr = zr - lr[n], d1 = zi - li[n], d2 = zi + li[n];
    const T s1 = T(1) / (dr * dr + d1 * d1), s2 = T(1) / (dr * dr + d2 * d2);
    a_re[n] = dr * s1;
    a_im[n] = -d1 * s1;
    b_re[n] = dr * s2;
    b_im[n] = -d2 * s2;
  }
}

template <typename T, bool kConj>
void forward_channel(const CauchyInputs& in, int64_t h, int64_t M, int64_t N, int64_t K,
                     std::vector<T>& scratch, T* __restrict out_re, T* __restrict out_im) {
  T *a_re = scratch.data(), *a_im = a_re + N, *b_re = a_im + N, *b_im = b_re + N;
  const T* lr = in.lambda_re.data<T>() + h * N;
  const T* li = in.lambda_im.data<T>() + h * N;
  for (int64_t k = 0; k < K; ++k) {
    reciprocals(in.z_re.data<T>()[h * K + k], in.z_im.data<T>()[h * K + k], lr, li, N, a_re, a_im,
                b_re, b_im);
    for (int64_t m = 0; m < M; ++m) {
      const T* __restrict vr = in.v_re.data<T>() + (h * M + m) * N;
      const T* __restrict vi = in.v_im.data<T>() + (h * M + m) * N;
      T sr = 0, si = 0;
#pragma omp simd reduction(+ : sr, si)
      for (int64_t n = 0; n < N; ++n) {
        sr += vr[n] * a_re[n] - vi[n] * a_im[n];
        si += vr[n] * a_im[n] + vi[n] * a_re[n];
        if constexpr (kConj) {  // conj(v)·b
          sr += vr[n] * b_re[n] + vi[n] * b_im[n];
          si += vr[n] * b_im[n] - vi[n] * b_re[n];
        }
      }
      out_re[(h * M + m) * K + k] = sr;
      out_im[(h * M + m) * K + k] = si;
    }
  }
}

template <typename T, bool kConj>
void backward_channel(const CauchyInputs& in, const T* grad_re, const T* grad_im, int64_t h,
                      int64_t M, int64_t N, int64_t K, std::vector<T>& scratch,
                      std::vector<double>& acc, const CauchyGrads& out) {
  T *a_re = scratch.data(), *a_im = a_re + N, *b_re = a_im + N, *b_im = b_re + N;
  acc.assign(2 * M * N + 2 * N, 0.0);
  double *gv_re = acc.data(), *gv_im = gv_re + M * N, *gl_re = gv_im + M * N, *gl_im = gl_re + N;
  const T* lr = in.lambda_re.data<T>() + h * N;
  const T* li = in.lambda_im.data<T>() + h * N;
  for (int64_t k = 0; k < K; ++k) {
    reciprocals(in.z_re.data<T>()[h * K + k], in.z_im.data<T>()[h * K + k], lr, li, N, a_re, a_im,
                b_re, b_im);
    double gz_re = 0, gz_im = 0;
    for (int64_t m = 0; m < M; ++m) {
      const T Gr = grad_re[(h * M + m) * K + k], Gi = grad_im[(h * M + m) * K + k];
      const T* __restrict vr = in.v_re.data<T>() + (h * M + m) * N;
      const T* __restrict vi = in.v_im.data<T>() + (h * M + m) * N;
      double* __restrict gvr = gv_re + m * N;
      double* __restrict gvi = gv_im + m * N;
      T zr_acc = 0, zi_acc = 0;
#pragma omp simd reduction(+ : zr_acc, zi_acc)
      for (int64_t n = 0; n < N; ++n) {
        // t1 = G·conj(a); X = t1·conj(a·v)
        const T t1r = Gr * a_re[n] + Gi * a_im[n], t1i = Gi * a_re[n] - Gr * a_im[n];
        const T avr = a_re[n] * vr[n] - a_im[n] * vi[n], avi = a_re[n] * vi[n] + a_im[n] * vr[n];
        const T Xr = t1r * avr + t1i * avi, Xi = t1i * avr - t1r * avi;
        T dvr = t1r, dvi = t1i, dlr = Xr, dli = Xi;
        zr_acc -= Xr;
        zi_acc -= Xi;
        if constexpr (kConj) {
          // t2 = conj(G)·b; Y = t2·(b·conj(v))
          const T t2r = Gr * b_re[n] + Gi * b_im[n], t2i = Gr * b_im[n] - Gi * b_re[n];
          const T bvr = b_re[n] * vr[n] + b_im[n] * vi[n], bvi = b_im[n] * vr[n] - b_re[n] * vi[n];
          const T Yr = t2r * bvr - t2i * bvi, Yi = t2r * bvi + t2i * bvr;
          dvr += t2r;
          dvi += t2i;
          dlr += Yr;
          dli += Yi;
          zr_acc -= Yr;  // conj(Y)
          zi_acc += Yi;
        }
        gvr[n] += dvr;
        gvi[n] += dvi;
        gl_re[n] += dlr;
        gl_im[n] += dli;
      }
      gz_re += zr_acc;
      gz_im += zi_acc;
    }
    out.z_re.data<T>()[h * K + k] = static_cast<T>(gz_re);
    out.z_im.data<T>()[h * K + k] = static_cast<T>(gz_im);
  }
  for (int64_t i = 0; i < M * N; ++i) {
    out.v_re.data<T>()[h * M * N + i] = static_cast<T>(gv_re[i]);
    out.v_im.data<T>()[h * M * N + i] = static_cast<T>(gv_im[i]);
  }
  for (int64_t n = 0; n < N; ++n) {
    out.lambda_re.data<T>()[h * N + n] = static_cast<T>(gl_re[n]);
    out.lambda_im.data<T>()[h * N + n] = static_cast<T>(gl_im[n]);
  }
}

template <typename T>
void forward_all(const CauchyInputs& in, int64_t H, int64_t M, int64_t N, int64_t K,
                 const CauchyOutput& out) {
  T* re = out.re.data<T>();
  T* im = out.im.data<T>();
#pragma omp parallel if (H * M * N * K >= kParallelWork)
  {
    std::vector<T> scratch(4 * N);
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
    std::vector<T> scratch(4 * N);
    std::vector<double> acc;
#pragma omp for schedule(static)
    for (int64_t h = 0; h < H; ++h) {
      if (in.conjugate_pairs)
        backward_channel<T, true>(in, grad_re, grad_im, h, M, N, K, scratch, acc, out);
      else
        backward_channel<T, false>(in, grad_re, grad_im, h, M, N, K, scratch, acc, out);
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
