// Token-sequence tasks: each generator is deterministic in its seed, and its targets are what
// an independent reading of the input says they must be.
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

#include "ssm/data/induction_heads.h"
#include "ssm/data/mqar.h"
#include "ssm/data/selective_copy.h"
#include "ssm/data/text_bytes.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::data;
namespace fs = std::filesystem;

namespace {

template <typename Make>
void expect_deterministic(Make make) {
  GeneratedTokenDataset a(50, 11, make), b(50, 11, make), other_seed(50, 12, make);
  int differ_by_index = 0, differ_by_seed = 0;
  for (int64_t i = 0; i < 50; ++i) {
    const TokenSequence s = a.sequence(i);
    EXPECT_EQ(s.input, b.sequence(i).input);
    EXPECT_EQ(s.target, b.sequence(i).target);
    differ_by_seed += s.input != other_seed.sequence(i).input;
    if (i > 0) differ_by_index += s.input != a.sequence(i - 1).input;
  }
  EXPECT_GE(differ_by_seed, 45);
  EXPECT_GE(differ_by_index, 45);
  // The Example tensors carry the same ids.
  const Example e = a.get(3);
  const TokenSequence s = a.sequence(3);
  ASSERT_EQ(e.input.numel(), static_cast<int64_t>(s.input.size()));
  for (int64_t i = 0; i < e.input.numel(); ++i) {
    EXPECT_EQ(static_cast<int64_t>(e.input.at({i})), s.input[static_cast<size_t>(i)]);
    EXPECT_EQ(static_cast<int64_t>(e.target.at({i})), s.target[static_cast<size_t>(i)]);
  }
}

// The targets selective copying must have, read from the input alone: the data tokens in
// order of appearance, placed at the trailing markers.
std::vector<int64_t> selective_copy_answer(const std::vector<int64_t>& in, int64_t V) {
  const int64_t marker = V + 1;
  std::vector<int64_t> data, want(in.size(), kIgnoreIndex);
  size_t first_marker = in.size();
  while (first_marker > 0 && in[first_marker - 1] == marker) --first_marker;
  for (size_t i = 0; i < first_marker; ++i) {
    EXPECT_TRUE(in[i] >= 0 && in[i] <= V) << "token " << in[i] << " at " << i;
    if (in[i] != 0) data.push_back(in[i]);
  }
  EXPECT_EQ(data.size(), in.size() - first_marker);
  for (size_t k = 0; k < data.size() && first_marker + k < in.size(); ++k)
    want[first_marker + k] = data[k];
  return want;
}

}  // namespace

TEST(SelectiveCopy, TargetsAreTheDataTokensInOrderAtTheMarkers) {
  const SelectiveCopyOptions o{200, 16, 10};
  EXPECT_EQ(selective_copy_vocab(o), 12);
  GeneratedTokenDataset ds(300, 5, [o](Generator& g) { return make_selective_copy(o, g); });
  double first_pos_sum = 0;
  std::set<int64_t> tokens_seen;
  for (int64_t i = 0; i < ds.size(); ++i) {
    const TokenSequence s = ds.sequence(i);
    ASSERT_EQ(s.input.size(), 200u);
    EXPECT_EQ(s.target, selective_copy_answer(s.input, 10));
    // Exactly num_tokens markers, all at the end.
    int64_t markers = 0;
    for (int64_t t : s.input) markers += t == 11;
    EXPECT_EQ(markers, 16);
    for (size_t p = 0; p < s.input.size(); ++p)
      if (s.input[p] != 0 && s.input[p] != 11) {
        first_pos_sum += static_cast<double>(p);
        break;
      }
    for (int64_t t : s.target)
      if (t != kIgnoreIndex) tokens_seen.insert(t);
  }
  // Data tokens use the whole data vocabulary, and their places are spread (the first of 16
  // among 184 places is at 184/17 ≈ 10.8 on average; a fixed layout would give 0 every time).
  EXPECT_EQ(tokens_seen.size(), 10u);
  EXPECT_GT(first_pos_sum / 300, 7.0);
  EXPECT_LT(first_pos_sum / 300, 15.0);
  expect_deterministic([o](Generator& g) { return make_selective_copy(o, g); });
}

