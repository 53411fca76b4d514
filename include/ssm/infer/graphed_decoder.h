#pragma once
// Batch decoding on the GPU through one CUDA graph: MambaLM::step for a fixed cache is captured
// once (a few hundred kernels for a 24-layer model) and replayed per token, so decoding at batch
// 1 is bound by the GPU's work rather than by host-side op dispatch and launches. The logits
// and the state agree exactly with model.step (the same kernels run on the same addresses).
#include <memory>

#include "ssm/core/cuda_graph.h"
#include "ssm/core/tensor.h"
#include "ssm/nn/mamba_lm.h"

namespace ssm::infer {

class GraphedDecoder {
 public:
  // `model` lives on the GPU and outlives the decoder; `cache` (moved in: every tensor on the
  // GPU, one batch size) is the state the first step starts from. Captures the graph.
  GraphedDecoder(const nn::MambaLM& model, nn::MambaLMCache cache);
  ~GraphedDecoder();
  GraphedDecoder(const GraphedDecoder&) = delete;
  GraphedDecoder& operator=(const GraphedDecoder&) = delete;

  // token (B) int32/int64 ids on the host, each in [0, vocab) → logits (B, V) on the GPU,
  // advancing the state. The same tensor every call: the next step overwrites it.
  const Tensor& step(const Tensor& token);
  int64_t batch() const { return batch_; }
  // The state after the steps so far. The decoder cannot step afterwards.
  nn::MambaLMCache release_cache();

 private:
  const nn::MambaLM& model_;
  nn::MambaLMCache cache_;
  int64_t batch_ = 0;
  Tensor ids_;                          // (B) int64 on the GPU: the graph's input
  Tensor logits_;                       // (B, V) on the GPU: the graph's output
  std::unique_ptr<cuda::Graph> graph_;  // last: destroyed before the tensors it writes
};

}  // namespace ssm::infer
