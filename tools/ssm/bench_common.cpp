#include "bench_common.h"

#include <fmt/format.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>

#ifndef SSM_SOURCE_DIR
#define SSM_SOURCE_DIR ""
#endif

namespace ssm::cli {

double Stats::mean() const {
  if (samples.empty()) return 0;
  return std::accumulate(samples.begin(), samples.end(), 0.0) / static_cast<double>(samples.size());
}

double Stats::std() const {
  if (samples.size() < 2) return 0;
  const double m = mean();
  double ss = 0;
  for (double s : samples) ss += (s - m) * (s - m);
  return std::sqrt(ss / static_cast<double>(samples.size() - 1));
}

nlohmann::json Stats::to_json() const {
  return {{"mean", mean()}, {"std", std()}, {"runs", samples.size()}, {"samples", samples}};
}

Stats time_ms(const std::string& label, int warmup, int runs, const std::function<void()>& fn) {
  for (int i = 0; i < warmup; ++i) fn();
  Stats s;
  for (int i = 0; i < runs; ++i) {
    const auto start = std::chrono::steady_clock::now();
    fn();
    const std::chrono::duration<double, std::milli> t = std::chrono::steady_clock::now() - start;
    s.samples.push_back(t.count());
    std::fprintf(stderr, "%s run %d/%d: %.2f ms\n", label.c_str(), i + 1, runs, t.count());
  }
  return s;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) != 0) continue;
    const size_t colon = line.find(':');
    if (colon == std::string::npos) break;
    const size_t start = line.find_first_not_of(" \t", colon + 1);
    return start == std::string::npos ? "unknown CPU" : line.substr(start);
  }
  return "unknown CPU";
}

std::string mean_pm_std(double mean, double std, int precision) {
  return fmt::format("{:7.{}f} ± {:6.{}f}", mean, precision, std, precision);
}

namespace {

// Single-quoted for /bin/sh.
std::string shell_quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

}  // namespace

TorchRunner::TorchRunner(const BenchCommonOptions& o)
    : python_(o.python),
      script_dir_(o.torch_script_dir.empty() ? std::string(SSM_SOURCE_DIR) + "/bench"
                                             : o.torch_script_dir) {
  if (o.no_torch)
    reason_ = "--no-torch";
  else if (::access(python_.c_str(), X_OK) != 0)
    reason_ = python_ + " not found";
}

nlohmann::json TorchRunner::run(const std::string& script, const std::string& args, int threads) {
  if (!available()) return nullptr;
  const std::string path = script_dir_ + "/" + script;
  if (!std::filesystem::exists(path)) {
    reason_ = path + " not found (--torch-script-dir)";
    return nullptr;
  }
  const std::string cmd =
      fmt::format("OPENBLAS_NUM_THREADS={0} OMP_NUM_THREADS={0} {1} {2} --threads {0} {3}", threads,
                  shell_quote(python_), shell_quote(path), args);
  std::FILE* p = popen(cmd.c_str(), "r");
  if (!p) {
    reason_ = "cannot start " + python_;
    return nullptr;
  }
  std::string out;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  const nlohmann::json j = nlohmann::json::parse(out, nullptr, /*allow_exceptions=*/false);
  const bool exited_ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (exited_ok && j.is_object() && j.contains("mean_ms")) {
    version_ = j.value("torch_version", "");
    return j;
  }
  if (j.is_object() && j.contains("error"))
    reason_ = j["error"].get<std::string>();
  else
    reason_ = fmt::format("{} failed (exit status {})", script,
                          WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  return nullptr;
}

nlohmann::json TorchRunner::to_json() const {
  return {{"available", available()},
          {"reason", reason_},
          {"version", version_},
          {"python", python_},
          {"script_dir", script_dir_}};
}

std::string torch_label(const nlohmann::json& torch) {
  if (torch["available"].get<bool>()) return "torch " + torch["version"].get<std::string>();
  return "torch: unavailable (" + torch["reason"].get<std::string>() + ")";
}

nlohmann::json comparison_row(const std::string& name, const Stats& ssm,
                              const nlohmann::json& torch) {
  nlohmann::json row = {{"name", name}, {"ssm_ms", ssm.to_json()}};
  if (torch.is_object()) {
    row["torch_ms"] = {{"mean", torch["mean_ms"]},
                       {"std", torch["std_ms"]},
                       {"runs", torch["runs"]},
                       {"samples", torch["times_ms"]}};
    row["speedup"] = torch["mean_ms"].get<double>() / ssm.mean();
  } else {
    row["torch_ms"] = nullptr;
    row["speedup"] = nullptr;
  }
  return row;
}

namespace {

// Display columns of a UTF-8 string ("±" is two bytes, one column).
size_t display_width(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

std::string pad(const std::string& s, size_t width, bool left) {
  const std::string fill(width - std::min(width, display_width(s)), ' ');
  return left ? s + fill : fill + s;
}

}  // namespace

void print_table(const std::vector<std::string>& headers,
                 const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& h : headers) widths.push_back(std::max<size_t>(display_width(h), 4));
  for (const auto& row : rows)
    for (size_t i = 0; i < row.size() && i < widths.size(); ++i)
      widths[i] = std::max(widths[i], display_width(row[i]));
  auto print_row = [&](const std::vector<std::string>& cells) {
    std::string line = "|";
    for (size_t i = 0; i < widths.size(); ++i) {
      line += ' ';
      line += pad(i < cells.size() ? cells[i] : "", widths[i], i == 0);
      line += " |";
    }
    std::printf("%s\n", line.c_str());
  };
  print_row(headers);
  std::string rule = "|";
  for (size_t i = 0; i < widths.size(); ++i) {
    rule += ' ';
    rule.append(widths[i] - (i > 0), '-');
    rule += i > 0 ? ": |" : " |";
  }
  std::printf("%s\n", rule.c_str());
  for (const auto& row : rows) print_row(row);
}

void print_comparison_table(const std::string& first_column, const nlohmann::json& rows) {
  std::vector<std::vector<std::string>> cells;
  for (const auto& r : rows) {
    const auto& s = r["ssm_ms"];
    std::string torch = "unavailable", speedup = "-";
    if (r["torch_ms"].is_object()) {
      torch = mean_pm_std(r["torch_ms"]["mean"], r["torch_ms"]["std"]);
      speedup = fmt::format("{:.2f}x", r["speedup"].get<double>());
    }
    cells.push_back(
        {r["name"].get<std::string>(), mean_pm_std(s["mean"], s["std"]), torch, speedup});
  }
  print_table({first_column, "ssm ms", "torch ms", "speedup"}, cells);
}

}  // namespace ssm::cli
