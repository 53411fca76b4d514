#pragma once
// Internal: the selective-scan CUDA kernels' launch interface, shared by the .cu file (nvcc) and
// its Tensor-level wrapper (selective_scan.cpp, the host compiler). Raw pointers and element
// strides only; the wrapper validates shapes, allocates outputs and checks the returned error.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

// One thread block scans one channel (b, d), kScanChunk steps at a time: each of kScanThreads
// threads owns kScanItems consecutive steps. The forward saves the state entering each such
// chunk, so the backward recomputes one chunk at a time from it.
constexpr int kScanThreads = 128;
constexpr int kScanItems = 8;
constexpr int64_t kScanChunk = int64_t{kScanThreads} * kScanItems;
constexpr int kScanMaxState = 256;  // N limit (the carried states live in shared memory)

// A read-only strided view: element (i0, i1, i2, i3) at data[i0·s0 + i1·s1 + i2·s2 + i3·s3].
template <typename T>
struct StridedIn {
  const T* data = nullptr;
  int64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
};

template <typename T>
struct ScanArgs {
  int64_t batch, dim, len, state, groups, n_chunks;
  StridedIn<T> u, delta, z;       // (B, D, L); z optional (data == nullptr)
  StridedIn<T> A;                 // (D, N)
  StridedIn<T> B, C;              // (B, G, N, L)
  StridedIn<T> skip, delta_bias;  // (D), optional
  StridedIn<T> h0;                // (B, D, N), optional
  bool softplus;
};

template <typename T>
struct ScanFwdOut {
  T* out;           // (B, D, L) contiguous
  T* last_state;    // (B, D, N)
  T* chunk_states;  // (B, D, n_chunks, N)
};

// Gradients. Per-element ones are written; the others are accumulated with atomics and must be
// zeroed by the caller: dA (D, N), dB and dC (B, G, N, L), dskip and ddelta_bias (D).
template <typename T>
struct ScanBwdArgs {
  const T* chunk_states;  // (B, D, n_chunks, N) from the forward
  StridedIn<T> dout;      // (B, D, L)
  StridedIn<T> dlast;     // (B, D, N), optional
  T* du;                  // (B, D, L)
  T* ddelta;              // (B, D, L)
  T* dz;                  // (B, D, L) when z is given
  T* dA;                  // (D, N), zeroed
  T* dB;                  // (B, G, N, L), zeroed
  T* dC;                  // (B, G, N, L), zeroed
  T* dskip;               // (D), zeroed, when skip is given
  T* ddelta_bias;         // (D), zeroed, when delta_bias is given
  T* dh0;                 // (B, D, N) when h0 is given
};

// Both return the launch's error (cudaSuccess when it was queued).
template <typename T>
cudaError_t launch_selective_scan_fwd(const ScanArgs<T>& args, const ScanFwdOut<T>& out,
                                      cudaStream_t stream);
template <typename T>
cudaError_t launch_selective_scan_bwd(const ScanArgs<T>& args, const ScanBwdArgs<T>& grads,
                                      cudaStream_t stream);

}  // namespace ssm::kernels::cuda

namespace ssm::kernels::cuda {

// One decode step: state (B, D, N) contiguous, advanced in place; y (B, D) contiguous.
template <typename T>
struct StepArgs {
  int64_t batch, dim, state, groups;
  T* h;
  T* y;
  StridedIn<T> x, dt, z;       // (B, D); z optional
  StridedIn<T> A;              // (D, N)
  StridedIn<T> B, C;           // (B, G, N)
  StridedIn<T> skip, dt_bias;  // (D), optional
  bool softplus;
};

template <typename T>
cudaError_t launch_selective_state_update(const StepArgs<T>& args, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
