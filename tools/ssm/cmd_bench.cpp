// `ssm bench lti|scan|lm`: performance suites (issues 3 and 4), llama-bench style tables on
// stdout (mean ± std over --runs timed runs after warm-up), progress on stderr, and with --json
// exactly one JSON object on stdout holding every number. The PyTorch side of lti and scan runs
// in the same invocation through /usr/bin/python3 (bench/torch_*.py); without Python or torch
// the ssm side is still printed, with "torch: unavailable".
#include <cstdio>
#include <memory>

#include "bench_suites.h"
#include "commands.h"
#include "validators.h"

namespace ssm::cli {

namespace {

void add_common(CLI::App* cmd, BenchCommonOptions& c) {
  cmd->add_option("--runs", c.runs, "Timed runs per test (at least 5)")
      ->check(CLI::Range(5, 1000000))
      ->capture_default_str();
  cmd->add_option("--warmup", c.warmup, "Untimed runs before the timed ones")
      ->check(kNonNegativeInteger)
      ->capture_default_str();
  cmd->add_flag("--json", c.json, "Print one JSON object on stdout with every number");
  cmd->add_flag("--no-torch", c.no_torch, "Skip the PyTorch side");
  cmd->add_option("--torch-script-dir", c.torch_script_dir,
                  "Directory of torch_lti.py / torch_scan.py (default: the source tree's bench/)");
  cmd->add_option("--python", c.python, "Python interpreter with torch")->capture_default_str();
}

void emit(const nlohmann::json& result, bool json, void (*print)(const nlohmann::json&)) {
  if (json)
    std::printf("%s\n", result.dump().c_str());
  else
    print(result);
}

void register_lti(CLI::App* bench, GlobalOptions& g) {
  auto* cmd = bench->add_subcommand(
      "lti", "S4D and S4 layer forward+backward (B=16, H=128, N=64, L=1024) vs PyTorch");
  auto o = std::make_shared<LtiBenchOptions>();
  add_common(cmd, o->common);
  cmd->add_option("--threads", o->threads, "CPU threads for both sides (default: ssm --threads)")
      ->check(kPositiveInteger);
  cmd->add_option("--batch", o->batch, "B")->capture_default_str();
  cmd->add_option("--channels", o->channels, "H")->capture_default_str();
  cmd->add_option("--state", o->state, "N (N/2 complex modes)")->capture_default_str();
  cmd->add_option("--length", o->length, "L")->capture_default_str();
  cmd->add_option("--layers", o->layers, "Layers to run (s4d, s4)")->delimiter(',');
  cmd->callback([&g, o] {
    apply_globals(g);
    emit(run_lti_bench(*o), o->common.json, print_lti_bench);
  });
}

void register_scan(CLI::App* bench, GlobalOptions& g) {
  auto* cmd = bench->add_subcommand(
      "scan", "Selective scan and SSD forward+backward vs PyTorch references");
  auto o = std::make_shared<ScanBenchOptions>();
  o->common.warmup = 1;
  add_common(cmd, o->common);
  cmd->add_option("--threads", o->threads, "CPU threads for both sides (default: ssm --threads)")
      ->check(kPositiveInteger);
  cmd->add_option("--device", o->device, "cpu (default) or cuda: both sides on the GPU")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--torch-runs", o->torch_runs,
                  "Timed runs of the (slow) PyTorch side (default: --runs)")
      ->check(kPositiveInteger);
  cmd->add_option("--batch", o->batch, "B of both ops")->capture_default_str();
  cmd->add_option("--length", o->length, "L of both ops")->capture_default_str();
  cmd->add_option("--d-inner", o->d_inner, "Selective scan channels D")->capture_default_str();
  cmd->add_option("--scan-state", o->scan_state, "Selective scan state N")->capture_default_str();
  cmd->add_option("--heads", o->heads, "SSD heads H")->capture_default_str();
  cmd->add_option("--head-dim", o->head_dim, "SSD head dim P")->capture_default_str();
  cmd->add_option("--ssd-state", o->ssd_state, "SSD state N")->capture_default_str();
  cmd->add_option("--chunk", o->chunk, "ssm SSD chunk length (default: the op's)");
  cmd->add_option("--torch-chunk", o->torch_chunk, "PyTorch SSD chunk length")
      ->capture_default_str();
  cmd->add_option("--ops", o->ops, "Ops to run (selective_scan, ssd)")->delimiter(',');
  cmd->callback([&g, o] {
    apply_globals(g);
    emit(run_scan_bench(*o), o->common.json, print_scan_bench);
  });
}

void register_lm(CLI::App* bench, GlobalOptions& g) {
  auto* cmd = bench->add_subcommand(
      "lm", "Mamba LM prefill (pp) and decode (tg) tokens/s at batch 1, decode GB/s");
  auto o = std::make_shared<LmBenchOptions>();
  o->common.runs = 5;
  o->common.warmup = 1;
  add_common(cmd, o->common);
  cmd->add_option("--model", o->model_dir,
                  "Hugging Face Mamba directory (default: random weights, Mamba-130M shape)");
  cmd->add_option("-p,--prompt", o->prompt, "Prompt tokens of the pp test")->capture_default_str();
  cmd->add_option("-n,--generate", o->generate, "Decode steps of the tg test")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Thread counts, comma-separated")
      ->delimiter(',')
      ->capture_default_str();
  cmd->add_option("--n-layer", o->n_layer, "Layers of the random model")->capture_default_str();
  cmd->add_option("--d-model", o->d_model, "d_model of the random model")->capture_default_str();
  cmd->add_option("--vocab", o->vocab, "Vocabulary of the random model")->capture_default_str();
  cmd->add_option("--d-state", o->d_state, "d_state of the random model")->capture_default_str();
  cmd->add_option("--expand", o->expand, "expand of the random model")->capture_default_str();
  cmd->add_option("--device", o->device, "cpu (default) or cuda: the GPU suite")
      ->check(CLI::IsMember({"cpu", "cuda"}));
  cmd->add_option("--train-batch", o->train_batch,
                  "GPU training test: sequences per step (0: skip)")
      ->capture_default_str();
  cmd->add_option("--train-length", o->train_length, "GPU training test: tokens per sequence")
      ->capture_default_str();
  cmd->add_option("--bandwidth-mib", o->bandwidth_mib,
                  "Size of each array of the memory bandwidth test")
      ->check(kPositiveInteger)
      ->capture_default_str();
  cmd->callback([&g, o] {
    apply_globals(g);
    emit(run_lm_bench(*o), o->common.json, print_lm_bench);
  });
}

}  // namespace

void register_bench(CLI::App& app, GlobalOptions& g) {
  auto* bench =
      app.add_subcommand("bench", "Performance suites: lti, scan, lm (see --help of each)");
  bench->require_subcommand(1);
  register_lti(bench, g);
  register_scan(bench, g);
  register_lm(bench, g);
}

}  // namespace ssm::cli
