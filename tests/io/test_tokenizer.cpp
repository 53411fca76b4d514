// Byte-level BPE tokenizer (tokenizer.json): a tiny hand-made vocabulary with hand-computed ids,
// the pre-tokenizer and its split behaviours, NFC, added tokens, exact round trips on any bytes,
// load errors, the CLI, and — when ../shared/data has it — the GPT-NeoX-20B tokenizer checked
// against a plain reference encoder written here.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "io/tokenizer_internal.h"
#include "ssm/io/tokenizer.h"
#include "support/testing.h"

using namespace ssm;
using namespace ssm::io;
using nlohmann::json;
namespace fs = std::filesystem;
namespace td = ssm::io::tokenizer_detail;

namespace {

// ---- an independent, plain statement of GPT-2's byte-level alphabet

bool printable_byte(int b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174;
}

std::string utf8_of(int cp) {  // the alphabet only needs code points below 0x800
  std::string s;
  if (cp < 0x80) {
    s.push_back(char(cp));
  } else {
    s.push_back(char(0xC0 | (cp >> 6)));
    s.push_back(char(0x80 | (cp & 0x3F)));
  }
  return s;
}

// Byte b is spelled by itself when printable, else by 256 + (number of non-printable bytes
// before it).
std::string spell_byte(int b) {
  if (printable_byte(b)) return utf8_of(b);
  int k = 0;
  for (int x = 0; x < b; ++x) k += !printable_byte(x);
  return utf8_of(256 + k);
}

std::string spell(std::string_view bytes) {
  std::string s;
  for (char c : bytes) s += spell_byte(static_cast<uint8_t>(c));
  return s;
}

// ---- the tiny fixture: ids 0-255 are the bytes themselves, then these merges (rank order)

const std::vector<std::pair<std::string, std::string>> kMerges = {
    {"h", "e"},      // 256 he
    {"l", "l"},      // 257 ll
    {"he", "ll"},    // 258 hell
    {"hell", "o"},   // 259 hello
    {"Ġ", "w"},      // 260 Ġw
    {"o", "r"},      // 261 or
    {"Ġw", "or"},    // 262 Ġwor
    {"l", "d"},      // 263 ld
    {"Ġwor", "ld"},  // 264 Ġworld
    {"t", "'"},      // 266 t'   (265 is <|endoftext|>)
    {"'", "s"},      // 267 's
};
constexpr int64_t kHello = 259, kGWorld = 264, kEndOfText = 265, kTQuote = 266, kQuoteS = 267,
                  kTwoSpaces = 268, kHe = 256, kLl = 257, kLd = 263, kOr = 261;

json fixture(bool nfc = false, bool merges_as_pairs = false) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[spell_byte(b)] = b;
  const int64_t merged_ids[] = {256, 257, 258, 259, 260, 261, 262, 263, 264, 266, 267};
  json merges = json::array();
  for (size_t i = 0; i < kMerges.size(); ++i) {
    const auto& [l, r] = kMerges[i];
    vocab[l + r] = merged_ids[i];
    merges.push_back(merges_as_pairs ? json::array({l, r}) : json(l + " " + r));
  }
  json added = json::array({{{"id", kEndOfText},
                             {"content", "<|endoftext|>"},
                             {"special", true},
                             {"normalized", false},
                             {"lstrip", false},
                             {"rstrip", false},
                             {"single_word", false}},
                            {{"id", kTwoSpaces},
                             {"content", "  "},
                             {"special", false},
                             {"normalized", true},
                             {"lstrip", false},
                             {"rstrip", false},
                             {"single_word", false}}});
  return {{"version", "1.0"},
          {"added_tokens", added},
          {"normalizer", nfc ? json{{"type", "NFC"}} : json(nullptr)},
          {"pre_tokenizer",
           {{"type", "ByteLevel"},
            {"add_prefix_space", false},
            {"trim_offsets", true},
            {"use_regex", true}}},
          {"post_processor", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
          {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}}},
          {"model",
           {{"type", "BPE"},
            {"dropout", nullptr},
            {"unk_token", nullptr},
            {"fuse_unk", false},
            {"vocab", vocab},
            {"merges", merges}}}};
}

Tokenizer load(const json& j) {
  return Tokenizer::from_json_text(j.dump(), "fixture.json");
}

using Ids = std::vector<int64_t>;

std::vector<std::string> pre_tokens(const td::PreTokenizer& pre, std::string_view text) {
  std::vector<std::string_view> pieces;
  pre.split(text, pieces);
  return {pieces.begin(), pieces.end()};
}

