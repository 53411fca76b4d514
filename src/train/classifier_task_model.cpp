// Sequence classification as a TaskModel: one class per example.
#include "ssm/ops/loss.h"
#include "ssm/train/task_model.h"

namespace ssm::train {

namespace {

// Number of correct argmax predictions in logits (B, C) against targets (B).
int64_t count_correct(const Tensor& logits, const Tensor& targets) {
  const Tensor l = logits.contiguous();
  const int64_t B = l.size(0), C = l.size(1);
  const float* p = l.data<float>();
  int64_t correct = 0;
  for (int64_t b = 0; b < B; ++b) {
    int64_t best = 0;
    for (int64_t c = 1; c < C; ++c)
      if (p[b * C + c] > p[b * C + best]) best = c;
    correct += best == static_cast<int64_t>(targets.at({b}));
  }
  return correct;
}

}  // namespace

ClassifierTaskModel::ClassifierTaskModel(const ModelConfig& config, uint64_t seed)
    : model_(config, seed) {}

BatchResult ClassifierTaskModel::run(const data::Batch& b, bool recurrent) {
  const Tensor logits = recurrent ? model_.forward_recurrent(b.inputs, b.lengths)
                                  : model_.forward(b.inputs, b.lengths);
  BatchResult r;
  r.loss = cross_entropy(logits, b.targets);
  r.examples = r.targets = logits.size(0);
  r.correct = r.examples_correct = count_correct(logits, b.targets);
  return r;
}

}  // namespace ssm::train
