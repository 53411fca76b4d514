#include "ssm/train/metrics_log.h"

#include <filesystem>
#include <fstream>

#include "ssm/core/error.h"
#include "ssm/train/plot.h"

namespace ssm::train {

MetricsLog::MetricsLog(std::string path) : path_(std::move(path)) {
  std::ifstream in(path_);
  std::string line;
  int64_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    try {
      records_.push_back(nlohmann::json::parse(line));
    } catch (const nlohmann::json::exception&) {
      SSM_FAIL("metrics: line {} of '{}' is not valid JSON", n, path_);
    }
  }
}

void MetricsLog::write(const nlohmann::json& record) {
  records_.push_back(record);
  std::ofstream out(path_, std::ios::app);
  SSM_CHECK(out.good(), "metrics: cannot append to '{}'", path_);
  out << record.dump() << "\n";
}

void MetricsLog::rewrite() const {
  const std::string tmp = path_ + ".tmp";
  {
    std::ofstream out(tmp);
    SSM_CHECK(out.good(), "metrics: cannot write '{}'", tmp);
    for (const auto& r : records_) out << r.dump() << "\n";
  }
  std::filesystem::rename(tmp, path_);
}

void MetricsLog::truncate_after_step(int64_t step) {
  std::vector<nlohmann::json> kept;
  for (const auto& r : records_)
    if (r.value("step", int64_t{0}) <= step) kept.push_back(r);
  records_ = std::move(kept);
  rewrite();
}

void MetricsLog::plot(const std::string& svg_path) const {
  Series tl{"train", {}, {}}, vl{"validation", {}, {}}, ta{"train", {}, {}}, va{"validation", {}, {}};
  for (const auto& r : records_) {
    const double s = r.value("step", 0.0);
    if (r.contains("train_loss")) {
      tl.x.push_back(s), tl.y.push_back(r["train_loss"].get<double>());
      ta.x.push_back(s), ta.y.push_back(r["train_accuracy"].get<double>());
    }
    if (r.contains("val_loss")) {
      vl.x.push_back(s), vl.y.push_back(r["val_loss"].get<double>());
      va.x.push_back(s), va.y.push_back(r["val_accuracy"].get<double>());
    }
  }
  write_svg_plot(svg_path, {{"loss", "step", {tl, vl}}, {"accuracy", "step", {ta, va}}});
}

}  // namespace ssm::train