td::PreTokenizer gpt2_pre_tokenizer() {
  td::PreTokenizer pre;
  pre.steps.push_back({std::make_shared<td::Regex>(td::kGpt2Pattern, false, "test"),
                       td::SplitBehavior::kIsolated, false});
  return pre;
}

class TokenizerFiles : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           fmt::format("ssm_test_tokenizer_{}_{}", getpid(),
                       ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) const {
    const std::string p = (dir_ / name).string();
    std::ofstream(p, std::ios::binary) << text;
    return p;
  }
  fs::path dir_;
};

}  // namespace

// ---------------------------------------------------------------- byte-level alphabet

TEST(TokenizerByteLevel, AlphabetMatchesThePlainRule) {
  std::set<char32_t> seen;
  for (int b = 0; b < 256; ++b) {
    std::string mine;
    td::append_utf8(mine, td::byte_to_char(uint8_t(b)));
    EXPECT_EQ(mine, spell_byte(b)) << "byte " << b;
    EXPECT_EQ(td::char_to_byte(td::byte_to_char(uint8_t(b))), b);
    seen.insert(td::byte_to_char(uint8_t(b)));
  }
  EXPECT_EQ(seen.size(), 256u);
  EXPECT_EQ(spell_byte(' '), "Ġ");  // the familiar spellings
  EXPECT_EQ(spell_byte('\n'), "Ċ");
  EXPECT_EQ(td::char_to_byte(U' '), -1);  // a plain space is not in the alphabet
  std::string out;
  EXPECT_FALSE(td::byte_level_to_bytes("a b", out));
  EXPECT_TRUE(out.empty());
}

TEST(TokenizerByteLevel, Utf8Validation) {
  EXPECT_EQ(td::utf8_sequence_length("a", 0), 1u);
  EXPECT_EQ(td::utf8_sequence_length("\xc3\xa9", 0), 2u);
  EXPECT_EQ(td::utf8_sequence_length("\xe2\x82\xac", 0), 3u);
  EXPECT_EQ(td::utf8_sequence_length("\xf0\x9f\x98\x80", 0), 4u);
  EXPECT_EQ(td::utf8_sequence_length("\xc0\x80", 0), 0u);          // overlong
  EXPECT_EQ(td::utf8_sequence_length("\xe0\x80\x80", 0), 0u);      // overlong
  EXPECT_EQ(td::utf8_sequence_length("\xed\xa0\x80", 0), 0u);      // surrogate
  EXPECT_EQ(td::utf8_sequence_length("\xf4\x90\x80\x80", 0), 0u);  // above U+10FFFF
  EXPECT_EQ(td::utf8_sequence_length("\x80", 0), 0u);              // lone continuation
  EXPECT_EQ(td::utf8_sequence_length("\xe2\x82", 0), 0u);          // truncated
}

// ---------------------------------------------------------------- pre-tokenizer

TEST(TokenizerPreTokenizer, Gpt2RegexPieces) {
  const auto pre = gpt2_pre_tokenizer();
  using V = std::vector<std::string>;
  EXPECT_EQ(pre_tokens(pre, "Hello world! 123  foo\n\nbar's"),
            (V{"Hello", " world", "!", " 123", " ", " foo", "\n", "\n", "bar", "'s"}));
  EXPECT_EQ(pre_tokens(pre, "I'll we're it's don't"),
            (V{"I", "'ll", " we", "'re", " it", "'s", " don", "'t"}));
  EXPECT_EQ(pre_tokens(pre, "trailing   "), (V{"trailing", "   "}));
  // Unicode letters and digits (Arabic-Indic) by property; emoji are "other" symbols.
  EXPECT_EQ(pre_tokens(pre, "h\xc3\xa9llo w\xc3\xb6rld \xe6\x97\xa5\xe6\x9c\xac \xd9\xa1\xd9\xa2"),
            (V{"h\xc3\xa9llo", " w\xc3\xb6rld", " \xe6\x97\xa5\xe6\x9c\xac", " \xd9\xa1\xd9\xa2"}));
  EXPECT_EQ(pre_tokens(pre, "hi \xf0\x9f\x98\x80!"), (V{"hi", " \xf0\x9f\x98\x80!"}));
  // Bytes that are not UTF-8 are matched by nothing and become pieces of their own.
  EXPECT_EQ(pre_tokens(pre,
                       "ab\xff\xfe"
                       "cd \x80"),
            (V{"ab", "\xff\xfe", "cd", " ", "\x80"}));
  EXPECT_TRUE(pre_tokens(pre, "").empty());
}

