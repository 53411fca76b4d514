#pragma once
// Shape/dtype checks shared by the S4 kernel op and the C̃ conversions (src/ops/s4_*.cpp).
#include <cstdint>

#include "ssm/core/tensor.h"

namespace ssm::detail {

// The S4 parameters; B is absent (undefined) for the C̃ conversions, which do not read it.
struct S4Params {
  Tensor log_dt;                // (H)
  Tensor Lambda_re, Lambda_im;  // (H, N/2)
  Tensor P_re, P_im;            // (R, H, N/2), R ∈ {1, 2}
  Tensor B_re, B_im;            // (H, N/2) or undefined
  Tensor C_re, C_im;            // (H, N/2)
};

// Throws ssm::Error naming `op`, the argument, and expected vs. actual shape / dtype / value.
void check_s4_params(const S4Params& p, int64_t L, const char* op);

// The same parameters, contiguous and detached (history dropped).
S4Params contiguous_detached(const S4Params& p);

}  // namespace ssm::detail
