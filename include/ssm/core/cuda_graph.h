#pragma once
// A CUDA graph of the device work that one piece of host code queues on the library's stream,
// captured once and replayed as one launch. Decoding one token through a 24-layer model is a few
// hundred small kernels whose host-side cost (op dispatch, allocation, launch) exceeds their run
// time at batch 1; a replay costs one launch.
//
// The captured code must only queue device work: no copies to or from host memory and no waits
// (CUDA reports them as errors of the capture, raised as ssm::Error). Tensors it allocates and
// frees are recorded by address: those blocks stay reserved for the graph until it is destroyed,
// and tensors it returns or writes in place keep being written by every replay, so keep them
// alive (and unmoved) as long as the graph.
#include <functional>
#include <memory>

namespace ssm::cuda {

class Graph {
 public:
  Graph();
  ~Graph();
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  // Runs `work` under stream capture (its kernels are recorded, not run) and instantiates the
  // graph. Throws ssm::Error without the CUDA backend or device, or if capture fails.
  void capture(const std::function<void()>& work);
  // Queues one run of the captured work on the library's stream.
  void replay();
  bool captured() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace ssm::cuda
