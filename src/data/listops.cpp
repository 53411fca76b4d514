#include "ssm/data/listops.h"

#include <algorithm>
#include <unordered_set>

#include "ssm/core/error.h"
#include "ssm/core/rng.h"

namespace ssm::data {

namespace {

constexpr int kNumOperators = 4;  // MIN, MAX, MED, SM: token ids kListOpsMin + k

bool is_operator(uint8_t t) {
  return t >= kListOpsMin && t <= kListOpsSumMod;
}
bool is_digit(uint8_t t) {
  return t >= kListOpsDigit0 && t < kListOpsDigit0 + 10;
}

// The value of operator `op` applied to args[0..count). Sorts args for MED.
int apply_operator(uint8_t op, int* args, int count) {
  switch (op) {
    case kListOpsMin:
      return *std::min_element(args, args + count);
    case kListOpsMax:
      return *std::max_element(args, args + count);
    case kListOpsSumMod: {
      int s = 0;
      for (int i = 0; i < count; ++i) s += args[i];
      return s % 10;
    }
    default: {  // MED: the middle value, or the floor of the mean of the two middle ones
      std::sort(args, args + count);
      const int mid = count / 2;
      return count % 2 ? args[mid] : (args[mid - 1] + args[mid]) / 2;
    }
  }
}

// Bounded draws from 32-bit halves of the generator's 64-bit outputs, by multiply-shift
// (Lemire) instead of Generator::below's modulo: a data set takes ~10^8 draws and the division
// and the call per draw dominated. The bias, n / 2^32 ≈ 2e-9 for a digit, is immaterial.
class FastDraws {
 public:
  explicit FastDraws(Generator& gen) : gen_(gen) {}
  uint32_t below(uint32_t n) {
    return static_cast<uint32_t>((static_cast<uint64_t>(next_u32()) * n) >> 32);
  }
  // true with probability p (p quantised to a multiple of 2^-32; exact for 0.25).
  bool chance(double p) { return static_cast<double>(next_u32()) < p * 0x1.0p32; }

 private:
  uint32_t next_u32() {
    if (have_spare_) {
      have_spare_ = false;
      return static_cast<uint32_t>(spare_ >> 32);
    }
    spare_ = gen_.next_u64();
    have_spare_ = true;
    return static_cast<uint32_t>(spare_);
  }
  Generator& gen_;
  uint64_t spare_ = 0;
  bool have_spare_ = false;
};

// Grows one random expression into `tokens`, returning its value, or −1 as soon as the
// expression reaches max_length tokens (it would be rejected anyway, so stop early).
// `values` is a scratch stack holding the evaluated arguments of the open operators.
class ExpressionSampler {
 public:
  ExpressionSampler(const ListOpsOptions& o, Generator& gen, std::vector<uint8_t>& tokens)
      : o_(o), draw_(gen), tokens_(tokens) {}

  int node(int depth) {
    if (depth < o_.max_depth && draw_.chance(o_.operator_prob)) {
      const int num_args =
          2 + static_cast<int>(draw_.below(static_cast<uint32_t>(o_.max_args - 1)));
      const auto op = static_cast<uint8_t>(kListOpsMin + draw_.below(kNumOperators));
      tokens_.push_back(op);
      const size_t base = values_.size();
      for (int k = 0; k < num_args; ++k) {
        const int v = node(depth + 1);
        if (v < 0) {
          values_.resize(base);
          return -1;
        }
        values_.push_back(v);
      }
      tokens_.push_back(kListOpsClose);
      const int value = apply_operator(op, values_.data() + base, num_args);
      values_.resize(base);
      return too_long() ? -1 : value;
    }
    const int digit = static_cast<int>(draw_.below(10));
    tokens_.push_back(static_cast<uint8_t>(kListOpsDigit0 + digit));
    return too_long() ? -1 : digit;
  }

