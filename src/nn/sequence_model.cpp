#include "ssm/nn/sequence_model.h"

#include "ssm/autograd/node.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/loss.h"
#include "ssm/ops/reduce.h"
#include "ssm/ops/shape_ops.h"

namespace ssm::nn {

namespace {
S4DOptions s4d_options(const train::ModelConfig& c) {
  S4DOptions o;
  o.d_model = c.d_model;
  o.d_state = c.d_state;
  o.init = c.init;
  o.ptd_norm = c.ptd_norm;
  o.dt_min = c.dt_min;
  o.dt_max = c.dt_max;
  o.bidirectional = c.bidirectional;
  o.discretization =
      c.discretization == "bilinear" ? Discretization::Bilinear : Discretization::ZOH;
  return o;
}

// Mask (B, L, 1) with 1 where position < length, in `dtype`.
Tensor length_mask(const Tensor& lengths, int64_t B, int64_t L, DType dtype, const char* owner) {
  // A lengths tensor of another batch size would broadcast silently (or read out of bounds).
  SSM_CHECK(lengths.dim() == 1 && lengths.size(0) == B,
            "{}: argument 'lengths' expected shape ({}), got {}", owner, B,
            shape_str(lengths.shape()));
  Tensor mask = Tensor::zeros({B, L, 1}, dtype);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = static_cast<int64_t>(lengths.at({b}));
    SSM_CHECK(len >= 1 && len <= L, "{}: length {} of example {} is outside [1, {}]", owner, len, b,
              L);
    for (int64_t l = 0; l < len; ++l) mask.set({b, l, 0}, 1.0);
  }
  return mask;
}

// The classifier is float32 only for now (the trainer and its checkpoints are).
DType float32_only(DType dtype) {
  SSM_CHECK(dtype == DType::F32, "SequenceClassifier: only float32 models are supported for now");
  return dtype;
}

DType float32_or_64(DType dtype) {
  SSM_CHECK(dtype == DType::F32 || dtype == DType::F64,
            "SequenceRegressor: argument 'dtype' expected float32 or float64, got {}",
            dtype_name(dtype));
  return dtype;
}
}  // namespace

S4Block::S4Block(const train::ModelConfig& c, Generator& gen, uint64_t dropout_seed, DType dtype)
    : prenorm_(c.prenorm) {
  if (c.layer == "s4") {
    S4Options o;
    o.d_model = c.d_model;
    o.d_state = c.d_state;
    SSM_CHECK(c.max_length > 0, "S4Block: an S4 layer needs model.max_length (its kernel length)");
    o.l_max = c.max_length;
    o.init = c.init;
    o.dt_min = c.dt_min;
    o.dt_max = c.dt_max;
    o.bidirectional = c.bidirectional;
    s4 = register_module("ssm", std::make_shared<S4>(o, gen, dtype));
  } else if (c.layer == "s5") {
    S5Options o;
    o.d_model = c.d_model;
    o.d_state = c.d_state / 2;  // complex modes: the same real state size as S4 / S4D
    o.block_size = c.s5_blocks > 0 ? c.d_state / c.s5_blocks : std::min<int64_t>(16, c.d_state);
    o.init = c.init == "legs-ptd" ? "legs-ptd" : "legs";  // the config allows only these two
    o.ptd_norm = c.ptd_norm;
    o.dt_min = c.dt_min;
    o.dt_max = c.dt_max;
    o.bidirectional = c.bidirectional;
    s5 = register_module("ssm", std::make_shared<S5>(o, gen, dtype));
  } else {
    s4d = register_module("ssm", std::make_shared<S4D>(s4d_options(c), gen, dtype));
  }
  if (c.norm == "batch")
    batch_norm_ = register_module("norm", std::make_shared<BatchNorm>(c.d_model, 0.1, 1e-5, dtype));
  else
    layer_norm_ = register_module("norm", std::make_shared<LayerNorm>(c.d_model, 1e-5, dtype));
  out_proj_ = register_module("out_proj",
                              std::make_shared<Linear>(c.d_model, 2 * c.d_model, true, gen, dtype));
  dropout_ = register_module("dropout", std::make_shared<Dropout>(c.dropout, dropout_seed));
}

