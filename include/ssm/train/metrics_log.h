#pragma once
// metrics.jsonl: one JSON object per line (step, losses, accuracies, lr, time), appended as
// training goes, and the curves drawn from it.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace ssm::train {

class MetricsLog {
 public:
  explicit MetricsLog(std::string path);  // reads the lines already there
  void write(const nlohmann::json& record);
  // On resume: drops records of steps after `step` (they will be recomputed).
  void truncate_after_step(int64_t step);
  // Loss and accuracy curves (train and validation) against step.
  void plot(const std::string& svg_path) const;
  const std::vector<nlohmann::json>& records() const { return records_; }

 private:
  void rewrite() const;
  std::string path_;
  std::vector<nlohmann::json> records_;
};

}  // namespace ssm::train
