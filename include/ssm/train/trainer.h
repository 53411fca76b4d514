#pragma once
// The training loop for sequence classification: AdamW with parameter groups, warmup +
// cosine schedule, gradient clipping, periodic validation, metrics.jsonl, an SVG plot of the
// curves, atomic checkpoints and resumption.
#include <string>

#include "ssm/nn/sequence_model.h"
#include "ssm/train/config.h"
#include "ssm/train/task_data.h"

namespace ssm::train {

struct EvalResult {
  double loss = 0, accuracy = 0;
  int64_t samples = 0;
};

struct TrainResult {
  EvalResult val, test;
  int64_t steps = 0;
  double seconds = 0;
};

// Runs (or, with resume, continues) the run described by `config` in `run_dir`.
// stop_after_step > 0 stops right after that step (its checkpoint, if due, written) without
// the final evaluation: tests use it to simulate an interrupted run.
TrainResult train(const RunConfig& config, const std::string& run_dir, bool resume,
                  int64_t stop_after_step = 0);

// Loss and accuracy of `model` over `dataset`; recurrent = step mode, token by token.
EvalResult evaluate(nn::SequenceClassifier& model, std::shared_ptr<const data::Dataset> dataset,
                    const data::CollateFn& collate, int64_t batch_size, bool recurrent,
                    const std::string& label);

}  // namespace ssm::train