TEST(TokenizerPreTokenizer, SplitBehaviours) {
  using V = std::vector<std::string>;
  const auto with = [](td::SplitBehavior behavior, bool invert = false) {
    td::PreTokenizer pre;
    pre.steps.push_back({std::make_shared<td::Regex>("-", true, "test"), behavior, invert});
    return pre;
  };
  EXPECT_EQ(pre_tokens(with(td::SplitBehavior::kIsolated), "a-b--c"),
            (V{"a", "-", "b", "-", "-", "c"}));
  EXPECT_EQ(pre_tokens(with(td::SplitBehavior::kRemoved), "a-b--c"), (V{"a", "b", "c"}));
  EXPECT_EQ(pre_tokens(with(td::SplitBehavior::kMergedWithPrevious), "a-b--c"),
            (V{"a-", "b-", "-", "c"}));
  EXPECT_EQ(pre_tokens(with(td::SplitBehavior::kMergedWithNext), "a-b--c"),
            (V{"a", "-b", "-", "-c"}));
  EXPECT_EQ(pre_tokens(with(td::SplitBehavior::kContiguous), "a-b--c"),
            (V{"a", "-", "b", "--", "c"}));
  EXPECT_EQ(pre_tokens(with(td::SplitBehavior::kRemoved, true), "a-b--c"), (V{"-", "-", "-"}));
  // Merging never reaches into the previous piece of an earlier step.
  td::PreTokenizer two;
  two.steps.push_back(
      {std::make_shared<td::Regex>(" ", true, "test"), td::SplitBehavior::kIsolated, false});
  two.steps.push_back({std::make_shared<td::Regex>("-", true, "test"),
                       td::SplitBehavior::kMergedWithPrevious, false});
  EXPECT_EQ(pre_tokens(two, "a -b"), (V{"a", " ", "-", "b"}));
}

TEST(TokenizerPreTokenizer, LongRunsDoNotFail) {
  const auto pre = gpt2_pre_tokenizer();
  for (const std::string& text : {std::string(1 << 20, ' ') + "x", std::string(1 << 20, 'a'),
                                  std::string(1 << 20, '\xff'), std::string(1 << 20, '!')}) {
    std::vector<std::string_view> pieces;
    pre.split(text, pieces);
    size_t total = 0;
    for (auto p : pieces) total += p.size();
    EXPECT_EQ(total, text.size());
  }
}

// ---------------------------------------------------------------- encode with the fixture

TEST(Tokenizer, HandComputedIds) {
  const Tokenizer tok = load(fixture());
  EXPECT_EQ(tok.encode("hello world"), (Ids{kHello, kGWorld}));
  // h e l d: "h e" (rank 0) first, then "l d" (rank 7).
  EXPECT_EQ(tok.encode("held"), (Ids{kHe, kLd}));
  // l l d: "l l" (rank 1) beats "l d" (rank 7).
  EXPECT_EQ(tok.encode("lld"), (Ids{kLl, 'd'}));
  // Equal ranks: the leftmost pair merges first.
  EXPECT_EQ(tok.encode("lll"), (Ids{kLl, 'l'}));
  EXPECT_EQ(tok.encode("lllll"), (Ids{kLl, kLl, 'l'}));
  // "world" without its space: o r -> or, l d -> ld.
  EXPECT_EQ(tok.encode("world"), (Ids{'w', kOr, kLd}));
  // The pre-tokenizer cuts "it" | "'s", so "t '" (rank 9) never applies, "' s" does.
  EXPECT_EQ(tok.encode("it's"), (Ids{'i', 't', kQuoteS}));
  // Letters and punctuation are separate pre-tokens, so "t'" is not merged either.
  EXPECT_EQ(tok.encode("t'"), (Ids{'t', '\''}));
  EXPECT_EQ(tok.encode("\n"), (Ids{'\n'}));  // id = byte value for single bytes
  EXPECT_EQ(tok.encode(""), Ids{});
  EXPECT_EQ(tok.vocab_size(), 269);
}

TEST(Tokenizer, MergesAsPairsGiveTheSameIds) {
  const Tokenizer a = load(fixture(false, false)), b = load(fixture(false, true));
  for (const char* text : {"hello world", "held", "lld", "it's t' worldly hello"})
    EXPECT_EQ(a.encode(text), b.encode(text)) << text;
}

