// Token tasks as a TaskModel: a MambaLM with a target per position (kIgnoreIndex: none).
#include <cmath>

#include "ssm/autograd/node.h"
#include "ssm/data/token_task.h"
#include "ssm/ops/elementwise.h"
#include "ssm/ops/embedding.h"
#include "ssm/ops/linear.h"
#include "ssm/ops/loss.h"
#include "ssm/train/task_model.h"

namespace ssm::train {

namespace {

// The residual stream after the last block, (B, L, d_model): MambaLM::forward without the
// final norm and head, which run() applies to the target rows only.
Tensor hidden_states(const nn::MambaLM& m, const Tensor& ids) {
  Tensor h = m.backbone->embeddings->forward(ids);
  for (const auto& block : m.backbone->layers)
    h = h + block->mixer->forward(block->norm->forward(h));
  return h;
}

// Logits (B, L, V) of the model run as a recurrence, one position at a time.
Tensor recurrent_logits(const nn::MambaLM& m, const Tensor& ids) {
  NoGradGuard no_grad;
  const int64_t B = ids.size(0), L = ids.size(1);
  // Token ids stay on the CPU (embedding reads them from either device); logits stay with
  // the model.
  Tensor out = Tensor::empty({B, L, m.config.vocab_size}, m.dtype(), m.output_weight().device());
  nn::MambaLMCache cache = m.init_cache(B);
  for (int64_t l = 0; l < L; ++l)
    out.select(1, l).copy_(m.step(ids.select(1, l).contiguous(), cache));
  return out;
}

}  // namespace

std::unique_ptr<nn::MambaLM> make_language_model(const ModelConfig& c, uint64_t seed) {
  SSM_CHECK(c.vocab_size > 0,
            "make_language_model: 'model.vocab_size' must be resolved (> 0), got {}", c.vocab_size);
  nn::MambaLMConfig lc;
  lc.arch = c.arch;
  lc.n_layer = c.n_layers;
  lc.vocab_size = c.vocab_size;
  if (c.arch == "mamba1") {
    lc.mixer.d_model = c.d_model;
    lc.mixer.d_state = c.d_state;
    lc.mixer.d_conv = c.d_conv;
    lc.mixer.expand = c.expand;
    lc.mixer.dt_rank = c.dt_rank;
    lc.mixer.dt_min = c.dt_min;
    lc.mixer.dt_max = c.dt_max;
  } else if (c.arch == "mamba2") {
    lc.mamba2.d_model = c.d_model;
    lc.mamba2.d_state = c.d_state;
    lc.mamba2.d_conv = c.d_conv;
    lc.mamba2.expand = c.expand;
    lc.mamba2.head_dim = c.head_dim;
    lc.mamba2.n_groups = c.n_groups;
    lc.mamba2.dt_min = c.dt_min;
    lc.mamba2.dt_max = c.dt_max;
  } else if (c.arch == "mamba3") {
    lc.mamba3.d_model = c.d_model;
    lc.mamba3.d_state = c.d_state;
    lc.mamba3.expand = c.expand;
    lc.mamba3.head_dim = c.head_dim;
    lc.mamba3.n_groups = c.n_groups;
    lc.mamba3.dt_min = c.dt_min;
    lc.mamba3.dt_max = c.dt_max;
  } else {
    SSM_FAIL("config: 'model.arch' = '{}' is not one of: mamba1, mamba2, mamba3", c.arch);
  }
  Generator gen(seed);
  return std::make_unique<nn::MambaLM>(lc, gen);
}

LanguageModelTaskModel::LanguageModelTaskModel(const ModelConfig& config, uint64_t seed)
    : model_(make_language_model(config, seed)), arch_(config.arch) {}

BatchResult LanguageModelTaskModel::run(const data::Batch& b, bool recurrent) {
  const nn::MambaLM& m = *model_;
  SSM_CHECK(b.inputs.dim() == 2 && b.targets.shape() == b.inputs.shape(),
            "LanguageModelTaskModel: expected ids (B, L) and targets (B, L), got {} and {}",
            shape_str(b.inputs.shape()), shape_str(b.targets.shape()));
  const int64_t B = b.inputs.size(0), L = b.inputs.size(1), V = m.config.vocab_size;
  // The positions with a target, as rows of the flattened (B·L) batch.
  const Tensor tc = b.targets.contiguous();
  const int64_t* t = tc.data<int64_t>();
  std::vector<int64_t> rows, row_targets;
  for (int64_t i = 0; i < B * L; ++i)
    if (t[i] != data::kIgnoreIndex) {
      rows.push_back(i);
      row_targets.push_back(t[i]);
    }
  const auto R = static_cast<int64_t>(rows.size());
  SSM_CHECK(R > 0, "LanguageModelTaskModel: the batch has no target positions");
  const Tensor row_ids = Tensor::from_data(rows, {R});
  Tensor logits;  // (R, V)
  if (recurrent) {
    logits = embedding(row_ids, recurrent_logits(m, b.inputs).reshape({B * L, V}));
  } else {
    const Tensor h = hidden_states(m, b.inputs);
    const Tensor h_rows = embedding(row_ids, h.reshape({B * L, h.size(2)}));  // gathers rows
    logits = linear(m.backbone->norm_f->forward(h_rows), m.output_weight());
  }
  BatchResult r;
  r.loss = cross_entropy(logits, Tensor::from_data(row_targets, {R}));
  r.examples = B;
  r.targets = R;
  // Argmax per row; an example is solved when all its rows are.
  const Tensor lc = logits.detach().to(Device::CPU).to(DType::F32).contiguous();
  const float* p = lc.data<float>();
  std::vector<char> example_wrong(static_cast<size_t>(B), 0);
  for (int64_t i = 0; i < R; ++i) {
    const float* row = p + i * V;
    int64_t best = 0;
    for (int64_t v = 1; v < V; ++v)
      if (row[v] > row[best]) best = v;
    if (best == row_targets[static_cast<size_t>(i)])
      ++r.correct;
    else
      example_wrong[static_cast<size_t>(rows[static_cast<size_t>(i)] / L)] = 1;
  }
  for (char w : example_wrong) r.examples_correct += !w;
  return r;
}

}  // namespace ssm::train
