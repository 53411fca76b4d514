#pragma once
// The progress line of long work: position, rate and ETA, redrawn on stderr.
#include <chrono>
#include <string>

namespace ssm::train {

class Progress {
 public:
  Progress(std::string what, int64_t total) : what_(std::move(what)), total_(total), start_(clock::now()) {}
  // Prints "what step/total | <fields> | rate unit/s | ETA m:ss" on stderr.
  void update(int64_t done, const std::string& fields, double units_done, const char* unit);
  double elapsed_seconds() const;
  static std::string format_duration(double seconds);  // "1h02m", "3m07s", "12s"

 private:
  using clock = std::chrono::steady_clock;
  std::string what_;
  int64_t total_;
  clock::time_point start_;
};

}  // namespace ssm::train