TEST(Tokenizer, AddedTokens) {
  const Tokenizer tok = load(fixture());
  // A special token is cut out of the raw text before pre-tokenization.
  EXPECT_EQ(tok.encode("hi<|endoftext|>there"), (Ids{'h', 'i', kEndOfText, 't', kHe, 'r', 'e'}));
  EXPECT_EQ(tok.encode("<|endoftext|><|endoftext|>"), (Ids{kEndOfText, kEndOfText}));
  // "  " is a normalized added token: "hello", "  ", "world".
  EXPECT_EQ(tok.encode("hello  world"), (Ids{kHello, kTwoSpaces, 'w', kOr, kLd}));
  // Three spaces: leftmost match "  ", then " b" is plain text.
  EXPECT_EQ(tok.encode("a   b"), (Ids{'a', kTwoSpaces, ' ', 'b'}));
  EXPECT_EQ(tok.decode({kHello, kTwoSpaces, 'w', kOr, kLd}), "hello  world");
  EXPECT_EQ(tok.decode({kHello, kEndOfText, kGWorld}), "hello<|endoftext|> world");
  EXPECT_EQ(tok.decode({kHello, kEndOfText, kGWorld}, /*skip_special_tokens=*/true), "hello world");
  EXPECT_TRUE(tok.is_special(kEndOfText));
  EXPECT_FALSE(tok.is_special(kTwoSpaces));
  EXPECT_FALSE(tok.is_special(kHello));
  EXPECT_EQ(tok.token_id("<|endoftext|>"), kEndOfText);
  EXPECT_EQ(tok.token_id("Ġworld"), kGWorld);
  EXPECT_EQ(tok.token_id("not a token"), std::nullopt);
  EXPECT_EQ(tok.token(kGWorld), "Ġworld");
  EXPECT_EQ(tok.token(kTwoSpaces), "  ");
  EXPECT_EQ(tok.token(-1), std::nullopt);
  EXPECT_EQ(tok.token(269), std::nullopt);
}

TEST(Tokenizer, AddedTokenOptions) {
  json j = fixture();
  auto add = [&](int64_t id, const char* content, bool lstrip, bool rstrip, bool single_word) {
    j["added_tokens"].push_back({{"id", id},
                                 {"content", content},
                                 {"special", true},
                                 {"normalized", false},
                                 {"lstrip", lstrip},
                                 {"rstrip", rstrip},
                                 {"single_word", single_word}});
  };
  add(300, "<|e", false, false, false);  // a prefix of <|endoftext|>
  add(301, "<mask>", true, true, false);
  add(302, "ony", false, false, true);
  const Tokenizer tok = load(j);
  EXPECT_EQ(tok.vocab_size(), 303);
  // Longest match at the leftmost position.
  EXPECT_EQ(tok.encode("x<|e<|endoftext|>"), (Ids{'x', 300, kEndOfText}));
  // lstrip / rstrip absorb the whitespace around the token.
  EXPECT_EQ(tok.encode("a <mask>\tb"), (Ids{'a', 301, 'b'}));
  // single_word: inside "anthony" it is not a word of its own; after a space it is.
  EXPECT_EQ(tok.encode("anthony ony"), (Ids{'a', 'n', 't', 'h', 'o', 'n', 'y', ' ', 302}));
  EXPECT_EQ(tok.encode("ony-x"), (Ids{302, '-', 'x'}));
}

TEST(Tokenizer, NfcNormalizer) {
  const Tokenizer nfc = load(fixture(/*nfc=*/true)), raw = load(fixture(false));
  const Ids e_acute{0xC3, 0xA9};  // U+00E9 = C3 A9, both bytes spelled by themselves
  EXPECT_EQ(nfc.encode("\xc3\xa9"), e_acute);
  EXPECT_EQ(nfc.encode("e\xcc\x81"), e_acute);                 // e + COMBINING ACUTE composes
  EXPECT_EQ(raw.encode("e\xcc\x81"), (Ids{'e', 0xCC, 0x81}));  // no normalizer: unchanged
  EXPECT_EQ(nfc.encode("\xe2\x84\xab"), (Ids{0xC3, 0x85}));    // ANGSTROM SIGN -> U+00C5
  // A byte that is not UTF-8 keeps its neighbours from composing.
  EXPECT_EQ(nfc.encode("e\xff\xcc\x81"), (Ids{'e', 0xFF, 0xCC, 0x81}));
  EXPECT_EQ(td::normalize_nfc("caf\x65\xcc\x81 \xff ok"), "caf\xc3\xa9 \xff ok");
}

