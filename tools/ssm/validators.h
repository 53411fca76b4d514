#pragma once
// Option checks with one-line messages that say what was expected ("--threads: expected a
// positive integer, got '0'"); CLI11's own number validators print the whole double range.
#include <CLI/CLI.hpp>
#include <cstdlib>
#include <string>

namespace ssm::cli {

inline CLI::Validator integer_at_least(long minimum, const std::string& what) {
  return CLI::Validator(
      [minimum, what](std::string& value) {
        char* end = nullptr;
        const long n = std::strtol(value.c_str(), &end, 10);
        const bool ok = end != value.c_str() && *end == '\0' && n >= minimum;
        return ok ? std::string() : "expected " + what + ", got '" + value + "'";
      },
      what);
}

inline const CLI::Validator kPositiveInteger = integer_at_least(1, "a positive integer");
inline const CLI::Validator kNonNegativeInteger = integer_at_least(0, "a non-negative integer");

}  // namespace ssm::cli
