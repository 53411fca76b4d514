#pragma once
// ListOps (Nangia & Bowman 2018) as used by the Long Range Arena benchmark: nested prefix
// expressions over the digits 0–9 with the operators
//   MIN, MAX, MED (median; the mean of the two middle values, rounded down, for an even count)
//   and SM (sum modulo 10),
// written as tokens like `[MAX 2 9 [MIN 4 7 ] 0 ]`; the target is the value (0–9).
//
// Generation follows the LRA recipe: a node at depth < max_depth is an operator with
// probability operator_prob (else a digit); an operator has 2..max_args arguments, each a node
// one level deeper; the root is at depth 1. Only expressions with min_length < tokens <
// max_length are kept, without duplicates across all splits.
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ssm::data {

// Token ids: 0 is padding, digits d are 1 + d, then the operators and the closing bracket.
enum ListOpsToken : uint8_t {
  kListOpsPad = 0,
  kListOpsDigit0 = 1,  // digit d = kListOpsDigit0 + d
  kListOpsMin = 11,
  kListOpsMax = 12,
  kListOpsMed = 13,
  kListOpsSumMod = 14,
  kListOpsClose = 15,
};
inline constexpr int64_t kListOpsVocabSize = 16;
inline constexpr int64_t kListOpsNumClasses = 10;

struct ListOpsOptions {
  int max_depth = 10;
  int max_args = 10;
  double operator_prob = 0.25;
  int64_t min_length = 500;   // exclusive
  int64_t max_length = 2000;  // exclusive
  int64_t num_train = 96000, num_val = 2000, num_test = 2000;
  uint64_t seed = 0;
};

struct ListOpsExample {
  std::vector<uint8_t> tokens;
  int64_t target = 0;
};

struct ListOpsSplits {
  std::vector<ListOpsExample> train, val, test;
};

// Deterministic given options (the seed included); identical on every machine.
ListOpsSplits generate_listops(const ListOpsOptions& options);

// The value of an expression, by a stack machine independent of the generator. Throws
// ssm::Error (naming the position) on a malformed expression.
int64_t evaluate_listops(const std::vector<uint8_t>& tokens);

// "[MAX", "7", "]" ...
const char* listops_token_text(uint8_t token);
// Tokens joined by single spaces: "[MAX 2 9 ]".
std::string listops_to_text(const std::vector<uint8_t>& tokens);
// Whitespace-separated tokens to ids. "(" and ")" are skipped (the LRA TSV files wrap
// sub-expressions in them); anything else unknown is an error naming the token.
std::vector<uint8_t> listops_from_text(std::string_view text);

}  // namespace ssm::data
