#pragma once
// Internal: SSD (Mamba-2) on CUDA, the chunked algorithm of ssm/kernels/ssd.h with the CPU
// kernel's contract. Device pointers, contiguous, row-major in the shapes below; every buffer
// is allocated by the caller (ops/cuda_ssd.cpp) and every launch queued on `stream`.
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ssm::kernels::cuda {

struct SsdDims {
  int64_t batch, len, heads, groups, head_dim, state, chunk, n_chunks;  // B L H G P N Q nc
};

template <typename T>
struct SsdDevice {
  SsdDims d;
  // Inputs: x, dy (B, L, H, P); dt (B, L, H); A, D (H); B, C (B, L, G, N);
  // initial_state, dfinal_state (B, H, P, N). D, initial_state and dfinal_state may be null.
  const T *x, *dt, *A, *B, *C, *D, *initial_state, *dy, *dfinal_state;
  // Outputs: y, final_state (forward); dx, ddt, dA, dB, dC, dD, dinitial_state (backward;
  // dD and dinitial_state may be null).
  T *y, *final_state, *dx, *ddt, *dA, *dB, *dC, *dD, *dinitial_state;
  // Workspace.
  double* acum;  // (B, H, L) cumulative Σ dt·A within each chunk
  T* cb;         // (B, G, nc, Q, Q) C_i · B_j for j ≤ i
  T* states;     // (B, nc + 1, H, P, N) the state entering chunk c; [nc] is the final state
  // Backward only.
  T* dstates;            // (B, nc + 1, H, P, N) gradient of the state entering chunk c
  T* m;                  // (B, H, nc, Q, Q) exp(Acum_i − Acum_j) · dy_i · dt_j x_j for j ≤ i
  T *c_state, *b_state;  // (B, L, H, N) per-head state terms of dC and dB
  T* dxd;                // (B, L, H, P) gradient of dt·x
  T *dtx, *dyx;          // (B, L, H) x · dxd and dy · x
  double *dacum, *u;     // (B, H, L)
  double* da_part;       // (B, nc, H)
};

template <typename T>
cudaError_t ssd_fwd(const SsdDevice<T>& a, cudaStream_t stream);
template <typename T>
cudaError_t ssd_bwd(const SsdDevice<T>& a, cudaStream_t stream);

}  // namespace ssm::kernels::cuda