Tensor S4Block::normalize(const Tensor& x) {
  if (layer_norm_) return layer_norm_->forward(x);
  if (x.dim() == 2) return batch_norm_->forward(x.unsqueeze(1)).squeeze(1);
  return batch_norm_->forward(x);
}

Tensor S4Block::forward(const Tensor& x, const Tensor& mask) {
  Tensor z = prenorm_ ? normalize(x) : x;
  if (mask.defined()) z = mul(z, mask);
  z = s4 ? s4->forward(z) : s5 ? s5->forward(z) : s4d->forward(z);
  z = dropout_->forward(gelu(z));
  z = dropout_->forward(glu(out_proj_->forward(z), -1));
  Tensor y = add(x, z);
  return prenorm_ ? y : normalize(y);
}

SSMState S4Block::init_state(int64_t batch) const {
  if (s4) return s4->init_state(batch);
  if (s5) return s5->init_state(batch);
  return s4d->init_state(batch);
}

Tensor S4Block::step(const Tensor& x_t, SSMState& state) {
  Tensor z = prenorm_ ? normalize(x_t) : x_t;
  if (s4)
    z = s4->step(z, std::get<S4State>(state));
  else if (s5)
    z = s5->step(z, std::get<S5State>(state));
  else
    z = s4d->step(z, std::get<S4DState>(state));
  z = glu(out_proj_->forward(gelu(z)), -1);
  Tensor y = add(x_t, z);
  return prenorm_ ? y : normalize(y);
}

// ---- backbone ----

SequenceBackbone::SequenceBackbone(const train::ModelConfig& c, uint64_t seed, DType dtype,
                                   const char* owner)
    : config_(c), dtype_(dtype), owner_(owner), init_gen_(seed) {
  if (c.encoder == "embedding")
    embedding_encoder_ = register_module(
        "encoder", std::make_shared<Embedding>(c.d_input, c.d_model, init_gen_, dtype));
  else
    linear_encoder_ = register_module(
        "encoder", std::make_shared<Linear>(c.d_input, c.d_model, true, init_gen_, dtype));
  for (int64_t i = 0; i < c.n_layers; ++i)
    blocks_.push_back(
        register_module("blocks." + std::to_string(i),
                        std::make_shared<S4Block>(c, init_gen_, seed * 1000 + i + 1, dtype)));
  if (c.prenorm)
    final_norm_ = register_module("norm", std::make_shared<LayerNorm>(c.d_model, 1e-5, dtype));
}

void SequenceBackbone::reseed_dropout(uint64_t seed, int64_t step) {
  for (size_t i = 0; i < blocks_.size(); ++i)
    blocks_[i]->reseed_dropout(seed * 0x9E3779B97F4A7C15ULL +
                               static_cast<uint64_t>(step) * 1000003ULL + i);
}

Tensor SequenceBackbone::encode(const Tensor& x) {
  return embedding_encoder_ ? embedding_encoder_->forward(x) : linear_encoder_->forward(x);
}

// Checks x's shape against the encoder and model.max_length before anything reads x.size(1).
Tensor SequenceBackbone::input_mask(const Tensor& x, const Tensor& lengths) const {
  const train::ModelConfig& c = config_;
  if (c.encoder == "embedding")
    SSM_CHECK(x.dim() == 2, "{}: token input must be (B, L), got {}", owner_, shape_str(x.shape()));
  else
    SSM_CHECK(x.dim() == 3 && x.size(2) == c.d_input, "{}: input must be (B, L, {}), got {}",
              owner_, c.d_input, shape_str(x.shape()));
  const int64_t L = x.size(1);
  SSM_CHECK(c.max_length == 0 || L <= c.max_length,
            "{}: sequence length {} exceeds model.max_length {}", owner_, L, c.max_length);
  if (!lengths.defined()) return Tensor();
  SSM_CHECK(c.pooling != "last", "{}: 'last' pooling with padded batches is not supported", owner_);
  return length_mask(lengths, x.size(0), L, dtype_, owner_);
}

Tensor SequenceBackbone::features(const Tensor& x, const Tensor& mask) {
  Tensor h = encode(x);
  // Padded positions are zeroed at every SSM input, so no layer (a bidirectional one reads
  // the future) sees padding.
  for (auto& b : blocks_) h = b->forward(h, mask);
  return final_norm_ ? final_norm_->forward(h) : h;
}

