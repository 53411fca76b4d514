#include "ssm/nn/sequence_model.h"

#include "ssm/autograd/node.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/reduce.h"
#include "ssm/ops/shape_ops.h"

namespace ssm::nn {

namespace {
S4DOptions s4d_options(const train::ModelConfig& c) {
  S4DOptions o;
  o.d_model = c.d_model;
  o.d_state = c.d_state;
  o.init = c.init;
  o.dt_min = c.dt_min;
  o.dt_max = c.dt_max;
  o.bidirectional = c.bidirectional;
  o.discretization = c.discretization == "bilinear" ? Discretization::Bilinear : Discretization::ZOH;
  return o;
}

// Mask (B, L, 1) with 1 where position < length, in `dtype`.
Tensor length_mask(const Tensor& lengths, int64_t B, int64_t L, DType dtype) {
  // A lengths tensor of another batch size would broadcast silently (or read out of bounds).
  SSM_CHECK(lengths.dim() == 1 && lengths.size(0) == B,
            "SequenceClassifier: argument 'lengths' expected shape ({}), got {}", B,
            shape_str(lengths.shape()));
  Tensor mask = Tensor::zeros({B, L, 1}, dtype);
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = static_cast<int64_t>(lengths.at({b}));
    SSM_CHECK(len >= 1 && len <= L, "SequenceClassifier: length {} of example {} is outside [1, {}]",
              len, b, L);
    for (int64_t l = 0; l < len; ++l) mask.set({b, l, 0}, 1.0);
  }
  return mask;
}

// Checks x's shape against the encoder and model.max_length before anything reads x.size(1).
void check_input(const Tensor& x, const Tensor& lengths, const train::ModelConfig& c) {
  if (c.encoder == "embedding")
    SSM_CHECK(x.dim() == 2, "SequenceClassifier: token input must be (B, L), got {}",
              shape_str(x.shape()));
  else
    SSM_CHECK(x.dim() == 3 && x.size(2) == c.d_input,
              "SequenceClassifier: input must be (B, L, {}), got {}", c.d_input,
              shape_str(x.shape()));
  const int64_t L = x.size(1);
  SSM_CHECK(c.max_length == 0 || L <= c.max_length,
            "SequenceClassifier: sequence length {} exceeds model.max_length {}", L, c.max_length);
  if (!lengths.defined()) return;
  SSM_CHECK(c.pooling != "last",
            "SequenceClassifier: 'last' pooling with padded batches is not supported");
}
}  // namespace

S4Block::S4Block(const train::ModelConfig& c, Generator& gen, uint64_t dropout_seed)
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
    s4 = register_module("ssm", std::make_shared<S4>(o, gen));
  } else if (c.layer == "s5") {
    S5Options o;
    o.d_model = c.d_model;
    o.d_state = c.d_state / 2;  // complex modes: the same real state size as S4 / S4D
    o.block_size = std::min<int64_t>(16, c.d_state);
    o.dt_min = c.dt_min;
    o.dt_max = c.dt_max;
    o.bidirectional = c.bidirectional;
    s5 = register_module("ssm", std::make_shared<S5>(o, gen));
  } else {
    s4d = register_module("ssm", std::make_shared<S4D>(s4d_options(c), gen));
  }
  if (c.norm == "batch")
    batch_norm_ = register_module("norm", std::make_shared<BatchNorm>(c.d_model));
  else
    layer_norm_ = register_module("norm", std::make_shared<LayerNorm>(c.d_model));
  out_proj_ = register_module("out_proj", std::make_shared<Linear>(c.d_model, 2 * c.d_model, true, gen));
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

