#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <set>

#include "ssm/data/dataloader.h"
#include "ssm/data/listops.h"
#include "ssm/data/listops_dataset.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::data;
namespace fs = std::filesystem;

namespace {

int64_t eval_text(const std::string& s) {
  return evaluate_listops(listops_from_text(s));
}

// Deepest nesting of operators, and the fewest / most arguments of any operator.
struct TreeStats {
  int depth = 0, min_args = 1 << 30, max_args = 0;
};
TreeStats tree_stats(const std::vector<uint8_t>& tokens) {
  TreeStats s;
  std::vector<int> args;  // argument count of each open operator
  for (uint8_t t : tokens) {
    if (t >= kListOpsMin && t <= kListOpsSumMod) {
      if (!args.empty()) ++args.back();
      args.push_back(0);
      s.depth = std::max<int>(s.depth, static_cast<int>(args.size()));
    } else if (t == kListOpsClose) {
      s.min_args = std::min(s.min_args, args.back());
      s.max_args = std::max(s.max_args, args.back());
      args.pop_back();
    } else if (!args.empty()) {
      ++args.back();
    }
  }
  return s;
}

ListOpsOptions small_options(uint64_t seed) {
  ListOpsOptions o;
  o.num_train = 300;
  o.num_val = 30;
  o.num_test = 30;
  o.seed = seed;
  return o;
}

fs::path temp_dir(const char* name) {
  fs::path d = fs::temp_directory_path() / fmt::format("ssm_test_listops_{}_{}", getpid(), name);
  fs::create_directories(d);
  return d;
}

}  // namespace

TEST(ListOps, EvaluatesKnownExpressions) {
  EXPECT_EQ(eval_text("[MAX 2 9 ]"), 9);
  EXPECT_EQ(eval_text("[MIN 4 [MAX 2 9 ] 0 ]"), 0);
  EXPECT_EQ(eval_text("[MIN 4 [MAX 2 9 ] 3 ]"), 3);
  EXPECT_EQ(eval_text("[MED 1 5 3 ]"), 3);
  EXPECT_EQ(eval_text("[MED 9 1 4 6 ]"), 5);  // middle pair 4, 6
  EXPECT_EQ(eval_text("[MED 1 4 ]"), 2);      // (1 + 4) / 2 rounded down
  EXPECT_EQ(eval_text("[SM 7 8 9 ]"), 4);     // 24 mod 10
  EXPECT_EQ(eval_text("[SM [MAX 5 6 ] [MED 2 2 8 ] 1 ]"), 9);
  EXPECT_EQ(eval_text("7"), 7);
  // The LRA files wrap sub-expressions in parentheses; they do not change the value.
  EXPECT_EQ(eval_text("( ( ( [MAX 2 ) 9 ) ] )"), 9);
}

TEST(ListOps, MalformedExpressions) {
  EXPECT_SSM_ERROR(eval_text("[MAX 2 9"), "evaluate_listops", "not closed");
  EXPECT_SSM_ERROR(eval_text("] 2"), "evaluate_listops", "closes nothing");
  EXPECT_SSM_ERROR(eval_text("2 3"), "evaluate_listops", "token 1", "complete expression");
  EXPECT_SSM_ERROR(eval_text("[MAX ]"), "evaluate_listops", "[MAX", "no arguments");
  EXPECT_SSM_ERROR(evaluate_listops({}), "evaluate_listops", "empty");
  EXPECT_SSM_ERROR(evaluate_listops({kListOpsPad}), "evaluate_listops", "token 0", "id 0");
  EXPECT_SSM_ERROR(listops_from_text("[MAX 2 [FIRST 3 ] ]"), "listops_from_text", "'[FIRST'");
  EXPECT_SSM_ERROR(listops_from_text("[MAX 12 ]"), "listops_from_text", "'12'");
}

TEST(ListOps, TextRoundTripAndVocabulary) {
  const std::string text = "[MAX 2 9 [MIN 4 7 ] 0 [SM 1 ] [MED 3 3 ] ]";
  const auto tokens = listops_from_text(text);
  EXPECT_EQ(listops_to_text(tokens), text);
  EXPECT_EQ(tokens.front(), kListOpsMax);
  EXPECT_EQ(tokens[1], kListOpsDigit0 + 2);
  EXPECT_EQ(tokens.back(), kListOpsClose);
  for (uint8_t t : tokens) {
    EXPECT_GT(t, kListOpsPad);
    EXPECT_LT(t, kListOpsVocabSize);
  }
}