Tensor SequenceBackbone::pool(const Tensor& h, const Tensor& mask) const {
  if (config_.pooling == "last") return h.select(1, h.size(1) - 1);
  if (!mask.defined()) return mean(h, {1});
  return div(sum(mul(h, mask), {1}), sum(mask, {1}));  // over each example's own length
}

std::vector<SSMState> SequenceBackbone::block_states(int64_t batch) const {
  std::vector<SSMState> states;
  for (const auto& b : blocks_) states.push_back(b->init_state(batch));
  return states;
}

Tensor SequenceBackbone::step_features(const Tensor& x_t, std::vector<SSMState>& state) {
  Tensor h = encode(x_t);  // (B, H)
  for (size_t i = 0; i < blocks_.size(); ++i) h = blocks_[i]->step(h, state[i]);
  return final_norm_ ? final_norm_->forward(h) : h;
}

Tensor SequenceBackbone::pooled_features_recurrent(const Tensor& x, const Tensor& mask) {
  const int64_t L = x.size(1);
  std::vector<SSMState> state = block_states(x.size(0));
  Tensor pooled_sum, last;
  for (int64_t t = 0; t < L; ++t) {
    Tensor h = step_features(x.select(1, t), state);
    Tensor contrib = mask.defined() ? mul(h, mask.select(1, t)) : h;
    pooled_sum = pooled_sum.defined() ? add(pooled_sum, contrib) : contrib;
    last = h;
  }
  if (config_.pooling == "last") return last;
  if (mask.defined()) return div(pooled_sum, sum(mask, {1}));
  return mul_scalar(pooled_sum, 1.0 / static_cast<double>(L));
}

void SequenceBackbone::check_step_mode(const char* function) const {
  // Step mode applies no dropout, and a training-mode batch norm would normalise each step by
  // that step's batch statistics and overwrite the running ones.
  SSM_CHECK(!is_training() || (config_.norm != "batch" && config_.dropout == 0.0),
            "{}::{}: the model is in training mode, where batch norm and dropout (p = {}) differ "
            "from recurrent mode; call eval() first",
            owner_, function, config_.dropout);
}

// ---- classifier ----

SequenceClassifier::SequenceClassifier(const train::ModelConfig& c, uint64_t seed, DType dtype)
    : SequenceBackbone(c, seed, float32_only(dtype), "SequenceClassifier") {
  SSM_CHECK(c.pooling == "mean" || c.pooling == "last",
            "SequenceClassifier: model.pooling expected mean or last, got '{}'", c.pooling);
  decoder_ = register_module(
      "decoder", std::make_shared<Linear>(c.d_model, c.n_classes, true, init_gen_, dtype));
}

Tensor SequenceClassifier::forward(const Tensor& x, const Tensor& lengths) {
  const Tensor mask = input_mask(x, lengths);
  return decoder_->forward(pool(features(x, mask), mask));
}

Tensor SequenceClassifier::forward_recurrent(const Tensor& x, const Tensor& lengths) {
  NoGradGuard no_grad;
  const Tensor mask = input_mask(x, lengths);
  check_step_mode("forward_recurrent");
  return decoder_->forward(pooled_features_recurrent(x, mask));
}

// ---- regressor ----

SequenceRegressor::SequenceRegressor(const train::ModelConfig& c, int64_t d_output, uint64_t seed,
                                     DType dtype)
    : SequenceBackbone(c, seed, float32_or_64(dtype), "SequenceRegressor"), d_output_(d_output) {
  SSM_CHECK(d_output >= 1, "SequenceRegressor: argument 'd_output' must be at least 1, got {}",
            d_output);
  SSM_CHECK(c.pooling == "mean" || c.pooling == "last" || c.pooling == "none",
            "SequenceRegressor: model.pooling expected mean, last or none, got '{}'", c.pooling);
  decoder_ = register_module("decoder",
                             std::make_shared<Linear>(c.d_model, d_output, true, init_gen_, dtype));
}

Tensor SequenceRegressor::forward(const Tensor& x, const Tensor& lengths) {
  const Tensor mask = input_mask(x, lengths);
  const Tensor h = features(x, mask);
  if (!per_step()) return decoder_->forward(pool(h, mask));
  const Tensor y = decoder_->forward(h);
  return mask.defined() ? mul(y, mask) : y;
}

