// UTF-8 helpers and GPT-2's byte-level alphabet for the BPE tokenizer.
#include <array>

#include "io/tokenizer_internal.h"

namespace ssm::io::tokenizer_detail {

size_t utf8_sequence_length(std::string_view text, size_t pos) {
  const auto at = [&](size_t i) { return static_cast<uint8_t>(text[i]); };
  const size_t left = text.size() - pos;
  const uint8_t b0 = at(pos);
  if (b0 < 0x80) return 1;
  const auto continuation = [&](size_t i) { return (at(pos + i) & 0xC0) == 0x80; };
  // The allowed range of the second byte depends on the first: it is what rules out overlong
  // forms (E0, F0), surrogates (ED) and code points above U+10FFFF (F4).
  if (b0 >= 0xC2 && b0 <= 0xDF) return left >= 2 && continuation(1) ? 2 : 0;
  if (b0 >= 0xE0 && b0 <= 0xEF) {
    if (left < 3) return 0;
    const uint8_t b1 = at(pos + 1);
    const uint8_t lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
    return b1 >= lo && b1 <= hi && continuation(2) ? 3 : 0;
  }
  if (b0 >= 0xF0 && b0 <= 0xF4) {
    if (left < 4) return 0;
    const uint8_t b1 = at(pos + 1);
    const uint8_t lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
    return b1 >= lo && b1 <= hi && continuation(2) && continuation(3) ? 4 : 0;
  }
  return 0;  // a continuation byte, C0/C1 or F5-FF
}

char32_t utf8_decode(std::string_view text, size_t pos, size_t len) {
  const auto at = [&](size_t i) { return char32_t(static_cast<uint8_t>(text[pos + i])); };
  switch (len) {
    case 1:
      return at(0);
    case 2:
      return ((at(0) & 0x1F) << 6) | (at(1) & 0x3F);
    case 3:
      return ((at(0) & 0x0F) << 12) | ((at(1) & 0x3F) << 6) | (at(2) & 0x3F);
    default:
      return ((at(0) & 0x07) << 18) | ((at(1) & 0x3F) << 12) | ((at(2) & 0x3F) << 6) |
             (at(3) & 0x3F);
  }
}

void append_utf8(std::string& out, char32_t cp) {
  if (cp < 0x80) {
    out.push_back(char(cp));
  } else if (cp < 0x800) {
    out.push_back(char(0xC0 | (cp >> 6)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(char(0xE0 | (cp >> 12)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(char(0xF0 | (cp >> 18)));
    out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(char(0x80 | (cp & 0x3F)));
  }
}

namespace {

// The 188 bytes that stand for themselves; the other 68 are shifted past U+00FF.
constexpr bool is_self_mapped(int b) {
  return (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
}

constexpr int kShiftedBase = 256;
constexpr int kAlphabetEnd = kShiftedBase + 68;  // one past the largest character used

struct ByteLevelTables {
  std::array<char32_t, 256> to_char{};
  std::array<int16_t, kAlphabetEnd> to_byte{};
  std::array<std::string, 256> spelling;  // UTF-8 of to_char[b]

  ByteLevelTables() {
    to_byte.fill(-1);
    int shifted = 0;
    for (int b = 0; b < 256; ++b) {
      const char32_t c = is_self_mapped(b) ? char32_t(b) : char32_t(kShiftedBase + shifted++);
      to_char[b] = c;
      to_byte[c] = int16_t(b);
      append_utf8(spelling[b], c);
    }
  }
};

const ByteLevelTables& tables() {
  static const ByteLevelTables t;
  return t;
}

}  // namespace

char32_t byte_to_char(uint8_t byte) {
  return tables().to_char[byte];
}

int char_to_byte(char32_t c) {
  return c < char32_t(kAlphabetEnd) ? tables().to_byte[c] : -1;
}

std::string byte_level_spelling(std::string_view bytes) {
  const auto& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char b : bytes) out += t.spelling[static_cast<uint8_t>(b)];
  return out;
}

bool byte_level_to_bytes(std::string_view spelling, std::string& out) {
  const size_t start = out.size();
  for (size_t pos = 0; pos < spelling.size();) {
    const size_t len = utf8_sequence_length(spelling, pos);
    const int byte = len ? char_to_byte(utf8_decode(spelling, pos, len)) : -1;
    if (byte < 0) {
      out.resize(start);
      return false;
    }
    out.push_back(char(byte));
    pos += len;
  }
  return true;
}

}  // namespace ssm::io::tokenizer_detail