TEST(Tokenizer, IgnoreMergesAndUnknownBytes) {
  json j = fixture();
  j["model"]["vocab"]["abc"] = 400;
  EXPECT_EQ(load(j).encode("abc"), (Ids{'a', 'b', 'c'}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(load(j).encode("abc"), (Ids{400}));
  EXPECT_EQ(load(j).encode("abcd"), (Ids{'a', 'b', 'c', 'd'}));

  json k = fixture();
  k["model"]["vocab"].erase(spell_byte(0xFF));
  k["model"]["vocab"].erase(spell_byte(0xFE));
  EXPECT_SSM_ERROR(load(k).encode("a\xff"), "fixture.json", "0xff", "unk_token");
  k["model"]["vocab"]["<unk>"] = 500;
  k["model"]["unk_token"] = "<unk>";
  EXPECT_EQ(load(k).encode("\xff\xfe"), (Ids{500, 500}));
  k["model"]["fuse_unk"] = true;
  EXPECT_EQ(load(k).encode("\xff\xfe"), (Ids{500}));
}

TEST(Tokenizer, AddPrefixSpace) {
  json j = fixture();
  j["pre_tokenizer"]["add_prefix_space"] = true;
  const Tokenizer tok = load(j);
  EXPECT_EQ(tok.encode("world"), (Ids{kGWorld}));
  EXPECT_EQ(tok.encode(" world"), (Ids{kGWorld}));  // no second space
  EXPECT_EQ(tok.decode(tok.encode("world")), " world");
}

TEST(Tokenizer, SplitPreTokenizerFromJson) {
  // A Split step before a ByteLevel without its own regex: only digits are cut out.
  json j = fixture();
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"},
         {"pattern", {{"Regex", "\\p{N}"}}},
         {"behavior", "Isolated"},
         {"invert", false}},
        {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}}}}};
  const Tokenizer tok = load(j);
  // Without the GPT-2 regex "hello world" is one piece; its merges still give hello | Ġworld.
  EXPECT_EQ(tok.encode("hello world"), (Ids{kHello, kGWorld}));
  EXPECT_EQ(tok.encode("t's"), (Ids{kTQuote, 's'}));  // no regex: "t '" (rank 9) applies
  EXPECT_EQ(tok.encode("he12"), (Ids{kHe, '1', '2'}));
}

// ---------------------------------------------------------------- round trips

namespace {

// Random strings built from pieces that stress the pipeline: any byte, words, emoji,
// combining marks, special tokens, whitespace runs.
std::string random_text(std::mt19937& rng, bool any_bytes) {
  static const std::vector<std::string> parts = {"hello",
                                                 " world",
                                                 "it's",
                                                 "  ",
                                                 "   ",
                                                 "\n",
                                                 "\t",
                                                 "<|endoftext|>",
                                                 "\xf0\x9f\x98\x80",
                                                 "\xf0\x9f\x91\x8d\xf0\x9f\x8f\xbd",
                                                 "\xe6\x97\xa5\xe6\x9c\xac",
                                                 "\xc3\xa9",
                                                 "123",
                                                 "!?",
                                                 "\xff",
                                                 "\xc0\xaf",
                                                 "\x80",
                                                 "\xe2\x82",
                                                 "\xed\xa0\x80"};
  std::string s;
  const int n = std::uniform_int_distribution<int>(0, 40)(rng);
  for (int i = 0; i < n; ++i) {
    if (any_bytes && std::uniform_int_distribution<int>(0, 2)(rng) == 0)
      s.push_back(char(std::uniform_int_distribution<int>(0, 255)(rng)));
    else
      s += parts[std::uniform_int_distribution<size_t>(0, parts.size() - 1)(rng)];
  }
  return s;
}

}  // namespace

TEST(Tokenizer, RoundTripAnyBytes) {
  const Tokenizer tok = load(fixture());
  std::mt19937 rng(1234);
  for (int trial = 0; trial < 2000; ++trial) {
    const std::string text = random_text(rng, /*any_bytes=*/true);
    const Ids ids = tok.encode(text);
    for (int64_t id : ids) ASSERT_TRUE(id >= 0 && id < tok.vocab_size());
    ASSERT_EQ(tok.decode(ids), text) << "trial " << trial;
  }
}

TEST(Tokenizer, RoundTripWithNfc) {
  const Tokenizer tok = load(fixture(/*nfc=*/true));
  std::mt19937 rng(99);
  for (int trial = 0; trial < 1000; ++trial) {
    // Already-NFC text (the parts above, invalid bytes included) comes back exactly ...
    const std::string text = random_text(rng, /*any_bytes=*/false);
    ASSERT_EQ(tok.decode(tok.encode(text)), text) << "trial " << trial;
    // ... and any bytes come back as their normal form, which encodes the same.
    const std::string bytes = random_text(rng, /*any_bytes=*/true);
    const Ids ids = tok.encode(bytes);
    ASSERT_EQ(tok.encode(tok.decode(ids)), ids) << "trial " << trial;
    ASSERT_EQ(tok.decode(ids), td::normalize_nfc(bytes));
  }
}

