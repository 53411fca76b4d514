#pragma once
// What the `ssm bench` suites share: timing with mean ± std, the CPU's name, the PyTorch side
// (a script under bench/ run through /usr/bin/python3 with the same thread count, one JSON
// object back on its stdout) and llama-bench style table cells.
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ssm::cli {

// Options every suite takes.
struct BenchCommonOptions {
  int runs = 10;
  int warmup = 2;
  bool json = false;
  bool no_torch = false;         // ssm side only (tests; machines without torch)
  std::string torch_script_dir;  // where torch_*.py live; empty: the source tree's bench/
  std::string python = "/usr/bin/python3";
};

struct Stats {
  std::vector<double> samples;
  double mean() const;
  double std() const;              // sample standard deviation (n − 1), 0 for one sample
  nlohmann::json to_json() const;  // {"mean", "std", "runs", "samples"}
};

// Runs `fn` `warmup` times, then `runs` times timed; milliseconds per timed run. Each timed run
// is reported on stderr as "<label> run i/n: t ms".
Stats time_ms(const std::string& label, int warmup, int runs, const std::function<void()>& fn);

// "model name" of /proc/cpuinfo (lscpu's Model name), or "unknown CPU".
std::string cpu_model();

// "  12.34 ±   0.56" (16 columns up to 9999.99) as the tables of docs/PERFORMANCE.md.
std::string mean_pm_std(double mean, double std, int precision = 2);

// Runs bench/<script> through Python with `threads` threads (torch.set_num_threads in the
// script, and OPENBLAS_NUM_THREADS / OMP_NUM_THREADS in its environment). When Python, the
// script or torch is missing, or the script fails, available() turns false with a reason, and
// later calls are skipped.
class TorchRunner {
 public:
  explicit TorchRunner(const BenchCommonOptions& options);
  bool available() const { return reason_.empty(); }
  const std::string& reason() const { return reason_; }
  const std::string& version() const { return version_; }
  // The script's JSON object, or null (then see reason()).
  nlohmann::json run(const std::string& script, const std::string& args, int threads);
  // {"available", "reason", "version", "python", "script_dir"}
  nlohmann::json to_json() const;

 private:
  std::string python_, script_dir_, reason_, version_;
};

// A markdown table as llama-bench prints it: the first column left-aligned, the others
// right-aligned; columns widen to fit their cells.
void print_table(const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows);

// "torch 1.13.0" or "torch: unavailable (reason)" from TorchRunner::to_json().
std::string torch_label(const nlohmann::json& torch);

// One comparison row: ssm vs torch (torch may be null), speedup = torch mean / ssm mean.
nlohmann::json comparison_row(const std::string& name, const Stats& ssm,
                              const nlohmann::json& torch);

// Prints `| name | ssm ms | torch ms | speedup |` rows from comparison_row()s on stdout.
void print_comparison_table(const std::string& first_column, const nlohmann::json& rows);

}  // namespace ssm::cli
