// s4d_kernel op: checks, the fused CPU kernel, and its hand-written backward.
#include "ssm/ops/s4d_kernel.h"

#include "ssm/autograd/node.h"

namespace ssm {

Tensor s4d_kernel(const Tensor& log_dt, const Tensor& A_re_log, const Tensor& A_im,
                  const Tensor& B_re, const Tensor& B_im, const Tensor& C_re, const Tensor& C_im,
                  int64_t L, Discretization discretization) {
  using kernels::cpu::S4DKernelTensors;
  kernels::cpu::check_s4d_kernel_inputs({log_dt, A_re_log, A_im, B_re, B_im, C_re, C_im}, L,
                                        "s4d_kernel");
  // Detached contiguous copies: the kernel reads raw pointers, and the backward closure must
  // not keep the inputs' history alive.
  const S4DKernelTensors in{log_dt.contiguous().detach(), A_re_log.contiguous().detach(),
                            A_im.contiguous().detach(),   B_re.contiguous().detach(),
                            B_im.contiguous().detach(),   C_re.contiguous().detach(),
                            C_im.contiguous().detach()};
  Tensor K = kernels::cpu::s4d_kernel_fwd(in, L, discretization);
  return record("s4d_kernel", K, {log_dt, A_re_log, A_im, B_re, B_im, C_re, C_im},
                [in, discretization](const std::vector<Tensor>& grads) {
                  const Tensor gK = grads[0].to(in.log_dt.dtype()).contiguous();
                  S4DKernelTensors g = kernels::cpu::s4d_kernel_bwd(in, gK, discretization);
                  return std::vector<Tensor>{g.log_dt, g.A_re_log, g.A_im, g.B_re,
                                             g.B_im,   g.C_re,     g.C_im};
                });
}

}  // namespace ssm
