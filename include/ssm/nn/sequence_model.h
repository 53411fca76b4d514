#pragma once
// The S4-style residual block and the sequence models built from it (DESIGN §5 "S4 block"):
//   block: [pre-norm] → SSM (conv mode) + D skip → GELU → dropout → Linear(H→2H) → GLU →
//          dropout → + residual → [post-norm]
//   backbone: encoder (Linear for real inputs, Embedding for tokens) → n blocks →
//             [final norm when pre-norm]
//   classifier: backbone → pooling (mean | last) → Linear decoder to n_classes logits.
//   regressor:  backbone → pooling (mean | last | none) → Linear decoder to d_output reals;
//               "none" gives an output at every position (sequence to sequence).
// Every model runs in parallel mode (forward) and in recurrent mode (forward_recurrent), which
// must give the same outputs.
#include <memory>
#include <variant>
#include <vector>

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
  S4Block(const train::ModelConfig& c, Generator& gen, uint64_t dropout_seed,
          DType dtype = DType::F32);
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

// Encoder → blocks → final norm, shared by the classifier and the regressor, which add the
// "decoder". Its modules are named "encoder", "blocks.<i>" and "norm" (the checkpoint names).
// Inputs everywhere: x (B, L, d_input) floats (linear encoder) or (B, L) token ids (embedding
// encoder); `lengths` (B) int64, optional: positions ≥ length are padding, zeroed at every
// SSM input and left out of the pooling (and of the regressor's loss).
class SequenceBackbone : public Module {
 public:
  const train::ModelConfig& config() const { return config_; }
  // Re-seeds every dropout mask generator from (seed, step), so that a run resumed at any
  // step draws the same masks as an uninterrupted one.
  void reseed_dropout(uint64_t seed, int64_t step);

 protected:
  // `owner` names the model in error messages.
  SequenceBackbone(const train::ModelConfig& c, uint64_t seed, DType dtype, const char* owner);
  // Checks x and lengths against the config; returns the (B, L, 1) padding mask, undefined
  // without lengths.
  Tensor input_mask(const Tensor& x, const Tensor& lengths) const;
  Tensor features(const Tensor& x, const Tensor& mask);    // parallel: (B, L, H)
  Tensor pool(const Tensor& h, const Tensor& mask) const;  // (B, L, H) → (B, H)
  // One state per block (an error for a bidirectional layer: it has no step mode).
  std::vector<SSMState> block_states(int64_t batch) const;
  // x_t (B, d_input) or (B) ids → (B, H), advancing `state`.
  Tensor step_features(const Tensor& x_t, std::vector<SSMState>& state);
  // The pooled features computed position by position with a running sum: (B, H).
  Tensor pooled_features_recurrent(const Tensor& x, const Tensor& mask);
  // Step mode is the eval-mode computation; rejects a model whose training mode differs.
  void check_step_mode(const char* function) const;

  train::ModelConfig config_;
  DType dtype_;
  const char* owner_;
  Generator init_gen_;  // the initialisation draws, continued by the decoder

 private:
  Tensor encode(const Tensor& x);
  std::shared_ptr<Linear> linear_encoder_;
  std::shared_ptr<Embedding> embedding_encoder_;
  std::vector<std::shared_ptr<S4Block>> blocks_;
  std::shared_ptr<LayerNorm> final_norm_;
};

class SequenceClassifier : public SequenceBackbone {
 public:
  // model.pooling: mean | last.
  SequenceClassifier(const train::ModelConfig& c, uint64_t seed, DType dtype = DType::F32);
  // Returns logits (B, n_classes).
  Tensor forward(const Tensor& x, const Tensor& lengths = Tensor());
  // The same computation as a recurrence, token by token (streaming classification).
  Tensor forward_recurrent(const Tensor& x, const Tensor& lengths = Tensor());

 private:
  std::shared_ptr<Linear> decoder_;
};

// Regression to d_output real values, float32 or float64. model.pooling mean | last: one
// output per sequence, (B, d_output). "none": one at every position, (B, L, d_output), zero
// at padded positions; with unidirectional layers (and eval-mode batch norm) the output at t
// depends on x[0..t] only, so it forecasts. model.n_classes is not used.
class SequenceRegressor : public SequenceBackbone {
 public:
  SequenceRegressor(const train::ModelConfig& c, int64_t d_output, uint64_t seed,
                    DType dtype = DType::F32);
  Tensor forward(const Tensor& x, const Tensor& lengths = Tensor());
  // The same computation as a recurrence, position by position.
  Tensor forward_recurrent(const Tensor& x, const Tensor& lengths = Tensor());
  // Streaming, per-step models only: init_state for B sequences, then step with x_t
  // (B, d_input) floats or (B) ids → (B, d_output), advancing `state`. No gradients recorded.
  std::vector<SSMState> init_state(int64_t batch) const;
  Tensor step(const Tensor& x_t, std::vector<SSMState>& state);
  // Mean squared error over the outputs that are not padding; target shaped like
  // `prediction` (forward's output). lengths: per-step models only.
  Tensor loss(const Tensor& prediction, const Tensor& target,
              const Tensor& lengths = Tensor()) const;

  int64_t d_output() const { return d_output_; }
  bool per_step() const { return config_.pooling == "none"; }

 private:
  void check_prediction(const Tensor& prediction, const Tensor& target) const;
  int64_t d_output_;
  std::shared_ptr<Linear> decoder_;
};

}  // namespace ssm::nn
