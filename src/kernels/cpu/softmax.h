#pragma once
// Softmax, log-softmax and the fused softmax cross-entropy. Pure compute, no autograd.
// Every exponential is taken after subtracting the row maximum, and sums of exponentials
// accumulate in double.
#include <cstdint>

namespace ssm::cpu {

// Softmax (or log-softmax when `log`) along the middle axis of row-major (outer, n, inner)
// data: the normalised dimension has size n and stride inner.
template <typename T>
void softmax_fwd(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log);
// dx from dy and the forward output y: softmax dx = y ⊙ (dy − Σ dy ⊙ y),
// log-softmax dx = dy − exp(y) · Σ dy.
template <typename T>
void softmax_bwd(const T* dy, const T* y, T* dx, int64_t outer, int64_t n, int64_t inner, bool log);

struct CrossEntropySums {
  double loss_sum = 0;   // Σ over counted rows of the per-row loss
  int64_t counted = 0;   // rows whose target is not ignore_index
  int64_t bad_row = -1;  // first counted row whose log-sum-exp is not finite, or −1
};

// Per-row loss (1 − ε) · (lse − x_t) + ε · (lse − mean_c x_c) over logits (N, C). The row's
// log-sum-exp is kept for the backward pass as row_max (N) and log_sum = log Σ exp(x − max)
// (N): split so float32 probabilities exp((x − max) − log_sum) stay exact for large logits.
// Rows whose target equals ignore_index are skipped. Targets must already lie in [0, C).
template <typename T, typename I>
CrossEntropySums cross_entropy_fwd(const T* logits, const I* targets, T* row_max, T* log_sum,
                                   int64_t N, int64_t C, int64_t ignore_index, double smoothing);
// dlogits = scale · (softmax(x) − (1 − ε) · onehot(t) − ε / C), zero on ignored rows.
template <typename T, typename I>
void cross_entropy_bwd(const T* logits, const I* targets, const T* row_max, const T* log_sum,
                       T* dlogits, int64_t N, int64_t C, int64_t ignore_index, double smoothing,
                       double scale);

}  // namespace ssm::cpu
