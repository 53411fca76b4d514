#pragma once
// A node of the dynamic tape: the op that produced one or more tensors, the inputs it
// differentiates with respect to, and its backward rule as a closure over saved values.
//
// Op authors build outputs with `record(...)`: it attaches a node only when grad mode is
// on and some input requires grad. The closure receives one gradient per output (zeros
// for outputs that got none) and returns one gradient per input (undefined = no gradient).
// Save outputs in the closure as `out.detach()` to avoid a reference cycle.
#include <functional>
#include <string>
#include <vector>

#include "ssm/core/tensor.h"

namespace ssm {

using BackwardFn = std::function<std::vector<Tensor>(const std::vector<Tensor>& grad_outputs)>;

struct Node {
  std::string name;
  std::vector<Tensor> inputs;         // edges to the tensors this op read
  std::vector<Shape> output_shapes;   // to make zero gradients for unused outputs
  std::vector<DType> output_dtypes;
  BackwardFn backward;
  bool released = false;
  void release() {
    inputs.clear();
    backward = nullptr;
    released = true;
  }
};

// Is gradient recording on in this thread? (NoGradGuard turns it off.)
bool grad_mode_enabled();

class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when recording is on and any input requires grad.
bool needs_grad(const std::vector<Tensor>& inputs);

// Attach a backward node to `outputs` (if needs_grad(inputs)); returns the outputs.
std::vector<Tensor> record(const char* name, std::vector<Tensor> outputs,
                           const std::vector<Tensor>& inputs, BackwardFn backward);
Tensor record(const char* name, Tensor output, const std::vector<Tensor>& inputs,
              BackwardFn backward);

// Runs reverse-mode differentiation from `roots` seeded with `grads`.
void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  bool retain_graph);

}  // namespace ssm
