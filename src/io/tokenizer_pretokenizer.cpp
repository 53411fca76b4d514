// Pre-tokenisation: splitting text into the pieces BPE merges within, by PCRE2 regex steps.
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <memory>

#include "io/tokenizer_internal.h"
#include "ssm/core/error.h"

namespace ssm::io::tokenizer_detail {

namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  const int len = pcre2_get_error_message(code, buffer, sizeof(buffer));
  return len < 0 ? fmt::format("PCRE2 error {}", code)
                 : std::string(reinterpret_cast<const char*>(buffer), size_t(len));
}

struct MatchDataDeleter {
  void operator()(pcre2_match_data* md) const { pcre2_match_data_free(md); }
};

// One stretch of a piece: a regex match or the text between matches.
struct Part {
  size_t begin, end;
  bool is_match;
};

// Applies a split behaviour to parts covering a piece in order (cf. SplitBehavior).
void apply_behavior(SplitBehavior behavior, const std::vector<Part>& parts,
                    std::vector<std::pair<size_t, size_t>>& kept) {
  bool previous_match = false;
  const size_t first = kept.size();  // `kept` may hold earlier pieces' parts: never touch those
  switch (behavior) {
    case SplitBehavior::kIsolated:
      for (const Part& p : parts) kept.emplace_back(p.begin, p.end);
      return;
    case SplitBehavior::kRemoved:
      for (const Part& p : parts)
        if (!p.is_match) kept.emplace_back(p.begin, p.end);
      return;
    case SplitBehavior::kMergedWithPrevious:
      // A match joins the text before it (when that is not a match itself).
      for (const Part& p : parts) {
        if (p.is_match && !previous_match && kept.size() > first)
          kept.back().second = p.end;
        else
          kept.emplace_back(p.begin, p.end);
        previous_match = p.is_match;
      }
      return;
    case SplitBehavior::kMergedWithNext: {
      // A match joins the text after it (when that is not a match itself): the mirror image.
      std::vector<std::pair<size_t, size_t>> reversed;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->is_match && !previous_match && !reversed.empty())
          reversed.back().first = it->begin;
        else
          reversed.emplace_back(it->begin, it->end);
        previous_match = it->is_match;
      }
      kept.insert(kept.end(), reversed.rbegin(), reversed.rend());
      return;
    }
    case SplitBehavior::kContiguous:
      // Runs of adjacent matches become one piece.
      for (const Part& p : parts) {
        if (p.is_match && previous_match)
          kept.back().second = p.end;
        else
          kept.emplace_back(p.begin, p.end);
        previous_match = p.is_match;
      }
      return;
  }
}

}  // namespace

Regex::Regex(std::string_view pattern, bool literal, std::string_view where) {
  // UCP: \s, \p{L}, \w ... follow Unicode properties. MATCH_INVALID_UTF: the subject may hold
  // bytes that are not UTF-8; they are simply matched by nothing.
  // (PCRE2_LITERAL refuses UCP, which a literal does not need.)
  const uint32_t options =
      PCRE2_UTF | PCRE2_MATCH_INVALID_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
  int error = 0;
  PCRE2_SIZE error_offset = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), options,
                        &error, &error_offset, nullptr);
  SSM_CHECK(code_ != nullptr, "{}: invalid regex '{}' at offset {}: {}", where, pattern,
            error_offset, pcre2_message(error));
  // JIT is an optimisation only: without it (no JIT support) the interpreter gives the same
  // matches.
  jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
}

Regex::~Regex() {
  pcre2_code_free(code_);
}

void Regex::find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const {
  std::unique_ptr<pcre2_match_data, MatchDataDeleter> md(
      pcre2_match_data_create_from_pattern(code_, nullptr));
  SSM_CHECK(md != nullptr, "tokenizer: out of memory for regex match data");
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  size_t offset = 0;
  while (offset < text.size()) {
    const int rc = pcre2_match(code_, subject, text.size(), offset, 0, md.get(), nullptr);
    if (rc == PCRE2_ERROR_NOMATCH) break;
    SSM_CHECK(rc >= 0, "tokenizer: regex match failed at byte {}: {}", offset, pcre2_message(rc));
    const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(md.get());
    const size_t begin = ovector[0], end = ovector[1];
    if (end > begin) {
      out.emplace_back(begin, end);
      offset = end;
    } else {
      // An empty match: step over one character so the search moves on.
      offset = std::max(offset, end) + 1;
      while (offset < text.size() && (static_cast<uint8_t>(text[offset]) & 0xC0) == 0x80) ++offset;
    }
  }
}

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
  if (text.empty()) return;
  std::vector<std::pair<size_t, size_t>> pieces{{0, text.size()}}, next, matches;
  std::vector<Part> parts;
  for (const SplitStep& step : steps) {
    next.clear();
    for (const auto& [piece_begin, piece_end] : pieces) {
      const std::string_view piece = text.substr(piece_begin, piece_end - piece_begin);
      matches.clear();
      step.regex->find_all(piece, matches);
      // Parts covering the piece: the matches and the (possibly empty-of-matches) gaps.
      parts.clear();
      size_t covered = 0;
      for (const auto& [b, e] : matches) {
        if (b > covered) parts.push_back({piece_begin + covered, piece_begin + b, step.invert});
        parts.push_back({piece_begin + b, piece_begin + e, !step.invert});
        covered = e;
      }
      if (covered < piece.size()) parts.push_back({piece_begin + covered, piece_end, step.invert});
      apply_behavior(step.behavior, parts, next);
    }
    pieces.swap(next);
  }
  for (const auto& [b, e] : pieces)
    if (e > b) out.push_back(text.substr(b, e - b));
}

}  // namespace ssm::io::tokenizer_detail