TEST(ListOps, GeneratedSplitsFollowTheRecipe) {
  const ListOpsOptions o = small_options(1);
  const ListOpsSplits s = generate_listops(o);
  ASSERT_EQ(s.train.size(), 300u);
  ASSERT_EQ(s.val.size(), 30u);
  ASSERT_EQ(s.test.size(), 30u);
  std::set<std::string> distinct;
  std::vector<int> per_class(10, 0);
  for (const auto* split : {&s.train, &s.val, &s.test}) {
    for (const auto& e : *split) {
      EXPECT_GT(e.tokens.size(), 500u);
      EXPECT_LT(e.tokens.size(), 2000u);
      EXPECT_EQ(evaluate_listops(e.tokens), e.target);
      const TreeStats st = tree_stats(e.tokens);
      EXPECT_LE(st.depth, o.max_depth - 1);  // the root is depth 1; depth max_depth is a digit
      EXPECT_GE(st.min_args, 2);
      EXPECT_LE(st.max_args, o.max_args);
      distinct.insert(listops_to_text(e.tokens));
      per_class[e.target]++;
    }
  }
  EXPECT_EQ(distinct.size(), 360u);  // no duplicates, across splits too
  for (int c = 0; c < 10; ++c) EXPECT_GT(per_class[c], 0) << "class " << c;
}

TEST(ListOps, DeterministicFromSeed) {
  const ListOpsSplits a = generate_listops(small_options(7));
  const ListOpsSplits b = generate_listops(small_options(7));
  const ListOpsSplits c = generate_listops(small_options(8));
  ASSERT_EQ(a.train.size(), b.train.size());
  for (size_t i = 0; i < a.train.size(); ++i) {
    EXPECT_EQ(a.train[i].tokens, b.train[i].tokens);
    EXPECT_EQ(a.train[i].target, b.train[i].target);
  }
  EXPECT_EQ(a.test.back().tokens, b.test.back().tokens);
  EXPECT_NE(a.train[0].tokens, c.train[0].tokens);
  // A larger request starts with the same examples (blocks are drawn in a fixed order).
  ListOpsOptions more = small_options(7);
  more.num_train = 400;
  EXPECT_EQ(generate_listops(more).train[299].tokens, a.train[299].tokens);
}

TEST(ListOps, FullSizeDataSetIsCorrect) {
  const auto start = std::chrono::steady_clock::now();
  const ListOpsSplits s = generate_listops(ListOpsOptions{});
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(s.train.size(), 96000u);
  ASSERT_EQ(s.val.size(), 2000u);
  ASSERT_EQ(s.test.size(), 2000u);
  std::set<uint64_t> hashes;
  size_t tokens = 0, wrong = 0, out_of_range = 0;
  for (const auto* split : {&s.train, &s.val, &s.test})
    for (const auto& e : *split) {
      wrong += evaluate_listops(e.tokens) != e.target;
      out_of_range += e.tokens.size() <= 500 || e.tokens.size() >= 2000;
      tokens += e.tokens.size();
      uint64_t h = 1469598103934665603ULL;  // FNV-1a, an independent duplicate check
      for (uint8_t t : e.tokens) h = (h ^ t) * 1099511628211ULL;
      hashes.insert(h);
    }
  EXPECT_EQ(wrong, 0u);
  EXPECT_EQ(out_of_range, 0u);
  EXPECT_EQ(hashes.size(), 100000u);
  std::printf("generated 100000 ListOps examples (%.1f M tokens, mean length %.0f) in %.2f s\n",
              tokens / 1e6, tokens / 1e5, seconds);
  // The time is printed for a person to read, not asserted (benchmarks measure speed).
}

