// ssm::cuda::Graph: stream capture into a cudaGraph_t, instantiated once, replayed per call.
#include "ssm/core/cuda.h"
#include "ssm/core/cuda_graph.h"
#include "ssm/core/error.h"

#ifdef SSM_WITH_CUDA
#include <cuda_runtime_api.h>

#include <exception>
#include <vector>

#include "core/cuda/check.h"
#include "core/cuda/graph.h"
#endif

namespace ssm::cuda {

#ifdef SSM_WITH_CUDA

struct Graph::Impl {
  cudaGraphExec_t exec = nullptr;
  std::vector<detail::HeldBlock> held;  // blocks the captured work freed: the graph writes them

  ~Impl() {
    if (exec != nullptr) {
      // The last replay may still be running; its blocks return to the cache only after it.
      (void)cudaStreamSynchronize(detail::stream());
      (void)cudaGraphExecDestroy(exec);
    }
    detail::release(held);
  }
};

Graph::Graph() : impl_(std::make_unique<Impl>()) {}
Graph::~Graph() = default;

bool Graph::captured() const {
  return impl_->exec != nullptr;
}

void Graph::capture(const std::function<void()>& work) {
  SSM_CHECK(available(), "cuda graph: no usable CUDA device");
  SSM_CHECK(impl_->exec == nullptr, "cuda graph: already captured");
  const cudaStream_t s = detail::stream();
  // Relaxed: the allocator may still need cudaMalloc for a block size the warm-up did not leave
  // in the cache; that is not stream work and does not disturb the capture.
  SSM_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed), "cuda graph");
  detail::begin_hold();
  cudaGraph_t graph = nullptr;
  try {
    work();
  } catch (...) {
    (void)cudaStreamEndCapture(s, &graph);
    if (graph != nullptr) (void)cudaGraphDestroy(graph);
    (void)cudaGetLastError();
    impl_->held = detail::end_hold();
    throw;
  }
  const cudaError_t ended = cudaStreamEndCapture(s, &graph);
  impl_->held = detail::end_hold();
  SSM_CUDA_CHECK(ended, "cuda graph (the captured work queued something that cannot be captured)");
  const cudaError_t made = cudaGraphInstantiate(&impl_->exec, graph, 0);
  (void)cudaGraphDestroy(graph);
  SSM_CUDA_CHECK(made, "cuda graph");
}

void Graph::replay() {
  SSM_CHECK(impl_->exec != nullptr, "cuda graph: replay before capture");
  SSM_CUDA_CHECK(cudaGraphLaunch(impl_->exec, detail::stream()), "cuda graph");
}

#else  // no CUDA backend

struct Graph::Impl {};
Graph::Graph() : impl_(std::make_unique<Impl>()) {}
Graph::~Graph() = default;
bool Graph::captured() const {
  return false;
}
void Graph::capture(const std::function<void()>&) {
  SSM_FAIL("cuda graph: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}
void Graph::replay() {
  SSM_FAIL("cuda graph: this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
}

#endif

}  // namespace ssm::cuda
