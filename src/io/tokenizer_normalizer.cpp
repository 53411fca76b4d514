// NFC normalisation and the Unicode properties the tokenizer needs, from ICU (the Unicode data
// stays in the library that maintains it rather than in tables copied here).
#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/uchar.h>

#include "io/tokenizer_internal.h"
#include "ssm/core/error.h"

namespace ssm::io::tokenizer_detail {

namespace {

const icu::Normalizer2& nfc_instance() {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(status);
  SSM_CHECK(U_SUCCESS(status) && nfc, "tokenizer: ICU's NFC normaliser is unavailable: {}",
            u_errorName(status));
  return *nfc;
}

// Appends NFC(run) for a well-formed UTF-8 run; most text is already NFC and is copied as is.
void append_nfc(const icu::Normalizer2& nfc, std::string_view run, std::string& out) {
  const icu::StringPiece piece(run.data(), int32_t(run.size()));
  UErrorCode status = U_ZERO_ERROR;
  const bool already = nfc.isNormalizedUTF8(piece, status);
  SSM_CHECK(U_SUCCESS(status), "tokenizer: NFC check failed: {}", u_errorName(status));
  if (already) {
    out.append(run);
    return;
  }
  icu::StringByteSink<std::string> sink(&out);
  nfc.normalizeUTF8(0, piece, sink, nullptr, status);
  SSM_CHECK(U_SUCCESS(status), "tokenizer: NFC normalisation failed: {}", u_errorName(status));
}

}  // namespace

std::string normalize_nfc(std::string_view text) {
  const icu::Normalizer2& nfc = nfc_instance();
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = pos;
    while (end < text.size()) {
      const size_t len = utf8_sequence_length(text, end);
      if (len == 0) break;
      end += len;
    }
    if (end > pos) {
      append_nfc(nfc, text.substr(pos, end - pos), out);
      pos = end;
    } else {
      out.push_back(text[pos++]);  // not well-formed UTF-8: kept byte for byte
    }
  }
  return out;
}

bool is_white_space(char32_t c) {
  return u_isUWhiteSpace(UChar32(c));
}

// Alphabetic, marks, decimal digits, connector punctuation and joiners: the `\w` of Unicode
// regular expressions (UTS #18 Annex C).
bool is_word_char(char32_t c) {
  const UChar32 u = UChar32(c);
  if (u_isUAlphabetic(u)) return true;
  if (U_GET_GC_MASK(u) & (U_GC_M_MASK | U_GC_ND_MASK | U_GC_PC_MASK)) return true;
  return u_hasBinaryProperty(u, UCHAR_JOIN_CONTROL);
}

}  // namespace ssm::io::tokenizer_detail
