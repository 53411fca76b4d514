#include "ssm/train/trainer.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

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

// Running sums of BatchResults.
struct Totals {
  double loss_sum = 0;  // loss × targets
  int64_t targets = 0, correct = 0, examples = 0, examples_correct = 0;
  void add(double loss, const BatchResult& b) {
    loss_sum += loss * static_cast<double>(b.targets);
    targets += b.targets;
    correct += b.correct;
    examples += b.examples;
    examples_correct += b.examples_correct;
  }
  EvalResult result(const TaskData& task) const {
    EvalResult r;
    r.samples = examples;
    r.targets = targets;
    r.loss = targets ? loss_sum / static_cast<double>(targets) : NAN;
    r.accuracy = targets ? static_cast<double>(correct) / static_cast<double>(targets) : NAN;
    if (task.example_accuracy && examples)
      r.example_accuracy = static_cast<double>(examples_correct) / static_cast<double>(examples);
    if (task.byte_level) r.bpc = r.loss / std::log(2.0);
    return r;
  }
};

// The metrics.jsonl fields of `r`, named prefix_loss, prefix_accuracy, ….
void add_fields(nlohmann::json& record, const std::string& prefix, const EvalResult& r) {
  record[prefix + "_loss"] = r.loss;
  record[prefix + "_accuracy"] = r.accuracy;
  if (!std::isnan(r.example_accuracy)) record[prefix + "_example_accuracy"] = r.example_accuracy;
  if (!std::isnan(r.bpc)) record[prefix + "_bpc"] = r.bpc;
}

std::string summary(const EvalResult& r) {
  std::string s = fmt::format("loss {:.4f}, accuracy {:.4f}", r.loss, r.accuracy);
  if (!std::isnan(r.example_accuracy)) s += fmt::format(", solved {:.4f}", r.example_accuracy);
  if (!std::isnan(r.bpc)) s += fmt::format(", {:.4f} bpc", r.bpc);
  return s;
}

// The tensors of a state dict as CPU tensors (a checkpoint file is written from host memory).
std::map<std::string, Tensor> on_cpu(std::map<std::string, Tensor> state) {
  for (auto& [name, t] : state)
    if (t.defined()) t = t.detach().to(Device::CPU);
  return state;
}

// Copies the model weights of the run in `dir` into `module` (same architecture and shapes:
// load_state_dict names the first tensor that differs).
void init_weights_from(nn::Module& module, const std::string& dir) {
  SSM_CHECK(fs::exists(io::checkpoint_path(dir)),
            "config: 'train.init_from' = '{}' holds no checkpoint (expected {})", dir,
            io::checkpoint_path(dir));
  try {
    module.load_state_dict(io::load_checkpoint(dir).model_state);
  } catch (const Error& e) {
    SSM_FAIL("config: 'train.init_from' = '{}': {}", dir, e.what());
  }
  std::fprintf(stderr, "weights initialised from %s\n", dir.c_str());
}

}  // namespace

nlohmann::json to_json(const EvalResult& r) {
  nlohmann::json j = {{"loss", r.loss}, {"accuracy", r.accuracy}, {"samples", r.samples}};
  if (r.targets != r.samples) j["tokens"] = r.targets;
  if (!std::isnan(r.example_accuracy)) j["example_accuracy"] = r.example_accuracy;
  if (!std::isnan(r.bpc)) j["bpc"] = r.bpc;
  return j;
}

