#pragma once
// A training run's configuration: read from TOML, overridden by `--set section.key=value`,
// validated before anything runs (unknown keys and invalid values name the key), and
// written back resolved into the run directory.
#include <cstdint>
#include <string>
#include <vector>

#include "ssm/data/induction_heads.h"
#include "ssm/data/mqar.h"
#include "ssm/data/selective_copy.h"

namespace ssm::train {

struct ModelConfig {
  std::string layer = "s4d";       // s4d | s4 | s5
  std::string encoder = "linear";  // linear (real-valued inputs) | embedding (token ids)
  int64_t d_input = 1;             // input features (linear) or vocabulary size (embedding)
  int64_t d_model = 64;
  int64_t d_state = 64;
  int64_t n_layers = 4;
  int64_t n_classes = 10;
  double dropout = 0.0;
  bool prenorm = true;
  std::string norm = "layer";    // layer | batch
  std::string pooling = "mean";  // mean | last
  std::string init = "legs";  // s4d: lin|inv|real|legs|legs-ptd; s4: legs|legt; s5: legs|legs-ptd
  int64_t s5_blocks = 0;      // s5: J, the HiPPO-LegS blocks of the init, each of order d_state / J
                              // (0: blocks of order min(16, d_state))
  double ptd_norm = 0.1;      // init legs-ptd: spectral norm ‖E‖₂ of the perturbation (> 0)
  std::string discretization = "zoh";  // zoh | bilinear
  double dt_min = 1e-3, dt_max = 1e-1;
  bool bidirectional = false;  // non-causal SSM (no step mode)
  // 0: set from the data at training time; sequences longer than this are rejected. It is
  // also the S4 layer's kernel length l_max.
  int64_t max_length = 0;

  // Language models for the token tasks. arch "" builds the sequence classifier above (of
  // model.layer); mamba1 | mamba2 | mamba3 builds a MambaLM with that mixer, of d_model,
  // n_layers and d_state (the keys above) and these:
  std::string arch;
  int64_t expand = 2;      // D_inner = expand · d_model
  int64_t d_conv = 4;      // causal conv width (mamba1, mamba2; mamba3 has no conv)
  int64_t dt_rank = 0;     // mamba1: 0 = ceil(d_model / 16)
  int64_t head_dim = 64;   // mamba2, mamba3: P (D_inner must be a multiple)
  int64_t n_groups = 1;    // mamba2, mamba3: groups G sharing B and C
  int64_t vocab_size = 0;  // 0: the task's vocabulary
};

struct DataConfig {
  std::string dataset = "fashion-mnist";  // fashion-mnist | mnist | listops
  std::string dir;          // dataset directory (mnist, listops cache); empty = default
  bool permute = false;     // fixed random pixel permutation (psMNIST)
  int64_t train_limit = 0;  // use only the first N training examples (0 = all)
  int64_t val_size = 5000;  // held out from the training set for validation
  int64_t test_limit = 0;   // evaluate on the first N test examples (0 = all)

  // Token tasks: selective-copy | induction-heads | mqar (generated) and text (bytes of a
  // file). Zeros are the task's defaults, filled in when the config is read.
  std::string path;         // text: the file (relative paths: to the working directory)
  int64_t seq_len = 0;      // training length (selective-copy 4096, others 256)
  int64_t eval_length = 0;  // validation / test length (0 = seq_len)
  int64_t vocab_size =
      0;  // selective-copy, induction-heads: data tokens (16); mqar: all ids (8192)
  int64_t num_tokens = 16;     // selective-copy: tokens to copy
  int64_t num_pairs = 16;      // mqar: key-value pairs
  int64_t train_size = 16384;  // generated tasks: training examples per epoch
  int64_t test_size = 1000;    // generated tasks: test examples (data.val_size: validation)
  double val_fraction = 0.1;   // text: the part after the training part
  double test_fraction = 0.0;  // text: the last part (0: test on the validation part)
};

struct TrainConfig {
  int64_t seed = 0;
  int64_t batch_size = 50;
  int64_t epochs = 1;
  int64_t max_steps = 0;  // stop after this many steps (0 = run all epochs)
  double lr = 1e-2;
  double ssm_lr = 1e-3;
  double weight_decay = 0.01;
  int64_t warmup_steps = 0;
  double min_lr_ratio = 0.0;  // cosine floor as a fraction of lr
  double grad_clip = 0.0;     // 0 = off
  int64_t log_every = 10;
  int64_t eval_every = 0;        // validate every N steps (0 = once per epoch)
  int64_t checkpoint_every = 0;  // checkpoint every N steps (0 = at each validation)
  int64_t eval_batch_size = 0;   // 0 = batch_size
  // A run directory whose checkpoint's model weights start this run (fine-tuning, or a
  // curriculum such as a shorter sequence length first); the optimizer and the step start
  // afresh. Ignored on --resume, where the run's own checkpoint wins. "" = random init.
  std::string init_from;
  // Where the model trains and evaluates: "cpu", or "cuda" (the language-model tasks of
  // model.arch mamba1 and mamba2, whose every op has a CUDA kernel).
  std::string device = "cpu";
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

// Datasets whose examples are token sequences with per-position targets (a language model's
// tasks); the others are sequence classification.
bool is_token_task(const std::string& dataset);
// Fills the zeros of data.seq_len and data.vocab_size with the task's defaults.
void apply_task_defaults(DataConfig& d);
// The generator options a data config describes (at its data.seq_len).
data::SelectiveCopyOptions selective_copy_options(const DataConfig& d);
data::InductionHeadsOptions induction_heads_options(const DataConfig& d);
data::MqarOptions mqar_options(const DataConfig& d);

}  // namespace ssm::train