 private:
  bool too_long() const { return static_cast<int64_t>(tokens_.size()) >= o_.max_length; }
  const ListOpsOptions& o_;
  FastDraws draw_;
  std::vector<uint8_t>& tokens_;
  std::vector<int> values_;
};

// FNV-1a: a fixed hash (std::hash differs between standard libraries) for duplicate checks.
uint64_t fnv1a(const std::vector<uint8_t>& v) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (uint8_t b : v) h = (h ^ b) * 0x100000001b3ULL;
  return h;
}

}  // namespace

namespace {

// Expressions are drawn in blocks of kBlockSize accepted candidates, block b from its own
// generator, so blocks can be drawn in parallel and the data set still depends only on the
// seed (not on the thread count). The block size is part of the data set's definition.
constexpr int64_t kBlockSize = 256;

struct Block {
  std::vector<ListOpsExample> examples;
  int64_t attempts = 0;
  bool gave_up = false;
};

Block sample_block(const ListOpsOptions& o, uint64_t base_seed, int64_t block_index) {
  Generator gen(base_seed + static_cast<uint64_t>(block_index));
  Block b;
  b.examples.reserve(kBlockSize);
  std::vector<uint8_t> tokens;
  tokens.reserve(static_cast<size_t>(o.max_length) + 16);
  ExpressionSampler sampler(o, gen, tokens);
  // A guard against options that (almost) never produce a long enough expression.
  const int64_t max_attempts = 4000 * kBlockSize;
  while (static_cast<int64_t>(b.examples.size()) < kBlockSize) {
    if (++b.attempts > max_attempts) {
      b.gave_up = true;
      break;
    }
    tokens.clear();
    const int value = sampler.node(1);
    const auto len = static_cast<int64_t>(tokens.size());
    if (value >= 0 && len > o.min_length && len < o.max_length)
      b.examples.push_back(ListOpsExample{tokens, value});
  }
  return b;
}

}  // namespace

ListOpsSplits generate_listops(const ListOpsOptions& o) {
  const char* op = "generate_listops";
  SSM_CHECK(o.max_depth >= 1, "{}: argument 'max_depth' expected >= 1, got {}", op, o.max_depth);
  SSM_CHECK(o.max_args >= 2, "{}: argument 'max_args' expected >= 2, got {}", op, o.max_args);
  SSM_CHECK(o.operator_prob > 0 && o.operator_prob <= 1,
            "{}: argument 'operator_prob' expected in (0, 1], got {}", op, o.operator_prob);
  SSM_CHECK(o.min_length >= 0 && o.max_length > o.min_length + 1,
            "{}: expected 0 <= min_length < length < max_length to allow some length, got "
            "min_length {} max_length {}",
            op, o.min_length, o.max_length);
  SSM_CHECK(o.num_train >= 0 && o.num_val >= 0 && o.num_test >= 0,
            "{}: split sizes expected >= 0, got {} {} {}", op, o.num_train, o.num_val, o.num_test);
  const auto total = static_cast<size_t>(o.num_train + o.num_val + o.num_test);
  const uint64_t base_seed = Generator(o.seed).next_u64();
  std::vector<ListOpsExample> all;
  all.reserve(total);
  std::unordered_set<uint64_t> seen;
  int64_t next_block = 0;
  while (all.size() < total) {
    // Enough blocks for what is missing (duplicates are rare), at least a few to share out.
    const int64_t wave =
        std::max<int64_t>(4, static_cast<int64_t>((total - all.size()) * 11 / 10 / kBlockSize + 1));
    std::vector<Block> blocks(static_cast<size_t>(wave));
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < wave; ++i) blocks[i] = sample_block(o, base_seed, next_block + i);
    next_block += wave;
    for (Block& b : blocks) {
      SSM_CHECK(!b.gave_up,
                "{}: only {} expressions with {} < length < {} in {} attempts; the options "
                "(max_depth {}, max_args {}, operator_prob {}) rarely reach that length",
                op, b.examples.size(), o.min_length, o.max_length, b.attempts, o.max_depth,
                o.max_args, o.operator_prob);
      for (ListOpsExample& e : b.examples) {
        if (all.size() == total) break;
        // A 64-bit hash collision between distinct expressions would only drop one of them.
        if (seen.insert(fnv1a(e.tokens)).second) all.push_back(std::move(e));
      }
    }
  }
  ListOpsSplits out;
  auto take = [&](std::vector<ListOpsExample>& dst, int64_t begin, int64_t n) {
    dst.assign(std::make_move_iterator(all.begin() + begin),
               std::make_move_iterator(all.begin() + begin + n));
  };
  take(out.train, 0, o.num_train);
  take(out.val, o.num_train, o.num_val);
  take(out.test, o.num_train + o.num_val, o.num_test);
  return out;
}