EvalResult evaluate(TaskModel& model, const TaskData& task,
                    std::shared_ptr<const data::Dataset> dataset, int64_t batch_size,
                    bool recurrent, const std::string& label) {
  NoGradGuard no_grad;
  nn::Module& module = model.module();
  const bool was_training = module.is_training();
  module.eval();
  data::DataLoader loader(dataset, {batch_size, false, false, 0}, task.collate);
  Totals totals;
  Progress progress(label, loader.num_batches());
  for (int64_t i = 0; i < loader.num_batches(); ++i) {
    const BatchResult b = model.run(loader.batch(i), recurrent);
    totals.add(b.loss.item(), b);
    if (recurrent && (i + 1) % 10 == 0)
      progress.update(i + 1, fmt::format("acc {:.4f}", totals.result(task).accuracy),
                      double(totals.examples), "samples");
  }
  module.train(was_training);
  return totals.result(task);
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
  const RunConfig resolved =
      resolve_config(config, task);  // what config.toml and checkpoints record
  std::unique_ptr<TaskModel> model_ptr = make_task_model(resolved);
  TaskModel& model = *model_ptr;
  nn::Module& module = model.module();
  optim::AdamW opt(
      optim::make_param_groups(module.named_parameters(), tc.lr, tc.weight_decay, tc.ssm_lr));
  data::DataLoader loader(task.train, {tc.batch_size, true, true, static_cast<uint64_t>(tc.seed)},
                          task.collate);
  SSM_CHECK(loader.num_batches() > 0,
            "train: the training set ({} examples) is smaller than one batch ({})",
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
    module.load_state_dict(ck.model_state);
    opt.load_state_dict(ck.optimizer_state);
    step = nlohmann::json::parse(ck.metadata_json).at("step").get<int64_t>();
    metrics.truncate_after_step(step);
    std::fprintf(stderr, "resumed from %s at step %lld\n", ckpt_dir.c_str(),
                 static_cast<long long>(step));
  } else if (!tc.init_from.empty()) {
    init_weights_from(module, resolved.train.init_from);
  }
  { std::ofstream(run_dir + "/config.toml") << config_to_toml(resolved); }
  std::fprintf(
      stderr, "model: %s, %lld parameters; train %lld / val %lld / test %lld examples, L=%lld\n",
      model.name().c_str(), static_cast<long long>(module.num_parameters()),
      static_cast<long long>(task.train->size()), static_cast<long long>(task.val->size()),
      static_cast<long long>(task.test->size()), static_cast<long long>(task.sequence_length));

  int64_t last_saved = resume ? step : -1;
  auto save = [&](int64_t at_step) {
    last_saved = at_step;
    nlohmann::json meta = {{"step", at_step}, {"config", config_to_toml(resolved)}};
    io::save_checkpoint(ckpt_dir, on_cpu(module.state_dict()), on_cpu(opt.state_dict()),
                        meta.dump());
  };

  TrainResult result;
  Progress progress("step", total_steps);
  Totals since_log;
  double samples_done = 0;  // since this process started (the rate's numerator)
  module.train();
  while (step < total_steps) {
    const int64_t epoch = step / steps_per_epoch;
    loader.set_epoch(epoch);
    for (int64_t bi = step % steps_per_epoch; bi < steps_per_epoch && step < total_steps; ++bi) {
      data::Batch b = loader.batch(bi);
      opt.set_lr_scale(schedule->lr_scale(step));
      model.reseed_dropout(static_cast<uint64_t>(tc.seed), step);
      // A diverging run fails inside the step (the loss op refuses non-finite logits) or at
      // the loss check: either way it stops with the step and the checkpoint left intact.
      const auto stopped = [&](const std::string& why) {
        const std::string kept =
            last_saved < 0
                ? std::string("no checkpoint was written yet")
                : fmt::format("the checkpoint of step {} in '{}' is intact", last_saved, ckpt_dir);
        return Error(fmt::format("train: stopped at step {}: {} ({})", step + 1, why, kept));
      };
      BatchResult out;
      double loss_value = 0;
      try {
        out = model.run(b, false);
        loss_value = out.loss.item();
        if (std::isfinite(loss_value)) {
          opt.zero_grad();
          out.loss.backward();
          if (tc.grad_clip > 0) optim::clip_grad_norm(module.parameters(), tc.grad_clip);
          opt.step();
        }
      } catch (const Error& e) {
        throw stopped(e.what());
      }
      if (!std::isfinite(loss_value)) throw stopped(fmt::format("the loss is {}", loss_value));
      ++step;
      since_log.add(loss_value, out);
      samples_done += static_cast<double>(out.examples);
      if (step % tc.log_every == 0 || step == total_steps) {
        const EvalResult tr = since_log.result(task);
        std::string fields =
            fmt::format("epoch {} | loss {:.4f} | acc {:.4f}", epoch + 1, tr.loss, tr.accuracy);
        if (!std::isnan(tr.bpc)) fields += fmt::format(" | bpc {:.3f}", tr.bpc);
        fields += fmt::format(" | lr {:.2e}", tc.lr * opt.lr_scale());
        progress.update(step, fields, samples_done, "samples");
        nlohmann::json record = {{"step", step}, {"epoch", epoch + 1}};
        add_fields(record, "train", tr);
        record["lr"] = tc.lr * opt.lr_scale();
        record["elapsed_s"] = progress.elapsed_seconds();
        metrics.write(record);
        since_log = Totals{};
      }
      if (step % eval_every == 0 || step == total_steps) {
        result.val = evaluate(model, task, task.val, eval_bs, false, "val");
        std::fprintf(stderr, "validation at step %lld: %s\n", static_cast<long long>(step),
                     summary(result.val).c_str());
        nlohmann::json record = {{"step", step}};
        add_fields(record, "val", result.val);
        metrics.write(record);
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
  // The last step always validates; a task whose test split is its validation split (text
  // without data.test_fraction) need not run it twice (unless no step ran in this process).
  const bool test_is_val = task.test == task.val && result.val.samples > 0;
  result.test = test_is_val ? result.val : evaluate(model, task, task.test, eval_bs, false, "test");
  nlohmann::json record = {{"step", step}};
  add_fields(record, "test", result.test);
  metrics.write(record);
  return result;
}

}  // namespace ssm::train
