// The Tokenizer API: the encode pipeline (added tokens, NFC, pre-tokenizer, BPE) and the
// byte-level decoder, over the pieces in tokenizer_*.cpp.
#include "ssm/io/tokenizer.h"

#include <fstream>
#include <sstream>

#include "io/tokenizer_internal.h"
#include "ssm/core/error.h"

namespace ssm::io {

using namespace tokenizer_detail;

namespace {

// Pre-tokenises one stretch of normalised text and appends its BPE ids.
void encode_plain(const TokenizerData& data, std::string_view text,
                  std::vector<std::string_view>& pieces, std::vector<int32_t>& ids) {
  if (text.empty()) return;
  std::string prefixed;
  if (data.pre_tokenizer.add_prefix_space && text.front() != ' ') {
    prefixed.reserve(text.size() + 1);
    prefixed.push_back(' ');
    prefixed.append(text);
    text = prefixed;
  }
  pieces.clear();
  data.pre_tokenizer.split(text, pieces);
  for (std::string_view piece : pieces) data.bpe.encode_word(piece, ids);
}

// Cuts `text` by `matcher` and runs `plain` on the stretches between added tokens.
template <typename Plain>
void split_added(const AddedTokenMatcher& matcher, std::string_view text, std::vector<int32_t>& ids,
                 Plain&& plain) {
  if (matcher.empty()) {
    plain(text);
    return;
  }
  std::vector<Span> spans;
  matcher.split(text, spans);
  for (const Span& s : spans) {
    if (s.added_id >= 0)
      ids.push_back(s.added_id);
    else
      plain(text.substr(s.begin, s.end - s.begin));
  }
}

}  // namespace

Tokenizer Tokenizer::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SSM_CHECK(in.good(), "tokenizer '{}': cannot open the file", path);
  std::ostringstream text;
  text << in.rdbuf();
  SSM_CHECK(!in.bad(), "tokenizer '{}': read error", path);
  return from_json_text(text.str(), path);
}

Tokenizer Tokenizer::from_json_text(std::string_view json_text, std::string_view source) {
  return Tokenizer(load_tokenizer_json(json_text, source));
}

std::vector<int64_t> Tokenizer::encode(std::string_view text) const {
  const TokenizerData& data = *data_;
  std::vector<int32_t> ids;
  ids.reserve(text.size() / 3 + 8);
  std::vector<std::string_view> pieces;
  split_added(data.raw_matcher, text, ids, [&](std::string_view raw) {
    std::string normalized;
    std::string_view view = raw;
    if (data.nfc) {
      normalized = normalize_nfc(raw);
      view = normalized;
    }
    split_added(data.normalized_matcher, view, ids,
                [&](std::string_view plain) { encode_plain(data, plain, pieces, ids); });
  });
  return std::vector<int64_t>(ids.begin(), ids.end());
}

std::string Tokenizer::decode(const std::vector<int64_t>& ids, bool skip_special_tokens) const {
  const TokenizerData& data = *data_;
  std::string out;
  bool first = true;
  for (size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    SSM_CHECK(id >= 0 && id < vocab_size() && data.has_token[size_t(id)],
              "tokenizer '{}': decode: ids[{}] = {} names no token (vocabulary size {})",
              data.source, i, id, vocab_size());
    if (skip_special_tokens && data.special[size_t(id)]) continue;
    const std::string& spelling = data.spelling[size_t(id)];
    if (data.decoder == DecoderKind::kByteLevel) {
      // A token with a character outside the byte-level alphabet (e.g. an added token holding
      // plain spaces) stands for its own UTF-8 bytes.
      if (!byte_level_to_bytes(spelling, out)) out += spelling;
    } else {
      // No decoder: tokens joined by spaces, as `tokenizers` does.
      if (!first) out.push_back(' ');
      out += spelling;
    }
    first = false;
  }
  return out;
}

int64_t Tokenizer::vocab_size() const {
  return int64_t(data_->spelling.size());
}

std::optional<int64_t> Tokenizer::token_id(std::string_view token) const {
  if (const auto it = data_->added_ids.find(token); it != data_->added_ids.end()) return it->second;
  if (const auto it = data_->bpe.vocab.find(token); it != data_->bpe.vocab.end()) return it->second;
  return std::nullopt;
}

std::optional<std::string> Tokenizer::token(int64_t id) const {
  if (id < 0 || id >= vocab_size() || !data_->has_token[size_t(id)]) return std::nullopt;
  return data_->spelling[size_t(id)];
}

bool Tokenizer::is_special(int64_t id) const {
  return id >= 0 && id < vocab_size() && data_->special[size_t(id)];
}

}  // namespace ssm::io
