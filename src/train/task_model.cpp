#include "ssm/train/task_model.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "ssm/core/cuda.h"
#include "ssm/io/checkpoint.h"

namespace ssm::train {

namespace fs = std::filesystem;

RunConfig resolve_config(const RunConfig& config, const TaskData& task) {
  RunConfig r = config;
  apply_task_defaults(r.data);
  // Recorded absolute, so that resuming or reading config.toml elsewhere names the same run.
  if (!r.train.init_from.empty())
    r.train.init_from = fs::absolute(r.train.init_from).lexically_normal().string();
  ModelConfig& mc = r.model;
  const std::string& dataset = r.data.dataset;
  if (task.language_model) {
    SSM_CHECK(mc.vocab_size == 0 || mc.vocab_size >= task.input_dim,
              "config: 'model.vocab_size' ({}) is smaller than the vocabulary of {} ({})",
              mc.vocab_size, dataset, task.input_dim);
    if (mc.vocab_size == 0) mc.vocab_size = task.input_dim;
    if (!r.data.path.empty()) r.data.path = fs::absolute(r.data.path).lexically_normal().string();
    return r;
  }
  SSM_CHECK(mc.encoder != "embedding" || mc.d_input >= task.input_dim,
            "config: 'model.d_input' ({}) is smaller than the vocabulary of {} ({})", mc.d_input,
            dataset, task.input_dim);
  SSM_CHECK(mc.encoder != "linear" || mc.d_input == task.input_dim,
            "config: 'model.d_input' is {}, but {} has {} feature(s) per position", mc.d_input,
            dataset, task.input_dim);
  SSM_CHECK(mc.n_classes == task.num_classes,
            "config: 'model.n_classes' is {}, but {} has {} classes", mc.n_classes, dataset,
            task.num_classes);
  SSM_CHECK(mc.max_length == 0 || task.sequence_length <= mc.max_length,
            "config: sequences of {} are up to {} long, beyond 'model.max_length' {}", dataset,
            task.sequence_length, mc.max_length);
  if (mc.max_length == 0) mc.max_length = task.sequence_length;
  return r;
}

Device config_device(const TrainConfig& t) {
  if (t.device != "cuda") return Device::CPU;
  SSM_CHECK(cuda::available(), "config: 'train.device' = 'cuda', but {}",
            cuda::built() ? "this machine has no usable CUDA device"
                          : "this build has no CUDA backend (configure with -DSSM_CUDA=ON)");
  return Device::CUDA;
}

std::unique_ptr<TaskModel> make_task_model(const RunConfig& resolved) {
  const auto seed = static_cast<uint64_t>(resolved.train.seed);
  const Device device = config_device(resolved.train);  // checked before the model is built
  std::unique_ptr<TaskModel> model;
  if (!resolved.model.arch.empty())
    model = std::make_unique<LanguageModelTaskModel>(resolved.model, seed);
  else
    model = std::make_unique<ClassifierTaskModel>(resolved.model, seed);
  // Initialised on the CPU (the same draws on either device), then moved.
  model->module().to(device);
  return model;
}

bool is_run_dir(const std::string& dir) {
  return fs::exists(fs::path(dir) / "config.toml") && fs::exists(io::checkpoint_path(dir));
}

TrainedLanguageModel load_trained_language_model(const std::string& run_dir) {
  SSM_CHECK(is_run_dir(run_dir),
            "'{}' is not a training run directory (config.toml and checkpoint.safetensors)",
            run_dir);
  TrainedLanguageModel t;
  t.config = load_config((fs::path(run_dir) / "config.toml").string(), {});
  SSM_CHECK(!t.config.model.arch.empty() && t.config.model.vocab_size > 0,
            "run '{}' trained a {} classifier on {}, not a language model", run_dir,
            t.config.model.layer, t.config.data.dataset);
  t.model = make_language_model(t.config.model, static_cast<uint64_t>(t.config.train.seed));
  t.model->load_state_dict(io::load_checkpoint(run_dir).model_state);
  return t;
}

}  // namespace ssm::train