Tensor SequenceRegressor::forward_recurrent(const Tensor& x, const Tensor& lengths) {
  NoGradGuard no_grad;
  const Tensor mask = input_mask(x, lengths);
  check_step_mode("forward_recurrent");
  if (!per_step()) return decoder_->forward(pooled_features_recurrent(x, mask));
  std::vector<SSMState> state = block_states(x.size(0));
  std::vector<Tensor> ys;
  for (int64_t t = 0; t < x.size(1); ++t)
    ys.push_back(decoder_->forward(step_features(x.select(1, t), state)).unsqueeze(1));
  const Tensor y = concat(ys, 1);
  return mask.defined() ? mul(y, mask) : y;
}

std::vector<SSMState> SequenceRegressor::init_state(int64_t batch) const {
  SSM_CHECK(per_step(),
            "SequenceRegressor::init_state: streaming needs per-step outputs (model.pooling none), "
            "got pooling '{}'; use forward_recurrent",
            config_.pooling);
  SSM_CHECK(batch >= 1,
            "SequenceRegressor::init_state: argument 'batch' must be at least 1, got {}", batch);
  return block_states(batch);
}

Tensor SequenceRegressor::step(const Tensor& x_t, std::vector<SSMState>& state) {
  NoGradGuard no_grad;
  SSM_CHECK(per_step(),
            "SequenceRegressor::step: streaming needs per-step outputs (model.pooling none), got "
            "pooling '{}'",
            config_.pooling);
  check_step_mode("step");
  if (config_.encoder == "embedding")
    SSM_CHECK(x_t.dim() == 1,
              "SequenceRegressor::step: argument 'x_t' expected token ids (B), got {}",
              shape_str(x_t.shape()));
  else
    SSM_CHECK(x_t.dim() == 2 && x_t.size(1) == config_.d_input,
              "SequenceRegressor::step: argument 'x_t' expected shape (B, {}), got {}",
              config_.d_input, shape_str(x_t.shape()));
  SSM_CHECK(state.size() == static_cast<size_t>(config_.n_layers),
            "SequenceRegressor::step: argument 'state' holds {} block states, expected {} (from "
            "init_state)",
            state.size(), config_.n_layers);
  return decoder_->forward(step_features(x_t, state));
}

void SequenceRegressor::check_prediction(const Tensor& prediction, const Tensor& target) const {
  SSM_CHECK(prediction.defined() && target.defined(),
            "SequenceRegressor::loss: arguments 'prediction' and 'target' must be defined");
  const int64_t dims = per_step() ? 3 : 2;
  SSM_CHECK(prediction.dim() == dims && prediction.size(dims - 1) == d_output_,
            "SequenceRegressor::loss: argument 'prediction' expected shape {} with d_output = {}, "
            "got {}",
            per_step() ? "(B, L, d_output)" : "(B, d_output)", d_output_,
            shape_str(prediction.shape()));
  SSM_CHECK(
      target.shape() == prediction.shape(),
      "SequenceRegressor::loss: argument 'target' expected shape {} (like prediction), got {}",
      shape_str(prediction.shape()), shape_str(target.shape()));
  SSM_CHECK(
      target.dtype() == prediction.dtype(),
      "SequenceRegressor::loss: argument 'target' expected dtype {} (like prediction), got {}",
      dtype_name(prediction.dtype()), dtype_name(target.dtype()));
}

Tensor SequenceRegressor::loss(const Tensor& prediction, const Tensor& target,
                               const Tensor& lengths) const {
  check_prediction(prediction, target);
  if (!lengths.defined()) return mse_loss(prediction, target);
  SSM_CHECK(per_step(),
            "SequenceRegressor::loss: argument 'lengths' applies to per-step outputs only "
            "(model.pooling none), got pooling '{}'",
            config_.pooling);
  const int64_t B = prediction.size(0), L = prediction.size(1);
  const Tensor mask = length_mask(lengths, B, L, prediction.dtype(), "SequenceRegressor::loss");
  // mse_loss averages over every element; padded ones contribute 0 after the mask, so the
  // mean over the counted ones is that times numel / counted.
  const double counted = sum_all(mask).item() * static_cast<double>(d_output_);
  const double scale = static_cast<double>(prediction.numel()) / counted;
  return mul_scalar(mse_loss(mul(prediction, mask), mul(target, mask)), scale);
}

}  // namespace ssm::nn