TEST(ListOps, TsvRoundTripAndErrors) {
  const fs::path dir = temp_dir("tsv");
  const ListOpsSplits s = generate_listops(small_options(2));
  const std::string path = (dir / "val.tsv").string();
  write_listops_tsv(path, s.val);
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  std::ifstream in(path);
  std::string header, first;
  std::getline(in, header);
  std::getline(in, first);
  EXPECT_EQ(header, "Source\tTarget");
  EXPECT_EQ(first, listops_to_text(s.val[0].tokens) + "\t" + std::to_string(s.val[0].target));
  const auto back = read_listops_tsv(path);
  ASSERT_EQ(back.size(), s.val.size());
  for (size_t i = 0; i < back.size(); ++i) {
    EXPECT_EQ(back[i].tokens, s.val[i].tokens);
    EXPECT_EQ(back[i].target, s.val[i].target);
  }
  // A file larger than the reader's 4 MiB chunks: lines cross chunk boundaries.
  ListOpsOptions big = small_options(9);
  big.num_train = 5000;
  const ListOpsSplits many = generate_listops(big);
  const std::string big_path = (dir / "train.tsv").string();
  write_listops_tsv(big_path, many.train);
  ASSERT_GT(fs::file_size(big_path), 8u << 20);
  const auto many_back = read_listops_tsv(big_path);
  ASSERT_EQ(many_back.size(), many.train.size());
  size_t mismatches = 0;
  for (size_t i = 0; i < many_back.size(); ++i)
    mismatches +=
        many_back[i].tokens != many.train[i].tokens || many_back[i].target != many.train[i].target;
  EXPECT_EQ(mismatches, 0u);
  // A last line without a newline still counts.
  const std::string no_newline = (dir / "no_newline.tsv").string();
  std::ofstream(no_newline) << "Source\tTarget\n[MIN 2 9 ]\t2";
  ASSERT_EQ(read_listops_tsv(no_newline).size(), 1u);
  EXPECT_EQ(read_listops_tsv(no_newline)[0].target, 2);
  // An LRA-style file (parentheses, CRLF) reads too.
  const std::string lra = (dir / "lra.tsv").string();
  std::ofstream(lra) << "Source\tTarget\r\n( ( [MAX 2 ) 9 ) ]\t9\r\n";
  const auto lra_examples = read_listops_tsv(lra);
  ASSERT_EQ(lra_examples.size(), 1u);
  EXPECT_EQ(lra_examples[0].tokens, listops_from_text("[MAX 2 9 ]"));
  const std::string bad = (dir / "bad.tsv").string();
  std::ofstream(bad) << "Source\tTarget\n[MAX 2 9 ]\t9\n[MAX 2 9 ]\tx\n";
  EXPECT_SSM_ERROR(read_listops_tsv(bad), "read_listops_tsv", "bad.tsv", "line 3", "'x'");
  std::ofstream(bad) << "Source\tTarget\n[MAX 2 [NOT 9 ]\t9\n";
  EXPECT_SSM_ERROR(read_listops_tsv(bad), "read_listops_tsv", "bad.tsv", "line 2", "[NOT");
  EXPECT_SSM_ERROR(read_listops_tsv((dir / "missing.tsv").string()), "read_listops_tsv",
                   "missing.tsv");
  fs::remove_all(dir);
}

TEST(ListOps, CacheGeneratesOnce) {
  const fs::path dir = temp_dir("cache");
  const ListOpsOptions o = small_options(3);
  const ListOpsFiles files = ensure_listops_files(dir.string(), o);
  ASSERT_TRUE(fs::exists(files.train) && fs::exists(files.val) && fs::exists(files.test));
  const auto stamp = fs::last_write_time(files.train);
  // Mark the cached file: a regeneration would overwrite the mark.
  { std::ofstream(files.train, std::ios::app) << "[MAX 1 2 ]\t2\n"; }
  const auto marked = fs::last_write_time(files.train);
  const ListOpsFiles again = ensure_listops_files(dir.string(), o);
  EXPECT_EQ(again.train, files.train);
  EXPECT_EQ(fs::last_write_time(again.train), marked);
  EXPECT_GE(marked, stamp);
  EXPECT_EQ(read_listops_tsv(again.train).size(), 301u);
  // Other options get their own files.
  const ListOpsFiles other = ensure_listops_files(dir.string(), small_options(4));
  EXPECT_NE(other.train, files.train);
  auto ds = ListOpsDataset::from_tsv(other.val);
  EXPECT_EQ(ds->size(), 30);
  fs::remove_all(dir);
}

TEST(ListOps, DatasetBatchesPadToLongest) {
  const ListOpsSplits s = generate_listops(small_options(5));
  auto ds = std::make_shared<ListOpsDataset>(s.val);
  Example e = ds->get(3);
  EXPECT_EQ(e.input.dtype(), DType::I64);
  EXPECT_EQ(e.input.numel(), static_cast<int64_t>(s.val[3].tokens.size()));
  EXPECT_EQ(e.input.at({0}), s.val[3].tokens[0]);
  EXPECT_EQ(e.target.item(), s.val[3].target);
  DataLoader loader(ds, {8, true, false, 1},
                    [](const std::vector<Example>& ex) { return pad_examples(ex, kListOpsPad); });
  Batch b = loader.batch(0);
  const int64_t longest = b.inputs.size(1);
  int64_t max_len = 0;
  for (int64_t k = 0; k < 8; ++k) {
    const auto& tokens = s.val[loader.order()[k]].tokens;
    const int64_t len = static_cast<int64_t>(tokens.size());
    EXPECT_EQ(b.lengths.at({k}), len);
    max_len = std::max(max_len, len);
    if (len < longest) {
      EXPECT_EQ(b.inputs.at({k, len}), kListOpsPad);
    }
    EXPECT_EQ(b.inputs.at({k, len - 1}), kListOpsClose);
  }
  EXPECT_EQ(longest, max_len);
  EXPECT_EQ(ds->max_length(), std::max_element(s.val.begin(), s.val.end(), [](auto& a, auto& b) {
                                return a.tokens.size() < b.tokens.size();
                              })->tokens.size());
}