SequenceClassifier::SequenceClassifier(const train::ModelConfig& c, uint64_t seed, DType dtype)
    : config_(c) {
  SSM_CHECK(dtype == DType::F32, "SequenceClassifier: only float32 models are supported for now");
  Generator gen(seed);
  if (c.encoder == "embedding")
    embedding_encoder_ = register_module("encoder", std::make_shared<Embedding>(c.d_input, c.d_model, gen));
  else
    linear_encoder_ = register_module("encoder", std::make_shared<Linear>(c.d_input, c.d_model, true, gen));
  for (int64_t i = 0; i < c.n_layers; ++i)
    blocks_.push_back(register_module("blocks." + std::to_string(i),
                                      std::make_shared<S4Block>(c, gen, seed * 1000 + i + 1)));
  if (c.prenorm) final_norm_ = register_module("norm", std::make_shared<LayerNorm>(c.d_model));
  decoder_ = register_module("decoder", std::make_shared<Linear>(c.d_model, c.n_classes, true, gen));
}

void SequenceClassifier::reseed_dropout(uint64_t seed, int64_t step) {
  for (size_t i = 0; i < blocks_.size(); ++i)
    blocks_[i]->reseed_dropout(seed * 0x9E3779B97F4A7C15ULL + static_cast<uint64_t>(step) * 1000003ULL + i);
}

Tensor SequenceClassifier::encode(const Tensor& x) {
  return embedding_encoder_ ? embedding_encoder_->forward(x) : linear_encoder_->forward(x);
}

Tensor SequenceClassifier::forward(const Tensor& x, const Tensor& lengths) {
  check_input(x, lengths, config_);
  const int64_t L = x.size(1);
  Tensor h = encode(x);
  // Padded positions are zeroed at every SSM input, so no layer (a bidirectional one reads
  // the future) sees padding, and the pooling leaves them out.
  const Tensor mask = lengths.defined() ? length_mask(lengths, x.size(0), L, h.dtype()) : Tensor();
  for (auto& b : blocks_) h = b->forward(h, mask);
  if (final_norm_) h = final_norm_->forward(h);
  Tensor pooled;
  if (config_.pooling == "last") {
    pooled = h.select(1, L - 1);
  } else if (mask.defined()) {
    Tensor counts = sum(mask, {1});  // (B, 1)
    pooled = div(sum(mul(h, mask), {1}), counts);
  } else {
    pooled = mean(h, {1});
  }
  return decoder_->forward(pooled);
}

Tensor SequenceClassifier::forward_recurrent(const Tensor& x, const Tensor& lengths) {
  NoGradGuard no_grad;
  check_input(x, lengths, config_);
  // Step mode is the eval-mode computation: it applies no dropout, and a training-mode batch
  // norm would normalise each step by that step's batch statistics and overwrite the running ones.
  SSM_CHECK(!is_training() || (config_.norm != "batch" && config_.dropout == 0.0),
            "SequenceClassifier::forward_recurrent: the model is in training mode, where batch "
            "norm and dropout (p = {}) differ from recurrent mode; call eval() first",
            config_.dropout);
  const int64_t B = x.size(0), L = x.size(1);
  std::vector<SSMState> states;
  for (auto& b : blocks_) states.push_back(b->init_state(B));
  Tensor mask = lengths.defined() ? length_mask(lengths, B, L, DType::F32) : Tensor();
  Tensor pooled_sum, last;
  for (int64_t t = 0; t < L; ++t) {
    Tensor h = encode(x.narrow(1, t, 1)).squeeze(1);  // (B, H)
    for (size_t i = 0; i < blocks_.size(); ++i) h = blocks_[i]->step(h, states[i]);
    if (final_norm_) h = final_norm_->forward(h);
    Tensor contrib = mask.defined() ? mul(h, mask.select(1, t)) : h;
    pooled_sum = pooled_sum.defined() ? add(pooled_sum, contrib) : contrib;
    last = h;
  }
  Tensor pooled;
  if (config_.pooling == "last") {
    pooled = last;
  } else if (mask.defined()) {
    pooled = div(pooled_sum, sum(mask, {1}));
  } else {
    pooled = mul_scalar(pooled_sum, 1.0 / static_cast<double>(L));
  }
  return decoder_->forward(pooled);
}

}  // namespace ssm::nn
