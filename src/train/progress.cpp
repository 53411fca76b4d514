#include "ssm/train/progress.h"

#include <fmt/format.h>

#include <cmath>
#include <cstdio>

namespace ssm::train {

double Progress::elapsed_seconds() const {
  return std::chrono::duration<double>(clock::now() - start_).count();
}

std::string Progress::format_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t total = static_cast<int64_t>(std::llround(s));
  const int64_t h = total / 3600, m = (total % 3600) / 60, sec = total % 60;
  if (h > 0) return fmt::format("{}h{:02d}m", h, m);
  if (m > 0) return fmt::format("{}m{:02d}s", m, sec);
  return fmt::format("{}s", sec);
}

void Progress::update(int64_t done, const std::string& fields, double units_done, const char* unit) {
  const double t = elapsed_seconds();
  const double rate = t > 0 ? units_done / t : 0.0;
  const double eta = done > 0 ? t * static_cast<double>(total_ - done) / static_cast<double>(done) : NAN;
  std::fprintf(stderr, "%s %lld/%lld | %s | %.1f %s/s | ETA %s\n", what_.c_str(),
               static_cast<long long>(done), static_cast<long long>(total_), fields.c_str(), rate,
               unit, format_duration(eta).c_str());
  std::fflush(stderr);
}

}  // namespace ssm::train
