#pragma once
// The training loop, for sequence classification and for the token tasks of language models
// alike (a TaskModel hides the difference): AdamW with parameter groups, warmup + cosine
// schedule, gradient clipping, periodic validation, metrics.jsonl, an SVG plot of the curves,
// atomic checkpoints and resumption.
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "ssm/train/config.h"
#include "ssm/train/task_data.h"
#include "ssm/train/task_model.h"

namespace ssm::train {

// loss: mean cross-entropy (nats) per target (per example for classification, per target
// token for token tasks); accuracy: the fraction of targets predicted right.
struct EvalResult {
  double loss = 0, accuracy = 0;
  int64_t samples = 0;  // examples
  int64_t targets = 0;  // targets counted (= samples for classification)
  // Generated token tasks: the fraction of examples with every target right (else NaN).
  double example_accuracy = NAN;
  // Byte-level text: loss in bits per byte (= per character for ASCII) (else NaN).
  double bpc = NAN;
};

// {"loss", "accuracy", "samples"} and, where defined, "tokens", "example_accuracy", "bpc".
nlohmann::json to_json(const EvalResult& r);

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
EvalResult evaluate(TaskModel& model, const TaskData& task,
                    std::shared_ptr<const data::Dataset> dataset, int64_t batch_size,
                    bool recurrent, const std::string& label);

}  // namespace ssm::train