TEST(Tokenizer, ConcurrentEncodesAgree) {
  // One tokenizer shared by threads (its word cache is shared and locked).
  const Tokenizer tok = load(fixture(true));
  std::mt19937 rng(5);
  std::vector<std::string> texts;
  for (int i = 0; i < 400; ++i) texts.push_back(random_text(rng, true));
  std::vector<Ids> expected;
  for (const auto& t : texts) expected.push_back(load(fixture(true)).encode(t));
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int w = 0; w < 4; ++w) {
    threads.emplace_back([&, w] {
      for (int rep = 0; rep < 5; ++rep)
        for (size_t i = size_t(w); i < texts.size(); i += 2)
          mismatches[size_t(w)] += tok.encode(texts[i]) != expected[i];
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches, std::vector<int>(4, 0));
}

// ---------------------------------------------------------------- errors

TEST_F(TokenizerFiles, LoadErrorsNameFileAndField) {
  EXPECT_SSM_ERROR(Tokenizer::from_file((dir_ / "missing.json").string()), "missing.json",
                   "cannot open");
  const std::string bad_json = write("bad.json", "{\"model\": ");
  EXPECT_SSM_ERROR(Tokenizer::from_file(bad_json), "bad.json", "invalid JSON");

  const auto expect_field_error = [&](json j, const char* fragment1, const char* fragment2) {
    const std::string p = write("t.json", j.dump());
    EXPECT_SSM_ERROR(Tokenizer::from_file(p), "t.json", fragment1, fragment2);
  };
  json j = fixture();
  j["model"]["type"] = "WordPiece";
  expect_field_error(j, "model.type", "BPE");

  j = fixture();
  j["model"]["merges"].push_back("h zz");
  expect_field_error(j, "model.merges[11]", "token 'zz' is not in model.vocab");

  j = fixture();
  j["model"]["merges"].push_back(json::array({"q", "q"}));
  expect_field_error(j, "model.merges[11]", "merged token 'qq' is not in model.vocab");

  j = fixture();
  j["model"]["merges"][0] = "hello";
  expect_field_error(j, "model.merges[0]", "left right");

  j = fixture();
  j["model"]["vocab"]["dup"] = 5;
  expect_field_error(j, "model.vocab", "id 5");

  j = fixture();
  j["model"].erase("vocab");
  expect_field_error(j, "model.vocab", "missing");

  j = fixture();
  j["normalizer"] = {{"type", "Lowercase"}};
  expect_field_error(j, "normalizer.type", "Lowercase");

  j = fixture();
  j["pre_tokenizer"] = {{"type", "Whitespace"}};
  expect_field_error(j, "pre_tokenizer.type", "Whitespace");

  j = fixture();
  j["pre_tokenizer"] = nullptr;
  expect_field_error(j, "pre_tokenizer", "ByteLevel");

  j = fixture();
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       {{{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}},
        {{"type", "ByteLevel"}}}}};
  expect_field_error(j, "pre_tokenizer.pretokenizers[0].pattern.Regex", "invalid regex");

  j = fixture();
  j["model"]["dropout"] = 0.1;
  expect_field_error(j, "model.dropout", "not supported");

  j = fixture();
  j["added_tokens"][0].erase("id");
  expect_field_error(j, "added_tokens[0].id", "missing");

  j = fixture();
  j["decoder"] = {{"type", "WordPiece"}};
  expect_field_error(j, "decoder.type", "WordPiece");
}

TEST(Tokenizer, DecodeRejectsUnknownIds) {
  const Tokenizer tok = load(fixture());
  EXPECT_SSM_ERROR(tok.decode({kHello, 269}), "decode", "ids[1] = 269", "269");
  EXPECT_SSM_ERROR(tok.decode({-3}), "decode", "ids[0] = -3");
}

// ---------------------------------------------------------------- the CLI

TEST_F(TokenizerFiles, Cli) {
  const std::string cli = ssm::testing::cli_path();
  if (cli.empty() || !fs::exists(cli)) GTEST_SKIP() << "SSM_CLI not set (run through ctest)";
  const std::string path = write("tokenizer.json", fixture().dump());
  const auto run = [&](const std::string& args) {
    std::string out;
    FILE* p = popen((cli + " tokenize " + path + " " + args + " 2>&1").c_str(), "r");
    char buf[512];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int status = pclose(p);
    return std::pair{out, status};
  };
  EXPECT_EQ(run("'hello world'"), (std::pair{std::string("259 264\n"), 0}));
  EXPECT_EQ(run("'hello world' --json"), (std::pair{std::string("{\"ids\":[259,264]}\n"), 0}));
  EXPECT_EQ(run("--decode '259 264'"), (std::pair{std::string("hello world\n"), 0}));
  EXPECT_EQ(run("--decode '259,265,264' --skip-special --json").first,
            "{\"text\":\"hello world\"}\n");
  const auto [err, status] = run("--decode '259 x'");
  EXPECT_NE(status, 0);
  EXPECT_NE(err.find("'x' is not a token id"), std::string::npos) << err;
}

