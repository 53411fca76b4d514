#pragma once
// The pieces of the byte-level BPE tokenizer (see include/ssm/io/tokenizer.h), shared by
// src/io/tokenizer*.cpp and its tests. Not part of the public API.
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

struct pcre2_real_code_8;  // PCRE2's compiled pattern (pcre2.h stays out of this header)

namespace ssm::io::tokenizer_detail {

// Hash for unordered maps keyed by std::string that are looked up with string_views.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
template <typename T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;

// ---- UTF-8 and the byte-level alphabet (tokenizer_byte_level.cpp)

// Length (1-4) of the well-formed UTF-8 sequence starting at text[pos], or 0 when the byte
// there does not start one (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF).
size_t utf8_sequence_length(std::string_view text, size_t pos);
// The code point of the well-formed sequence of `len` bytes at text[pos].
char32_t utf8_decode(std::string_view text, size_t pos, size_t len);
void append_utf8(std::string& out, char32_t code_point);

// GPT-2's byte -> character map: the bytes that are printable on their own (33-126, 161-172,
// 174-255) map to the same code point; the other 68 bytes map to 256, 257, ... in byte order.
// Every byte so becomes one visible character and a BPE vocabulary can spell any byte string.
char32_t byte_to_char(uint8_t byte);
// The byte a character stands for, or -1 for a character outside the alphabet.
int char_to_byte(char32_t c);
// The vocabulary spelling (UTF-8 of the mapped characters) of raw bytes.
std::string byte_level_spelling(std::string_view bytes);
// Appends the bytes a vocabulary spelling stands for. Returns false (appending nothing) when a
// character is outside the alphabet or the spelling is not valid UTF-8.
bool byte_level_to_bytes(std::string_view spelling, std::string& out);

// ---- normalisation (tokenizer_normalizer.cpp)

// Unicode NFC of every maximal well-formed UTF-8 run; bytes that are not well-formed UTF-8 are
// kept as they are and act as boundaries (nothing composes across them).
std::string normalize_nfc(std::string_view text);
// Unicode properties used by added tokens' lstrip / rstrip / single_word (same definitions as
// the regex crate's `\s` and `\w` that `tokenizers` uses there).
bool is_white_space(char32_t c);
bool is_word_char(char32_t c);

// ---- added tokens (tokenizer_added_tokens.cpp)

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool normalized = true;    // matched in the normalised text (else in the raw text)
  bool lstrip = false;       // absorbs the whitespace on its left
  bool rstrip = false;       // absorbs the whitespace on its right
  bool single_word = false;  // only matches with no word character on either side
};

// A stretch of text: plain text (added_id < 0) or one added token.
struct Span {
  size_t begin = 0, end = 0;
  int32_t added_id = -1;
};

// Finds added tokens in text: leftmost match first, the longest one at that position.
class AddedTokenMatcher {
 public:
  AddedTokenMatcher() = default;
  // `pattern` is what is looked for (the content, or its normalised form).
  void add(std::string pattern, const AddedToken& token);
  bool empty() const { return entries_.empty(); }
  // Cuts `text` into spans covering it in order; empty plain spans are left out.
  void split(std::string_view text, std::vector<Span>& out) const;

 private:
  struct Entry {
    std::string pattern;
    int32_t id;
    bool lstrip, rstrip, single_word;
  };
  std::vector<Entry> entries_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_{};  // entry indices, longest first
};

// ---- pre-tokenisation (tokenizer_pretokenizer.cpp)

// The GPT-2 split pattern that the ByteLevel pre-tokenizer uses when "use_regex" is true.
inline constexpr std::string_view kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

// A PCRE2 pattern compiled in UTF + UCP mode that also matches in invalid UTF-8 (invalid bytes
// are matched by nothing). JIT-compiled where available. Immutable, so shareable by threads.
class Regex {
 public:
  // `literal`: the pattern is a plain string to find. Errors name `where`.
  Regex(std::string_view pattern, bool literal, std::string_view where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // Appends [begin, end) of every non-empty, non-overlapping match, in order.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
};

// What a Split step does with the matches (the `tokenizers` SplitDelimiterBehavior).
enum class SplitBehavior { kRemoved, kIsolated, kMergedWithPrevious, kMergedWithNext, kContiguous };

struct SplitStep {
  std::shared_ptr<const Regex> regex;
  SplitBehavior behavior = SplitBehavior::kIsolated;
  bool invert = false;  // the pattern matches what to keep, not the delimiters
};

// Splits one piece of (normalised) text into pre-tokens, applying the steps in order.
struct PreTokenizer {
  bool add_prefix_space = false;  // applied by the caller, which owns the text
  std::vector<SplitStep> steps;
  void split(std::string_view text, std::vector<std::string_view>& out) const;
};

// ---- the BPE model (tokenizer_bpe.cpp)

class BpeModel {
 public:
  struct Merge {
    int32_t rank;       // position in model.merges: lower merges first
    int32_t merged_id;  // id of left + right
  };
  static uint64_t pair_key(int32_t left, int32_t right) {
    return (uint64_t(uint32_t(left)) << 32) | uint32_t(right);
  }

  std::string source;  // the file, for error messages
  StringMap<int32_t> vocab;
  std::unordered_map<uint64_t, Merge> merges;
  std::optional<int32_t> unk_id;
  bool fuse_unk = false;
  bool ignore_merges = false;  // a pre-token that is itself in the vocabulary is not split

  // Call once the vocabulary is complete: looks up the id of each byte's character.
  void index_bytes();
  // Appends the ids of one pre-token (raw bytes). Words up to kMaxCachedLength bytes are cached.
  void encode_word(std::string_view bytes, std::vector<int32_t>& out) const;

  static constexpr size_t kMaxCachedLength = 256;
  static constexpr size_t kCacheCapacity = 1 << 17;

 private:
  void merge_word(std::string_view bytes, std::vector<int32_t>& out) const;
  std::array<int32_t, 256> byte_ids_{};  // -1: the byte's character is not in the vocabulary
  mutable std::shared_mutex cache_mutex_;
  mutable StringMap<std::vector<int32_t>> cache_;
};

// ---- everything loaded from tokenizer.json (tokenizer_json.cpp)

enum class DecoderKind { kNone, kByteLevel };

struct TokenizerData {
  std::string source;
  BpeModel bpe;
  bool nfc = false;
  std::vector<AddedToken> added_tokens;
  AddedTokenMatcher raw_matcher;         // added tokens with "normalized": false
  AddedTokenMatcher normalized_matcher;  // added tokens with "normalized": true
  PreTokenizer pre_tokenizer;
  DecoderKind decoder = DecoderKind::kByteLevel;
  // By id: the vocabulary spelling (an added token's content wins), whether the id names a
  // token at all, and whether it is a special added token.
  std::vector<std::string> spelling;
  std::vector<uint8_t> has_token;
  std::vector<uint8_t> special;
  StringMap<int32_t> added_ids;  // content -> id
};

std::shared_ptr<TokenizerData> load_tokenizer_json(std::string_view json_text,
                                                   std::string_view source);

}  // namespace ssm::io::tokenizer_detail
