#pragma once
// A Hugging Face `tokenizer.json` byte-level BPE tokenizer: the GPT-2 / GPT-NeoX-20B family used
// by Mamba and Mamba-2 checkpoints.
//
// encode(text) runs the same pipeline as `tokenizers` with add_special_tokens=False:
//   1. added tokens with "normalized": false (special tokens like <|endoftext|>) are cut out of
//      the raw text, leftmost-longest, honouring lstrip / rstrip / single_word;
//   2. the rest is normalised (NFC via ICU, or nothing), then added tokens with
//      "normalized": true are cut out of the normalised text the same way;
//   3. each remaining piece is pre-tokenised: optional prefix space, then the regex split
//      (ByteLevel's GPT-2 regex, and/or Split steps with the pattern from the json), via PCRE2 in
//      UTF + UCP mode;
//   4. each pre-token's bytes become byte-level symbols (the GPT-2 byte -> character map) and
//      are merged by BPE rank (lowest rank first, leftmost on ties).
// The post_processor is not applied (no BOS/EOS is added). decode(ids) is the ByteLevel decoder
// and returns the exact bytes, with no lossy UTF-8 repair.
//
// Input that is not valid UTF-8 never fails: invalid bytes are not normalised, are matched by
// no regex alternative and so become pre-tokens of their own, and round-trip through decode.
// (The `tokenizers` library only accepts valid UTF-8, so there is nothing to agree with there.)
//
// Known difference from `tokenizers` builds that use Oniguruma: PCRE2's `\s` (UCP) does not
// include U+0085 (NEXT LINE), Oniguruma's does; newer `tokenizers` builds use PCRE2 too.
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ssm::io {

namespace tokenizer_detail {
struct TokenizerData;  // src/io/tokenizer_internal.h
}

class Tokenizer {
 public:
  // Loads a tokenizer.json. Errors (ssm::Error) name the file and the field: missing file,
  // invalid JSON, model.type not BPE, merges naming unknown tokens, unsupported components.
  static Tokenizer from_file(const std::string& path);
  // The same from the JSON text; `source` names it in error messages.
  static Tokenizer from_json_text(std::string_view json_text, std::string_view source = "<json>");

  // Token ids of `text` (any bytes; see above).
  std::vector<int64_t> encode(std::string_view text) const;
  // The bytes the ids stand for. Throws for an id that names no token. With
  // skip_special_tokens, added tokens marked "special" are left out.
  std::string decode(const std::vector<int64_t>& ids, bool skip_special_tokens = false) const;

  // 1 + the largest id of the vocabulary and the added tokens.
  int64_t vocab_size() const;
  // Id of a token given in its vocabulary spelling (e.g. "Ġworld", "<|endoftext|>").
  std::optional<int64_t> token_id(std::string_view token) const;
  // Vocabulary spelling of an id (the content for added tokens); nullopt for a hole or out of
  // range.
  std::optional<std::string> token(int64_t id) const;
  // Whether `id` is an added token marked "special".
  bool is_special(int64_t id) const;

 private:
  explicit Tokenizer(std::shared_ptr<const tokenizer_detail::TokenizerData> data)
      : data_(std::move(data)) {}
  // Immutable after loading (but for an internal, locked word cache), so copies share it and
  // one tokenizer may encode from several threads at once.
  std::shared_ptr<const tokenizer_detail::TokenizerData> data_;
};

}  // namespace ssm::io
