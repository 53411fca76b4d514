// The reverse-mode engine: topological order over the nodes reachable from the roots,
// gradients summed per (node, output), leaves accumulate into .grad, graph freed after.
#include <unordered_map>
#include <unordered_set>

#include "ssm/autograd/node.h"
#include "ssm/core/reduce_to_shape.h"

namespace ssm {

namespace {
thread_local bool g_grad_enabled = true;
}

bool grad_mode_enabled() {
  return g_grad_enabled;
}
NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) {
  g_grad_enabled = false;
}
NoGradGuard::~NoGradGuard() {
  g_grad_enabled = previous_;
}

bool needs_grad(const std::vector<Tensor>& inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

std::vector<Tensor> record(const char* name, std::vector<Tensor> outputs,
                           const std::vector<Tensor>& inputs, BackwardFn backward) {
  if (!needs_grad(inputs)) return outputs;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs = inputs;
  node->backward = std::move(backward);
  for (size_t i = 0; i < outputs.size(); ++i) {
    TensorImpl* impl = outputs[i].impl_ptr();
    impl->grad_fn = node;
    impl->output_nr = static_cast<int>(i);
    impl->requires_grad = true;
    node->output_shapes.push_back(outputs[i].shape());
    node->output_dtypes.push_back(outputs[i].dtype());
  }
  return outputs;
}

Tensor record(const char* name, Tensor output, const std::vector<Tensor>& inputs,
              BackwardFn backward) {
  return record(name, std::vector<Tensor>{std::move(output)}, inputs, std::move(backward))[0];
}

namespace {

// Whether the first gradient of a slot can be kept as it is rather than copied: later
// contributions are added into the slot in place, so it must own its memory alone. `g` is
// held by the caller's list only when its handle count is `holders`; a backward that returns
// one tensor for two inputs (add does) holds it twice, and the second taker must copy.
bool can_take(const Tensor& g, long holders) {
  return g.is_contiguous() && g.impl_shared().use_count() == holders &&
         g.storage().use_count() == 1;
}

// A node's gradient slots. A first gradient that cannot be taken (the caller's seed, or one
// tensor returned for two inputs) is held as it is and marked borrowed: backward rules only
// read their gradients, so the copy is made only when a second contribution has to be added
// in place (most slots never get one; copying a seed cost a full pass over the output).
struct Slots {
  std::vector<Tensor> grads;
  std::vector<char> borrowed;
  void resize(size_t n) {
    grads.resize(n);
    borrowed.resize(n, 0);
  }
};

void accumulate(Slots& slots, size_t k, const Tensor& g, long holders) {
  Tensor& slot = slots.grads[k];
  if (!slot.defined()) {
    slot = g;
    slots.borrowed[k] = !can_take(g, holders);
  } else {
    if (slots.borrowed[k]) {
      slot = slot.clone();
      slots.borrowed[k] = 0;
    }
    add_into(slot, g);
  }
}

void accumulate_leaf(const Tensor& leaf, const Tensor& g, long holders) {
  Tensor current = leaf.grad();
  if (!current.defined()) {
    const_cast<Tensor&>(leaf).set_grad(can_take(g, holders) ? g : g.clone());
  } else {
    add_into(current, g);
  }
}

}  // namespace

void run_backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads,
                  bool retain_graph) {
  NoGradGuard no_grad;  // backward rules are not themselves recorded
  std::unordered_map<Node*, Slots> buffers;
  std::unordered_map<Node*, int> pending;  // how many consumers still owe a gradient
  std::vector<Node*> ready;

  // Count dependencies over the reachable graph.
  std::unordered_set<Node*> seen;
  std::vector<std::shared_ptr<Node>> alive;  // releasing a node must not free its producers early
  std::vector<Node*> stack;
  for (const Tensor& r : roots)
    if (r.grad_fn()) stack.push_back(r.grad_fn().get());
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (!seen.insert(n).second) continue;
    for (const Tensor& in : n->inputs)
      if (in.defined() && in.grad_fn()) alive.push_back(in.grad_fn());
    SSM_CHECK(!n->released,
              "backward: the graph through '{}' was already freed; pass retain_graph=true to "
              "backward twice",
              n->name);
    for (const Tensor& in : n->inputs) {
      if (in.defined() && in.grad_fn()) {
        ++pending[in.grad_fn().get()];
        stack.push_back(in.grad_fn().get());
      }
    }
  }

  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    SSM_CHECK(r.requires_grad(), "backward: tensor of shape {} does not require grad",
              shape_str(r.shape()));
    SSM_CHECK(grads[i].shape() == r.shape(), "backward: gradient shape {} differs from output {}",
              shape_str(grads[i].shape()), shape_str(r.shape()));
    if (!r.grad_fn()) {
      accumulate_leaf(r, grads[i].to(r.dtype()), 0);
      continue;
    }
    Node* n = r.grad_fn().get();
    auto& buf = buffers[n];
    buf.resize(n->output_shapes.size());
    accumulate(buf, r.impl_ptr()->output_nr, grads[i].to(r.dtype()), 0);
  }
  for (Node* n : seen)
    if (pending[n] == 0) ready.push_back(n);

  while (!ready.empty()) {
    Node* n = ready.back();
    ready.pop_back();
    auto& buf = buffers[n];
    buf.resize(n->output_shapes.size());
    for (size_t k = 0; k < buf.grads.size(); ++k)
      if (!buf.grads[k].defined())
        buf.grads[k] = Tensor::zeros(n->output_shapes[k], n->output_dtypes[k]);
    std::vector<Tensor> gin = n->backward(buf.grads);
    SSM_CHECK(gin.size() == n->inputs.size(),
              "backward of '{}' returned {} gradients for {} inputs", n->name, gin.size(),
              n->inputs.size());
    buffers.erase(n);
    for (size_t j = 0; j < gin.size(); ++j) {
      const Tensor& in = n->inputs[j];
      if (!in.defined()) continue;
      Node* producer = in.grad_fn().get();
      if (gin[j].defined() && in.requires_grad()) {
        SSM_CHECK(gin[j].shape() == in.shape(),
                  "backward of '{}': gradient for input {} has shape {}, expected {}", n->name, j,
                  shape_str(gin[j].shape()), shape_str(in.shape()));
        if (producer) {
          auto& pb = buffers[producer];
          pb.resize(producer->output_shapes.size());
          accumulate(pb, in.impl_ptr()->output_nr, gin[j], 1);
        } else {
          accumulate_leaf(in, gin[j], 1);
        }
      }
      if (producer && --pending[producer] == 0) ready.push_back(producer);
    }
    if (!retain_graph) n->release();
  }
}

}  // namespace ssm