TEST(SelectiveCopy, BadOptionsNameTheKey) {
  EXPECT_SSM_ERROR(validate(SelectiveCopyOptions{100, 0, 16}, "data."), "data.num_tokens");
  EXPECT_SSM_ERROR(validate(SelectiveCopyOptions{100, 8, 0}, "data."), "data.vocab_size");
  EXPECT_SSM_ERROR(validate(SelectiveCopyOptions{31, 16, 16}, "data."), "data.seq_len", "31");
  Generator g(0);
  EXPECT_SSM_ERROR(make_selective_copy(SelectiveCopyOptions{10, 6, 4}, g), "seq_len");
  // The paper's setting is accepted.
  validate(SelectiveCopyOptions{}, "data.");
}

TEST(InductionHeads, TargetIsTheTokenAfterTheFirstSpecialToken) {
  const InductionHeadsOptions o{64, 8};
  EXPECT_EQ(induction_heads_vocab(o), 9);
  GeneratedTokenDataset ds(400, 3, [o](Generator& g) { return make_induction_heads(o, g); });
  std::vector<int> where_hist(64, 0);
  for (int64_t i = 0; i < ds.size(); ++i) {
    const TokenSequence s = ds.sequence(i);
    ASSERT_EQ(s.input.size(), 64u);
    std::vector<size_t> specials;
    for (size_t p = 0; p < s.input.size(); ++p) {
      EXPECT_TRUE(s.input[p] >= 0 && s.input[p] <= 8);
      if (s.input[p] == 8) specials.push_back(p);
    }
    ASSERT_EQ(specials.size(), 2u) << "example " << i;
    EXPECT_EQ(specials[1], 63u);
    ++where_hist[specials[0]];
    std::vector<int64_t> want(64, kIgnoreIndex);
    want[63] = s.input[specials[0] + 1];
    EXPECT_EQ(s.target, want);
  }
  // The first special token may sit anywhere in [0, L − 3] and never later.
  EXPECT_EQ(where_hist[62] + where_hist[63], 0);
  EXPECT_GT(where_hist[0] + where_hist[1] + where_hist[2], 0);
  EXPECT_GT(where_hist[59] + where_hist[60] + where_hist[61], 0);
  expect_deterministic([o](Generator& g) { return make_induction_heads(o, g); });
}

TEST(InductionHeads, BadOptionsNameTheKey) {
  EXPECT_SSM_ERROR(validate(InductionHeadsOptions{2, 16}, "data."), "data.seq_len", "2");
  EXPECT_SSM_ERROR(validate(InductionHeadsOptions{256, 1}, "data."), "data.vocab_size");
  // The shortest valid sequence: special, b, special.
  Generator g(1);
  const TokenSequence s = make_induction_heads(InductionHeadsOptions{3, 4}, g);
  EXPECT_EQ(s.input[0], 4);
  EXPECT_EQ(s.input[2], 4);
  EXPECT_EQ(s.target[2], s.input[1]);
}

