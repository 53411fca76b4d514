// Cutting added tokens (special tokens such as <|endoftext|>) out of the text before the BPE
// pipeline sees it, the way `tokenizers` does: leftmost match first, longest at that position,
// matches not overlapping; then single_word / lstrip / rstrip adjust or discard each match.
#include <algorithm>

#include "io/tokenizer_internal.h"

namespace ssm::io::tokenizer_detail {

namespace {

// The character that ends just before `pos`, with its length; nullopt when that is not a
// well-formed UTF-8 sequence (or pos is 0).
std::optional<std::pair<char32_t, size_t>> char_before(std::string_view text, size_t pos) {
  for (size_t len = 1; len <= 4 && len <= pos; ++len) {
    if (utf8_sequence_length(text, pos - len) == len)
      return std::pair{utf8_decode(text, pos - len, len), len};
  }
  return std::nullopt;
}

std::optional<std::pair<char32_t, size_t>> char_at(std::string_view text, size_t pos) {
  if (pos >= text.size()) return std::nullopt;
  const size_t len = utf8_sequence_length(text, pos);
  if (len == 0) return std::nullopt;
  return std::pair{utf8_decode(text, pos, len), len};
}

}  // namespace

void AddedTokenMatcher::add(std::string pattern, const AddedToken& token) {
  if (pattern.empty()) return;  // an empty token can never be cut out
  const auto index = uint32_t(entries_.size());
  auto& bucket = by_first_byte_[static_cast<uint8_t>(pattern[0])];
  entries_.push_back({std::move(pattern), token.id, token.lstrip, token.rstrip, token.single_word});
  bucket.push_back(index);
  // Longest first, so the first pattern found at a position is the longest one there.
  std::stable_sort(bucket.begin(), bucket.end(), [&](uint32_t a, uint32_t b) {
    return entries_[a].pattern.size() > entries_[b].pattern.size();
  });
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Span>& out) const {
  size_t plain_start = 0;  // where the text not yet emitted begins
  size_t pos = 0;
  while (pos < text.size()) {
    const Entry* hit = nullptr;
    for (uint32_t index : by_first_byte_[static_cast<uint8_t>(text[pos])]) {
      if (text.substr(pos).starts_with(entries_[index].pattern)) {
        hit = &entries_[index];
        break;
      }
    }
    if (!hit) {
      ++pos;
      continue;
    }
    size_t begin = pos, end = pos + hit->pattern.size();
    if (hit->single_word) {
      const auto before = char_before(text, begin);
      const auto after = char_at(text, end);
      if ((before && is_word_char(before->first)) || (after && is_word_char(after->first))) {
        pos = end;  // a discarded match still consumes its text, as in `tokenizers`
        continue;
      }
    }
    if (hit->lstrip) {
      // Whitespace already emitted (e.g. taken by a previous rstrip) is not taken again.
      while (begin > plain_start) {
        const auto c = char_before(text, begin);
        if (!c || !is_white_space(c->first) || begin - c->second < plain_start) break;
        begin -= c->second;
      }
    }
    if (hit->rstrip) {
      for (auto c = char_at(text, end); c && is_white_space(c->first); c = char_at(text, end))
        end += c->second;
    }
    if (begin > plain_start) out.push_back({plain_start, begin, -1});
    out.push_back({begin, end, hit->id});
    plain_start = pos = end;
  }
  if (plain_start < text.size()) out.push_back({plain_start, text.size(), -1});
}

}  // namespace ssm::io::tokenizer_detail
