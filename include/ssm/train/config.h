#pragma once
// A training run's configuration: read from TOML, overridden by `--set section.key=value`,
// validated before anything runs (unknown keys and invalid values name the key), and
// written back resolved into the run directory.
#include <cstdint>
#include <string>
#include <vector>

namespace ssm::train {

struct ModelConfig {
  std::string layer = "s4d";      // s4d | s4 | s5
  std::string encoder = "linear"; // linear (real-valued inputs) | embedding (token ids)
  int64_t d_input = 1;            // input features (linear) or vocabulary size (embedding)
  int64_t d_model = 64;
  int64_t d_state = 64;
  int64_t n_layers = 4;
  int64_t n_classes = 10;
  double dropout = 0.0;
  bool prenorm = true;
  std::string norm = "layer";     // layer | batch
  std::string pooling = "mean";   // mean | last
  std::string init = "legs";      // s4d: lin | inv | real | legs; s4: legs | legt
  std::string discretization = "zoh";  // zoh | bilinear
  double dt_min = 1e-3, dt_max = 1e-1;
  bool bidirectional = false;     // non-causal SSM (no step mode)
  // 0: set from the data at training time; sequences longer than this are rejected. It is
  // also the S4 layer's kernel length l_max.
  int64_t max_length = 0;
};

struct DataConfig {
  std::string dataset = "fashion-mnist";  // fashion-mnist | mnist | listops
  std::string dir;                // dataset directory (mnist, listops cache); empty = default
  bool permute = false;           // fixed random pixel permutation (psMNIST)
  int64_t train_limit = 0;        // use only the first N training examples (0 = all)
  int64_t val_size = 5000;        // held out from the training set for validation
  int64_t test_limit = 0;         // evaluate on the first N test examples (0 = all)
};

struct TrainConfig {
  int64_t seed = 0;
  int64_t batch_size = 50;
  int64_t epochs = 1;
  int64_t max_steps = 0;          // stop after this many steps (0 = run all epochs)
  double lr = 1e-2;
  double ssm_lr = 1e-3;
  double weight_decay = 0.01;
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;      // cosine floor as a fraction of lr
  double grad_clip = 0.0;         // 0 = off
  int64_t log_every = 10;
  int64_t eval_every = 0;         // validate every N steps (0 = once per epoch)
  int64_t checkpoint_every = 0;   // checkpoint every N steps (0 = at each validation)
  int64_t eval_batch_size = 0;    // 0 = batch_size
};

struct RunConfig {
  ModelConfig model;
  DataConfig data;
  TrainConfig train;
};

// Parses TOML text, applies `overrides` ("section.key=value", value in TOML syntax or a bare
// string), validates. `source` names the file in errors.
RunConfig parse_config(const std::string& toml_text, const std::vector<std::string>& overrides,
                       const std::string& source);
RunConfig load_config(const std::string& path, const std::vector<std::string>& overrides);
std::string config_to_toml(const RunConfig& c);
void validate(const RunConfig& c);

}  // namespace ssm::train
