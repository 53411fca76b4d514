#pragma once
// Internal, CUDA builds only: what CUDA-graph capture needs from the runtime. While a graph is
// captured its kernels are recorded, not run, and every replay writes the same addresses again,
// so a block freed during the capture must not be handed to anyone else until the graph is
// destroyed: the allocator holds such blocks aside between begin_hold and end_hold.
#include <cstddef>
#include <vector>

namespace ssm::cuda::detail {

struct HeldBlock {
  void* ptr;
  size_t size;
};

void begin_hold();                                            // throws if already holding
std::vector<HeldBlock> end_hold();                            // the blocks freed since begin_hold
void release(const std::vector<HeldBlock>& blocks) noexcept;  // back to the cache for reuse

// Whether the library's stream is being captured (ops that would wait on the host skip it).
bool capturing();

}  // namespace ssm::cuda::detail