int64_t evaluate_listops(const std::vector<uint8_t>& tokens) {
  SSM_CHECK(!tokens.empty(), "evaluate_listops: empty expression");
  struct Frame {
    uint8_t op;
    size_t base;  // where its arguments start in `values`
  };
  std::vector<Frame> open;
  std::vector<int> values;
  int result = -1;
  for (size_t i = 0; i < tokens.size(); ++i) {
    const uint8_t t = tokens[i];
    SSM_CHECK(result < 0, "evaluate_listops: token {} ('{}') follows a complete expression", i,
              listops_token_text(t));
    int value;
    if (is_operator(t)) {
      open.push_back(Frame{t, values.size()});
      continue;
    } else if (is_digit(t)) {
      value = t - kListOpsDigit0;
    } else if (t == kListOpsClose) {
      SSM_CHECK(!open.empty(), "evaluate_listops: ']' at token {} closes nothing", i);
      const Frame f = open.back();
      open.pop_back();
      const int count = static_cast<int>(values.size() - f.base);
      SSM_CHECK(count >= 1, "evaluate_listops: '{}' closed at token {} has no arguments",
                listops_token_text(f.op), i);
      value = apply_operator(f.op, values.data() + f.base, count);
      values.resize(f.base);
    } else {
      SSM_FAIL("evaluate_listops: token {} has id {}, not a ListOps token", i, int{t});
    }
    if (open.empty())
      result = value;
    else
      values.push_back(value);
  }
  SSM_CHECK(open.empty(), "evaluate_listops: {} operator(s) not closed at the end", open.size());
  return result;
}

const char* listops_token_text(uint8_t token) {
  static const char* const names[kListOpsVocabSize] = {"<pad>", "0",    "1",   "2", "3", "4",
                                                       "5",     "6",    "7",   "8", "9", "[MIN",
                                                       "[MAX",  "[MED", "[SM", "]"};
  return token < kListOpsVocabSize ? names[token] : "<invalid>";
}

std::string listops_to_text(const std::vector<uint8_t>& tokens) {
  std::string out;
  out.reserve(tokens.size() * 3);
  for (size_t i = 0; i < tokens.size(); ++i) {
    if (i) out += ' ';
    out.append(listops_token_text(tokens[i]));
  }
  return out;
}

std::vector<uint8_t> listops_from_text(std::string_view text) {
  std::vector<uint8_t> out;
  out.reserve(text.size() / 2);
  const char* p = text.data();
  const char* const end = p + text.size();
  auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (p < end) {
    while (p < end && space(*p)) ++p;
    if (p == end) break;
    const char* q = p;
    while (q < end && !space(*q)) ++q;
    const std::string_view tok(p, static_cast<size_t>(q - p));
    p = q;
    // Dispatch on the first character: this loop reads ~10^8 tokens for a full data set.
    uint8_t id = 0;
    if (tok.size() == 1) {
      const char c = tok[0];
      if (c >= '0' && c <= '9')
        id = static_cast<uint8_t>(kListOpsDigit0 + (c - '0'));
      else if (c == ']')
        id = kListOpsClose;
      else if (c == '(' || c == ')')
        continue;
    } else if (tok == "[MIN") {
      id = kListOpsMin;
    } else if (tok == "[MAX") {
      id = kListOpsMax;
    } else if (tok == "[MED") {
      id = kListOpsMed;
    } else if (tok == "[SM") {
      id = kListOpsSumMod;
    }
    SSM_CHECK(id != 0,
              "listops_from_text: unknown token '{}' (expected [MIN [MAX [MED [SM ] or a digit)",
              tok);
    out.push_back(id);
  }
  return out;
}

}  // namespace ssm::data
