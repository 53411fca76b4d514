#pragma once
// Internal: softmax, log-softmax and the fused softmax cross-entropy on CUDA with the CPU
// kernels' contract (kernels/cpu/softmax.h): exponentials are taken after subtracting the row
// maximum, sums of exponentials accumulate in double, and the cross-entropy keeps the row's
// log-sum-exp split as row_max and log_sum = log Σ exp(x − max). Device pointers, contiguous;
// queued on `stream`.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

// Along the middle axis of row-major (outer, n, inner) data.
template <typename T>
cudaError_t softmax_fwd(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log,
                        cudaStream_t stream);
// softmax dx = y ⊙ (dy − Σ dy ⊙ y); log-softmax dx = dy − exp(y) · Σ dy.
template <typename T>
cudaError_t softmax_bwd(const T* dy, const T* y, T* dx, int64_t outer, int64_t n, int64_t inner,
                        bool log, cudaStream_t stream);

// What the host needs to know after the forward: the sums, and the first bad row of each kind
// (−1 when none), so the op can raise the CPU op's errors.
struct CrossEntropySummary {
  double loss_sum;             // Σ over counted rows of the per-row loss
  long long counted;           // rows whose target is not ignore_index
  long long bad_target_index;  // first row whose target is neither in [0, C) nor ignore_index
  long long bad_target_value;  // that row's target
  long long bad_row;           // first counted row whose log-sum-exp is not finite
};

// Per row (logits (N, C)): loss (1 − ε)·(lse − x_t) + ε·(lse − mean_c x_c) into row_loss
// (double, N) with row_state (N: 0 ignored, 1 counted, 2 bad target, 3 not finite) as scratch;
// row_max and log_sum (N); then the summary and the mean over counted rows into loss[0] (0 when
// none is counted).
template <typename T, typename I>
cudaError_t cross_entropy_fwd(const T* logits, const I* targets, T* row_max, T* log_sum,
                              double* row_loss, int* row_state, CrossEntropySummary* summary,
                              T* loss, int64_t N, int64_t C, int64_t ignore_index, double smoothing,
                              cudaStream_t stream);

// dlogits = scale · (softmax(x) − (1 − ε)·onehot(t) − ε/C), zero on ignored rows, with
// scale = gloss[0] / counted (0 when counted is 0) read on the device: no host round trip.
template <typename T, typename I>
cudaError_t cross_entropy_bwd(const T* logits, const I* targets, const T* row_max, const T* log_sum,
                              const T* gloss, T* dlogits, int64_t N, int64_t C,
                              int64_t ignore_index, double smoothing, int64_t counted,
                              cudaStream_t stream);

}  // namespace ssm::kernels::cuda