// ---------------------------------------------------------------- GPT-NeoX-20B (when present)

namespace {

const std::string kNeoxPath =
    std::string(SSM_SOURCE_DIR) + "/../shared/data/gpt-neox-20b-tokenizer.json";
const std::string kShakespearePath =
    std::string(SSM_SOURCE_DIR) + "/../shared/data/tinyshakespeare.txt";

std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A plain reference for ASCII text, written from the definitions rather than from the code
// under test: runs of 2-24 spaces are the added tokens (leftmost-longest), the GPT-2 regex is
// spelled out by hand for ASCII, and BPE is the textbook loop "find the lowest-ranked adjacent
// pair (by its "a b" string), merge every occurrence left to right, repeat" over strings.
class ReferenceAsciiEncoder {
 public:
  explicit ReferenceAsciiEncoder(const json& j) {
    for (const auto& [token, id] : j["model"]["vocab"].items()) vocab_[token] = id.get<int64_t>();
    const json& merges = j["model"]["merges"];
    for (size_t i = 0; i < merges.size(); ++i) rank_[merges[i].get<std::string>()] = int(i);
    for (const json& t : j["added_tokens"])
      added_[t["content"].get<std::string>()] = t["id"].get<int64_t>();
  }

  Ids encode(const std::string& text) const {
    Ids ids;
    std::string plain;
    size_t i = 0;
    while (i < text.size()) {
      size_t run = 0;
      while (i + run < text.size() && text[i + run] == ' ') ++run;
      if (run >= 2) {
        encode_plain(plain, ids);
        plain.clear();
        while (run >= 2) {
          const size_t take = std::min<size_t>(run, 24);
          ids.push_back(added_.at(std::string(take, ' ')));
          run -= take;
          i += take;
        }
        continue;  // a leftover single space starts the next plain text
      }
      plain.push_back(text[i++]);
    }
    encode_plain(plain, ids);
    return ids;
  }

 private:
  static bool letter(char c) { return std::isalpha(static_cast<unsigned char>(c)); }
  static bool digit(char c) { return std::isdigit(static_cast<unsigned char>(c)); }
  static bool space(char c) { return std::isspace(static_cast<unsigned char>(c)); }

  void encode_plain(const std::string& s, Ids& ids) const {
    size_t i = 0;
    while (i < s.size()) {
      size_t end = match_at(s, i);
      bpe(s.substr(i, end - i), ids);
      i = end;
    }
  }

  // The end of the GPT-2 regex match starting at i (ASCII only), alternatives in order.
  static size_t match_at(const std::string& s, size_t i) {
    for (const char* c : {"'s", "'t", "'re", "'ve", "'m", "'ll", "'d"})
      if (s.compare(i, std::strlen(c), c) == 0) return i + std::strlen(c);
    const size_t after_space = s[i] == ' ' ? i + 1 : i;
    const auto run = [&](size_t from, auto pred) {
      size_t k = from;
      while (k < s.size() && pred(s[k])) ++k;
      return k;
    };
    if (after_space < s.size()) {
      if (size_t e = run(after_space, letter); e > after_space) return e;
      if (size_t e = run(after_space, digit); e > after_space) return e;
      const auto other = [](char c) { return !space(c) && !letter(c) && !digit(c); };
      if (size_t e = run(after_space, other); e > after_space) return e;
    }
    const size_t e = run(i, space);  // \s+(?!\S) else \s+
    if (e == s.size() || e - i == 1) return e;
    return e - 1;  // leave the last space to prefix the next word
  }

  void bpe(const std::string& word, Ids& ids) const {
    std::vector<std::string> parts;
    for (char c : word) parts.push_back(spell_byte(static_cast<uint8_t>(c)));
    while (parts.size() > 1) {
      int best = -1;
      std::string best_key;
      for (size_t k = 0; k + 1 < parts.size(); ++k) {
        const auto it = rank_.find(parts[k] + " " + parts[k + 1]);
        if (it != rank_.end() && (best < 0 || it->second < best)) {
          best = it->second;
          best_key = it->first;
        }
      }
      if (best < 0) break;
      std::vector<std::string> merged;
      for (size_t k = 0; k < parts.size(); ++k) {
        if (k + 1 < parts.size() && parts[k] + " " + parts[k + 1] == best_key) {
          merged.push_back(parts[k] + parts[k + 1]);
          ++k;
        } else {
          merged.push_back(parts[k]);
        }
      }
      parts.swap(merged);
    }
    for (const auto& p : parts) ids.push_back(vocab_.at(p));
  }