TEST(Mqar, TargetsAreTheValuesOfTheQueriedKeys) {
  const MqarOptions o{64, 8, 64};
  GeneratedTokenDataset ds(300, 9, [o](Generator& g) { return make_mqar(o, g); });
  for (int64_t i = 0; i < ds.size(); ++i) {
    const TokenSequence s = ds.sequence(i);
    ASSERT_EQ(s.input.size(), 64u);
    // Read the context as a dictionary.
    std::map<int64_t, int64_t> value_of;
    for (size_t p = 0; p < 16; p += 2) {
      const int64_t k = s.input[p], v = s.input[p + 1];
      EXPECT_TRUE(k >= 1 && k < 32) << k;
      EXPECT_TRUE(v >= 32 && v < 64) << v;
      EXPECT_TRUE(value_of.emplace(k, v).second) << "key " << k << " repeated";
    }
    // Every key after the context is a query: its target is its value; nothing else counts.
    std::vector<int64_t> want(64, kIgnoreIndex);
    std::set<int64_t> queried;
    for (size_t p = 16; p < 64; ++p) {
      const int64_t t = s.input[p];
      if (t >= 1 && t < 32) {
        ASSERT_TRUE(value_of.count(t)) << "query of an unknown key " << t;
        want[p] = value_of[t];
        queried.insert(t);
      } else if (t >= 32) {
        EXPECT_EQ(s.input[p - 1] >= 1 && s.input[p - 1] < 32, true) << "stray value at " << p;
      }
    }
    EXPECT_EQ(queried.size(), 8u);  // each key queried once
    EXPECT_EQ(s.target, want);
  }
  expect_deterministic([o](Generator& g) { return make_mqar(o, g); });
}

TEST(Mqar, BadOptionsNameTheKey) {
  EXPECT_SSM_ERROR(validate(MqarOptions{64, 0, 64}, "data."), "data.num_pairs");
  EXPECT_SSM_ERROR(validate(MqarOptions{64, 8, 2}, "data."), "data.vocab_size");
  EXPECT_SSM_ERROR(validate(MqarOptions{64, 20, 32}, "data."), "data.num_pairs", "15");
  EXPECT_SSM_ERROR(validate(MqarOptions{63, 16, 8192}, "data."), "data.seq_len", "63");
  validate(MqarOptions{}, "data.");
}

TEST(TextBytes, WindowsAreNextByteTargetsWithinEachSplit) {
  const fs::path path = fs::temp_directory_path() / ("ssm_text_" + std::to_string(::getpid()));
  std::string text;
  Generator g(4);
  for (int i = 0; i < 1000; ++i) text.push_back(static_cast<char>(g.below(256)));
  {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
  }
  auto bytes = read_text_bytes(path.string());
  ASSERT_EQ(*bytes, text);
  const TextSplits s = split_text(bytes, 16, 0.1, 0.05, path.string());
  // train [0, 850), val [850, 950), test [950, 1000).
  EXPECT_EQ(s.train->size(), (850 - 1) / 16);
  EXPECT_EQ(s.val->size(), (100 - 1) / 16);
  EXPECT_EQ(s.test->size(), (50 - 1) / 16);
  auto check = [&](const Dataset& ds, int64_t begin, int64_t end) {
    for (int64_t i = 0; i < ds.size(); ++i) {
      const Example e = ds.get(i);
      for (int64_t j = 0; j < 16; ++j) {
        const int64_t at = begin + i * 16 + j;
        ASSERT_LT(at + 1, end);
        EXPECT_EQ(static_cast<int64_t>(e.input.at({j})), static_cast<unsigned char>(text[at]));
        EXPECT_EQ(static_cast<int64_t>(e.target.at({j})), static_cast<unsigned char>(text[at + 1]));
      }
    }
  };
  check(*s.train, 0, 850);
  check(*s.val, 850, 950);
  check(*s.test, 950, 1000);
  // Without a test fraction the test split is the validation split.
  const TextSplits two = split_text(bytes, 16, 0.1, 0.0, path.string());
  EXPECT_EQ(two.test, two.val);
  EXPECT_SSM_ERROR(split_text(bytes, 200, 0.1, 0.0, path.string()), path.c_str(), "validation",
                   "seq_len 200");
  EXPECT_SSM_ERROR(split_text(bytes, 16, 0.0, 0.0, path.string()), "val_fraction");
  fs::remove(path);
  EXPECT_SSM_ERROR(read_text_bytes(path.string()), "cannot open", path.c_str());
}
