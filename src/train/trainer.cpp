#include "ssm/train/trainer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ssm/autograd/node.h"
#include "ssm/io/checkpoint.h"
#include "ssm/ops/loss.h"
#include "ssm/optim/adamw.h"
#include "ssm/optim/clip_grad.h"
#include "ssm/optim/lr_schedule.h"
#include "ssm/train/metrics_log.h"
#include "ssm/train/progress.h"

namespace ssm::train {

namespace fs = std::filesystem;

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

EvalResult evaluate(nn::SequenceClassifier& model, std::shared_ptr<const data::Dataset> dataset,
                    const data::CollateFn& collate, int64_t batch_size, bool recurrent,
                    const std::string& label) {
  NoGradGuard no_grad;
  const bool was_training = model.is_training();
  model.eval();
  data::DataLoader loader(dataset, {batch_size, false, false, 0}, collate);
  EvalResult r;
  double loss_sum = 0;
  int64_t correct = 0;
  Progress progress(label, loader.num_batches());
  for (int64_t i = 0; i < loader.num_batches(); ++i) {
    data::Batch b = loader.batch(i);
    Tensor logits = recurrent ? model.forward_recurrent(b.inputs, b.lengths)
                              : model.forward(b.inputs, b.lengths);
    const int64_t n = logits.size(0);
    loss_sum += cross_entropy(logits, b.targets).item() * static_cast<double>(n);
    correct += count_correct(logits, b.targets);
    r.samples += n;
    if (recurrent && (i + 1) % 10 == 0)
      progress.update(i + 1, fmt::format("acc {:.4f}", double(correct) / double(r.samples)),
                      double(r.samples), "samples");
  }
  model.train(was_training);
  r.loss = r.samples ? loss_sum / static_cast<double>(r.samples) : NAN;
  r.accuracy = r.samples ? static_cast<double>(correct) / static_cast<double>(r.samples) : NAN;
  return r;
}

TrainResult train(const RunConfig& config, const std::string& run_dir, bool resume,
                  int64_t stop_after_step) {
  const TrainConfig& tc = config.train;
  fs::create_directories(run_dir);
  const std::string ckpt_dir = run_dir;
  if (!resume)
    SSM_CHECK(!std::filesystem::exists(io::checkpoint_path(ckpt_dir)),
              "train: '{}' already holds a checkpoint; pass --resume to continue it or choose "
              "another --out",
              run_dir);

  TaskData task = load_task_data(config);
  ModelConfig mc = config.model;
  SSM_CHECK(mc.encoder != "embedding" || mc.d_input >= task.input_dim,
            "config: 'model.d_input' ({}) is smaller than the vocabulary of {} ({})", mc.d_input,
            config.data.dataset, task.input_dim);
  SSM_CHECK(mc.encoder != "linear" || mc.d_input == task.input_dim,
            "config: 'model.d_input' is {}, but {} has {} feature(s) per position", mc.d_input,
            config.data.dataset, task.input_dim);
  SSM_CHECK(mc.n_classes == task.num_classes, "config: 'model.n_classes' is {}, but {} has {} classes",
            mc.n_classes, config.data.dataset, task.num_classes);
  SSM_CHECK(mc.max_length == 0 || task.sequence_length <= mc.max_length,
            "config: sequences of {} are up to {} long, beyond 'model.max_length' {}",
            config.data.dataset, task.sequence_length, mc.max_length);

  if (mc.max_length == 0) mc.max_length = task.sequence_length;
  RunConfig resolved = config;  // what config.toml and checkpoints record
  resolved.model = mc;
  nn::SequenceClassifier model(mc, static_cast<uint64_t>(tc.seed));
  optim::AdamW opt(optim::make_param_groups(model.named_parameters(), tc.lr, tc.weight_decay, tc.ssm_lr));
  data::DataLoader loader(task.train, {tc.batch_size, true, true, static_cast<uint64_t>(tc.seed)},
                          task.collate);
  SSM_CHECK(loader.num_batches() > 0, "train: the training set ({} examples) is smaller than one batch ({})",
            task.train->size(), tc.batch_size);
  const int64_t steps_per_epoch = loader.num_batches();
  int64_t total_steps = steps_per_epoch * tc.epochs;
  if (tc.max_steps > 0) total_steps = std::min(total_steps, tc.max_steps);
  SSM_CHECK(tc.warmup_steps < total_steps,
            "config: 'train.warmup_steps' ({}) must be below the run's total steps ({})",
            tc.warmup_steps, total_steps);
  auto schedule = optim::make_schedule("cosine", tc.warmup_steps, total_steps, tc.min_lr_ratio);
  const int64_t eval_every = tc.eval_every > 0 ? tc.eval_every : steps_per_epoch;
  const int64_t ckpt_every = tc.checkpoint_every > 0 ? tc.checkpoint_every : eval_every;
  const int64_t eval_bs = tc.eval_batch_size > 0 ? tc.eval_batch_size : tc.batch_size;

  int64_t step = 0;
  MetricsLog metrics(run_dir + "/metrics.jsonl");
  if (resume) {
    io::Checkpoint ck = io::load_checkpoint(ckpt_dir);
    model.load_state_dict(ck.model_state);
    opt.load_state_dict(ck.optimizer_state);
    step = nlohmann::json::parse(ck.metadata_json).at("step").get<int64_t>();
    metrics.truncate_after_step(step);
    std::fprintf(stderr, "resumed from %s at step %lld\n", ckpt_dir.c_str(), static_cast<long long>(step));
  }
  {
    std::ofstream(run_dir + "/config.toml") << config_to_toml(resolved);
  }
  std::fprintf(stderr, "model: %s, %lld parameters; train %lld / val %lld / test %lld examples, L=%lld\n",
               mc.layer.c_str(), static_cast<long long>(model.num_parameters()),
               static_cast<long long>(task.train->size()), static_cast<long long>(task.val->size()),
               static_cast<long long>(task.test->size()), static_cast<long long>(task.sequence_length));

  auto save = [&](int64_t at_step) {
    nlohmann::json meta = {{"step", at_step}, {"config", config_to_toml(resolved)}};
    io::save_checkpoint(ckpt_dir, model.state_dict(), opt.state_dict(), meta.dump());
  };

  TrainResult result;
  Progress progress("step", total_steps);
  double loss_acc = 0, samples_since = 0;
  int64_t correct_acc = 0, seen_acc = 0;
  model.train();
  while (step < total_steps) {
    const int64_t epoch = step / steps_per_epoch;
    loader.set_epoch(epoch);
    for (int64_t bi = step % steps_per_epoch; bi < steps_per_epoch && step < total_steps; ++bi) {
      data::Batch b = loader.batch(bi);
      opt.set_lr_scale(schedule->lr_scale(step));
      model.reseed_dropout(static_cast<uint64_t>(tc.seed), step);
      Tensor logits = model.forward(b.inputs, b.lengths);
      Tensor loss = cross_entropy(logits, b.targets);
      const double loss_value = loss.item();
      SSM_CHECK(std::isfinite(loss_value),
                "train: the loss became {} at step {}; stopping (the last checkpoint in '{}' is intact)",
                loss_value, step, ckpt_dir);
      opt.zero_grad();
      loss.backward();
      if (tc.grad_clip > 0) optim::clip_grad_norm(model.parameters(), tc.grad_clip);
      opt.step();
      ++step;
      const int64_t n = logits.size(0);
      loss_acc += loss_value * n;
      correct_acc += count_correct(logits, b.targets);
      seen_acc += n;
      samples_since += n;
      if (step % tc.log_every == 0 || step == total_steps) {
        const double train_loss = loss_acc / seen_acc, train_acc = double(correct_acc) / seen_acc;
        progress.update(step, fmt::format("epoch {} | loss {:.4f} | acc {:.4f} | lr {:.2e}", epoch + 1,
                                          train_loss, train_acc, tc.lr * opt.lr_scale()),
                        samples_since, "samples");
        metrics.write({{"step", step}, {"epoch", epoch + 1}, {"train_loss", train_loss},
                       {"train_accuracy", train_acc}, {"lr", tc.lr * opt.lr_scale()},
                       {"elapsed_s", progress.elapsed_seconds()}});
        loss_acc = 0;
        correct_acc = seen_acc = 0;
      }
      if (step % eval_every == 0 || step == total_steps) {
        result.val = evaluate(model, task.val, task.collate, eval_bs, false, "val");
        std::fprintf(stderr, "validation at step %lld: loss %.4f, accuracy %.4f\n",
                     static_cast<long long>(step), result.val.loss, result.val.accuracy);
        metrics.write({{"step", step}, {"val_loss", result.val.loss}, {"val_accuracy", result.val.accuracy}});
        metrics.plot(run_dir + "/curves.svg");
      }
      if (step % ckpt_every == 0 || step == total_steps) save(step);
      if (stop_after_step > 0 && step >= stop_after_step) {
        result.steps = step;
        return result;  // as if the process had died here
      }
    }
  }
  result.steps = step;
  result.seconds = progress.elapsed_seconds();
  result.test = evaluate(model, task.test, task.collate, eval_bs, false, "test");
  metrics.write({{"step", step}, {"test_loss", result.test.loss}, {"test_accuracy", result.test.accuracy}});
  return result;
}

}  // namespace ssm::train
