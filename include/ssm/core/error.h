#pragma once
// ssm::Error and the SSM_CHECK macro: every user-facing failure is one clear line
// that names the op / field / file and the expected vs. actual value.
#include <fmt/format.h>
#include <fmt/ranges.h>

#include <stdexcept>
#include <string>

namespace ssm {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace ssm

// SSM_CHECK(cond, "fmt {}", args...) throws ssm::Error with the formatted message.
#define SSM_CHECK(cond, ...)                                         \
  do {                                                               \
    if (!(cond)) throw ::ssm::Error(::fmt::format(__VA_ARGS__));     \
  } while (0)

#define SSM_FAIL(...) throw ::ssm::Error(::fmt::format(__VA_ARGS__))