  std::map<std::string, int64_t> vocab_;
  std::map<std::string, int> rank_;
  std::map<std::string, int64_t> added_;
};

}  // namespace

TEST(TokenizerNeox, KnownEncodings) {
  if (!fs::exists(kNeoxPath)) GTEST_SKIP() << "no " << kNeoxPath;
  const Tokenizer tok = Tokenizer::from_file(kNeoxPath);
  // 50,254 vocabulary entries + added tokens up to id 50,276.
  EXPECT_EQ(tok.vocab_size(), 50277);
  EXPECT_EQ(tok.token_id("<|endoftext|>"), 0);
  EXPECT_EQ(tok.token_id("<|padding|>"), 1);
  EXPECT_TRUE(tok.is_special(0));

  const auto spellings = [&](const Ids& ids) {
    std::vector<std::string> s;
    for (int64_t id : ids) s.push_back(tok.token(id).value_or("<none>"));
    return s;
  };
  using V = std::vector<std::string>;
  EXPECT_EQ(spellings(tok.encode("Hello world")), (V{"Hello", "Ġworld"}));
  EXPECT_EQ(tok.encode("Hello world"), (Ids{*tok.token_id("Hello"), *tok.token_id("Ġworld")}));
  // Two spaces are the added token "  " (normalized, so matched after NFC).
  EXPECT_EQ(spellings(tok.encode("Hello  world")), (V{"Hello", "  ", "world"}));
  EXPECT_EQ(tok.encode("<|endoftext|>Hello"), (Ids{0, *tok.token_id("Hello")}));
  // Every token of a non-ASCII text spells a piece of its byte-level form, in order.
  const std::string text =
      "Caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e \xf0\x9f\x98\x80 na\xc3\xafve";
  std::string joined;
  for (const auto& s : spellings(tok.encode(text))) joined += s;
  EXPECT_EQ(joined, spell(text));
  // NFC: a decomposed é encodes like the precomposed one.
  EXPECT_EQ(tok.encode("Cafe\xcc\x81"), tok.encode("Caf\xc3\xa9"));
}

TEST(TokenizerNeox, MatchesPlainReferenceOnShakespeare) {
  if (!fs::exists(kNeoxPath) || !fs::exists(kShakespearePath))
    GTEST_SKIP() << "no " << kNeoxPath << " or " << kShakespearePath;
  const Tokenizer tok = Tokenizer::from_file(kNeoxPath);
  const ReferenceAsciiEncoder reference(json::parse(read_all(kNeoxPath)));
  const std::string corpus = read_all(kShakespearePath);
  // A few paragraphs from different places, plus constructed whitespace/contraction cases.
  std::vector<std::string> samples = {corpus.substr(0, 4000), corpus.substr(500000, 4000),
                                      corpus.substr(corpus.size() - 4000)};
  samples.push_back("I'll say't, you're          there  ; 12345 !!   \n\n  x\t\ty   ");
  samples.push_back(std::string(30, ' ') + "a" + std::string(25, ' ') + "b" + std::string(49, ' '));
  for (const std::string& s : samples) {
    const Ids ids = tok.encode(s);
    EXPECT_EQ(ids, reference.encode(s)) << s.substr(0, 80);
    EXPECT_EQ(tok.decode(ids), s);
  }
}

TEST(TokenizerNeox, WholeShakespeareRoundTrip) {
  if (!fs::exists(kNeoxPath) || !fs::exists(kShakespearePath))
    GTEST_SKIP() << "no " << kNeoxPath << " or " << kShakespearePath;
  const auto t0 = std::chrono::steady_clock::now();
  const Tokenizer tok = Tokenizer::from_file(kNeoxPath);
  const auto t1 = std::chrono::steady_clock::now();
  const std::string corpus = read_all(kShakespearePath);
  const Ids ids = tok.encode(corpus);  // first encode: the word cache starts empty
  const auto t2 = std::chrono::steady_clock::now();
  const double load_s = std::chrono::duration<double>(t1 - t0).count();
  const double encode_s = std::chrono::duration<double>(t2 - t1).count();
  std::printf("load %.3f s; encode %zu bytes -> %zu tokens in %.3f s (%.1f MB/s)\n", load_s,
              corpus.size(), ids.size(), encode_s, double(corpus.size()) / encode_s / 1e6);
  EXPECT_EQ(tok.decode(ids), corpus);
  // Regression guard: the count this implementation gives (checked against the reference
  // encoder above on samples, not against the `tokenizers` library, which is not available).
  EXPECT_EQ(ids.size(), 340240u);
  // Speed is reported above and measured by benchmarks, never asserted here (a loaded CI
  // machine would make it flaky).
}
