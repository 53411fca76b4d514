#pragma once
// The S4-style residual block and the sequence classifier built from it (DESIGN §5 "S4 block"):
//   block: [pre-norm] → SSM (conv mode) + D skip → GELU → dropout → Linear(H→2H) → GLU →
//          dropout → + residual → [post-norm]
//   model: encoder (Linear for real inputs, Embedding for tokens) → n blocks →
//          [final norm when pre-norm] → pooling (mean | last) → Linear decoder.
// Both run in parallel mode (forward) and in recurrent mode (forward_recurrent), which
// must give the same outputs.
#include <memory>
#include <vector>

#include <variant>

#include "ssm/nn/layers.h"
#include "ssm/nn/s4.h"
#include "ssm/nn/s4d.h"
#include "ssm/nn/s5.h"
#include "ssm/train/config.h"

namespace ssm::nn {

// The recurrent state of whichever SSM layer a block holds.
using SSMState = std::variant<S4DState, S4State, S5State>;

class S4Block : public Module {
 public:
  S4Block(const train::ModelConfig& c, Generator& gen, uint64_t dropout_seed);
  // (B, L, H) → (B, L, H); mask (B, L, 1) (optional) zeroes padded positions at the SSM input.
  Tensor forward(const Tensor& x, const Tensor& mask = Tensor());
  SSMState init_state(int64_t batch) const;
  Tensor step(const Tensor& x_t, SSMState& state);  // (B, H) → (B, H)
  void reseed_dropout(uint64_t seed) { dropout_->gen.manual_seed(seed); }
  // Exactly one is set, by model.layer: s4d | s4 | s5.
  std::shared_ptr<S4D> s4d;
  std::shared_ptr<S4> s4;
  std::shared_ptr<S5> s5;

 private:
  Tensor normalize(const Tensor& x);
  bool prenorm_;
  std::shared_ptr<LayerNorm> layer_norm_;
  std::shared_ptr<BatchNorm> batch_norm_;
  std::shared_ptr<Linear> out_proj_;
  std::shared_ptr<Dropout> dropout_;
};

class SequenceClassifier : public Module {
 public:
  SequenceClassifier(const train::ModelConfig& c, uint64_t seed, DType dtype = DType::F32);
  // x: (B, L, d_input) floats (linear encoder) or (B, L) token ids (embedding encoder).
  // Returns logits (B, n_classes). `lengths` (B) int64, optional: positions ≥ length are
  // padding and are left out of the pooling.
  Tensor forward(const Tensor& x, const Tensor& lengths = Tensor());
  // The same computation as a recurrence, token by token (streaming classification).
  Tensor forward_recurrent(const Tensor& x, const Tensor& lengths = Tensor());

  const train::ModelConfig& config() const { return config_; }
  // Re-seeds every dropout mask generator from (seed, step), so that a run resumed at any
  // step draws the same masks as an uninterrupted one.
  void reseed_dropout(uint64_t seed, int64_t step);

 private:
  Tensor encode(const Tensor& x);
  train::ModelConfig config_;
  std::shared_ptr<Linear> linear_encoder_;
  std::shared_ptr<Embedding> embedding_encoder_;
  std::vector<std::shared_ptr<S4Block>> blocks_;
  std::shared_ptr<LayerNorm> final_norm_;
  std::shared_ptr<Linear> decoder_;
};

}  // namespace ssm::nn
