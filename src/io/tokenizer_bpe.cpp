// Byte-pair merging of one pre-token: start from one symbol per byte and repeatedly merge the
// adjacent pair whose merge rule has the lowest rank (the leftmost such pair on ties) until no
// adjacent pair has a rule.
#include <algorithm>
#include <mutex>

#include "io/tokenizer_internal.h"
#include "ssm/core/error.h"

namespace ssm::io::tokenizer_detail {

void BpeModel::index_bytes() {
  for (int b = 0; b < 256; ++b) {
    std::string spelling;
    append_utf8(spelling, byte_to_char(uint8_t(b)));
    const auto it = vocab.find(spelling);
    byte_ids_[b] = it == vocab.end() ? -1 : it->second;
  }
}

void BpeModel::encode_word(std::string_view bytes, std::vector<int32_t>& out) const {
  if (bytes.empty()) return;
  if (ignore_merges) {
    const auto it = vocab.find(byte_level_spelling(bytes));
    if (it != vocab.end()) {
      out.push_back(it->second);
      return;
    }
  }
  if (bytes.size() == 1 || bytes.size() > kMaxCachedLength) {
    merge_word(bytes, out);
    return;
  }
  {
    std::shared_lock lock(cache_mutex_);
    const auto it = cache_.find(bytes);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  const size_t start = out.size();
  merge_word(bytes, out);
  std::unique_lock lock(cache_mutex_);
  // A full cache stops growing rather than evicting: text keeps reusing its frequent words.
  if (cache_.size() < kCacheCapacity)
    cache_.emplace(std::string(bytes), std::vector<int32_t>(out.begin() + long(start), out.end()));
}

void BpeModel::merge_word(std::string_view bytes, std::vector<int32_t>& out) const {
  // Symbols live at their first byte's index; merging links a symbol to its right neighbour's
  // successor, so positions (and hence "leftmost") keep their meaning.
  const int n = int(bytes.size());
  std::vector<int32_t> id;
  id.reserve(size_t(n));
  bool previous_unknown = false;
  for (int i = 0; i < n; ++i) {
    const auto byte = static_cast<uint8_t>(bytes[size_t(i)]);
    const int32_t symbol = byte_ids_[byte];
    if (symbol >= 0) {
      id.push_back(symbol);
      previous_unknown = false;
      continue;
    }
    SSM_CHECK(unk_id.has_value(),
              "tokenizer {}: byte 0x{:02x} has no token in model.vocab and model.unk_token is "
              "not set",
              source, byte);
    // fuse_unk: a run of unknown bytes becomes one unknown symbol.
    if (!(fuse_unk && previous_unknown)) id.push_back(*unk_id);
    previous_unknown = true;
  }
  const int m = int(id.size());
  if (m == 1) {
    out.push_back(id[0]);
    return;
  }
  std::vector<int32_t> next(id.size()), prev(id.size());
  for (int i = 0; i < m; ++i) {
    next[size_t(i)] = i + 1 < m ? i + 1 : -1;
    prev[size_t(i)] = i - 1;
  }

  // Candidate merges, smallest (rank, position) on top. Entries can go stale as neighbours
  // merge; a popped entry is applied only if the pair it names is still there.
  struct Candidate {
    int32_t rank, pos, left, right, merged;
    bool operator>(const Candidate& o) const {
      return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
  };
  std::vector<Candidate> heap;
  const auto push = [&](int pos) {
    if (pos < 0 || next[size_t(pos)] < 0) return;
    const int32_t left = id[size_t(pos)], right = id[size_t(next[size_t(pos)])];
    const auto it = merges.find(pair_key(left, right));
    if (it == merges.end()) return;
    heap.push_back({it->second.rank, pos, left, right, it->second.merged_id});
    std::push_heap(heap.begin(), heap.end(), std::greater<>{});
  };
  for (int i = 0; i + 1 < m; ++i) push(i);

  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    const Candidate c = heap.back();
    heap.pop_back();
    const int right_pos = next[size_t(c.pos)];
    if (id[size_t(c.pos)] != c.left || right_pos < 0 || id[size_t(right_pos)] != c.right)
      continue;  // stale
    id[size_t(c.pos)] = c.merged;
    id[size_t(right_pos)] = -1;  // dead: can never equal a stored left id
    next[size_t(c.pos)] = next[size_t(right_pos)];
    if (next[size_t(c.pos)] >= 0) prev[size_t(next[size_t(c.pos)])] = c.pos;
    push(prev[size_t(c.pos)]);
    push(c.pos);
  }
  for (int i = 0; i >= 0; i = next[size_t(i)]) out.push_back(id[size_t(i)]);
}

}  // namespace ssm::io::tokenizer_detail
