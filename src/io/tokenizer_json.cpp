// Reading a Hugging Face tokenizer.json into TokenizerData. Everything the file says that this
// tokenizer cannot honour is an error naming the field, never silently different output.
#include <limits>
#include <nlohmann/json.hpp>

#include "io/tokenizer_internal.h"
#include "ssm/core/error.h"

namespace ssm::io::tokenizer_detail {

namespace {

using nlohmann::json;

// A short rendering of a JSON value for error messages.
std::string show(const json& j) {
  std::string s = j.dump(-1, ' ', false, json::error_handler_t::replace);
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

class Loader {
 public:
  explicit Loader(std::string_view source) : source_(source) {}

  [[noreturn]] void fail(std::string_view field, std::string_view what) const {
    SSM_FAIL("tokenizer '{}': {}: {}", source_, field, what);
  }

  // obj[key] when present and not null.
  const json* find(const json& obj, const char* key) const {
    const auto it = obj.find(key);
    return it == obj.end() || it->is_null() ? nullptr : &*it;
  }
  const json& require(const json& obj, const char* key, const std::string& field) const {
    const json* j = find(obj, key);
    if (!j) fail(field, "missing");
    return *j;
  }
  const json& require_object(const json& obj, const char* key, const std::string& field) const {
    const json& j = require(obj, key, field);
    if (!j.is_object()) fail(field, fmt::format("expected an object, got {}", show(j)));
    return j;
  }
  std::string string_field(const json& obj, const char* key, const std::string& field) const {
    const json& j = require(obj, key, field);
    if (!j.is_string()) fail(field, fmt::format("expected a string, got {}", show(j)));
    return j.get<std::string>();
  }
  bool bool_field(const json& obj, const char* key, const std::string& field, bool fallback) const {
    const json* j = find(obj, key);
    if (!j) return fallback;
    if (!j->is_boolean()) fail(field, fmt::format("expected true or false, got {}", show(*j)));
    return j->get<bool>();
  }
  int32_t id_value(const json& j, const std::string& field) const {
    if (!j.is_number_integer() || j.get<int64_t>() < 0 ||
        j.get<int64_t>() > std::numeric_limits<int32_t>::max())
      fail(field, fmt::format("expected a token id (an integer >= 0), got {}", show(j)));
    return int32_t(j.get<int64_t>());
  }
  std::string type_of(const json& component, const std::string& field) const {
    if (!component.is_object())
      fail(field, fmt::format("expected an object, got {}", show(component)));
    return string_field(component, "type", field + ".type");
  }

  void load_model(const json& root, TokenizerData& data) const;
  void load_added_tokens(const json& root, TokenizerData& data) const;
  void load_normalizer(const json& root, TokenizerData& data) const;
  void load_pre_tokenizer(const json& j, const std::string& field, TokenizerData& data,
                          bool& saw_byte_level) const;
  void load_decoder(const json& root, TokenizerData& data) const;

 private:
  std::string source_;
};

void Loader::load_model(const json& root, TokenizerData& data) const {
  const json& model = require_object(root, "model", "model");
  if (const json* type = find(model, "type")) {
    if (!type->is_string() || type->get<std::string>() != "BPE")
      fail("model.type", fmt::format("expected \"BPE\", got {}", show(*type)));
  }
  BpeModel& bpe = data.bpe;
  bpe.source = source_;

  const json& vocab = require_object(model, "vocab", "model.vocab");
  std::unordered_map<int32_t, std::string> by_id;
  for (const auto& [token, id_json] : vocab.items()) {
    const int32_t id = id_value(id_json, fmt::format("model.vocab[\"{}\"]", token));
    const auto [it, fresh] = by_id.emplace(id, token);
    if (!fresh)
      fail("model.vocab",
           fmt::format("id {} is given to both '{}' and '{}'", id, it->second, token));
    bpe.vocab.emplace(token, id);
  }

  const json& merges = require(model, "merges", "model.merges");
  if (!merges.is_array())
    fail("model.merges", fmt::format("expected an array, got {}", show(merges)));
  bpe.merges.reserve(merges.size());
  const auto lookup = [&](const std::string& token, const std::string& field) {
    const auto it = bpe.vocab.find(token);
    if (it == bpe.vocab.end()) fail(field, fmt::format("token '{}' is not in model.vocab", token));
    return it->second;
  };
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const json& m = merges[rank];
    const std::string field = fmt::format("model.merges[{}]", rank);
    std::string left, right;
    if (m.is_string()) {
      // "left right": tokens never hold a plain space in byte-level BPE (it is spelled "Ġ").
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ');
      if (space == std::string::npos || s.find(' ', space + 1) != std::string::npos)
        fail(field, fmt::format("expected \"left right\" (one space), got {}", show(m)));
      left = s.substr(0, space);
      right = s.substr(space + 1);
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {
      left = m[0].get<std::string>();
      right = m[1].get<std::string>();
    } else {
      fail(field, fmt::format("expected \"left right\" or [\"left\", \"right\"], got {}", show(m)));
    }
    const int32_t left_id = lookup(left, field), right_id = lookup(right, field);
    const auto merged = bpe.vocab.find(left + right);
    if (merged == bpe.vocab.end())
      fail(field, fmt::format("merged token '{}' is not in model.vocab", left + right));
    // A repeated rule keeps its first (highest-priority) rank.
    bpe.merges.emplace(BpeModel::pair_key(left_id, right_id),
                       BpeModel::Merge{int32_t(rank), merged->second});
  }

  if (find(model, "unk_token")) {
    const std::string unk = string_field(model, "unk_token", "model.unk_token");
    bpe.unk_id = lookup(unk, "model.unk_token");
  }
  bpe.fuse_unk = bool_field(model, "fuse_unk", "model.fuse_unk", false);
  bpe.ignore_merges = bool_field(model, "ignore_merges", "model.ignore_merges", false);
  if (const json* dropout = find(model, "dropout")) {
    if (!dropout->is_number() || dropout->get<double>() != 0.0)
      fail("model.dropout", fmt::format("BPE dropout is not supported (deterministic "
                                        "encoding only), got {}",
                                        show(*dropout)));
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (const json* affix = find(model, key)) {
      if (!affix->is_string() || !affix->get<std::string>().empty())
        fail(fmt::format("model.{}", key),
             fmt::format("not supported by byte-level BPE, got {}", show(*affix)));
    }
  }
  if (bool_field(model, "byte_fallback", "model.byte_fallback", false))
    fail("model.byte_fallback", "not supported (byte-level BPE needs no fallback)");
  bpe.index_bytes();
}

void Loader::load_added_tokens(const json& root, TokenizerData& data) const {
  const json* list = find(root, "added_tokens");
  if (!list) return;
  if (!list->is_array())
    fail("added_tokens", fmt::format("expected an array, got {}", show(*list)));
  for (size_t i = 0; i < list->size(); ++i) {
    const json& t = (*list)[i];
    const std::string field = fmt::format("added_tokens[{}]", i);
    if (!t.is_object()) fail(field, fmt::format("expected an object, got {}", show(t)));
    AddedToken token;
    token.id = id_value(require(t, "id", field + ".id"), field + ".id");
    token.content = string_field(t, "content", field + ".content");
    token.special = bool_field(t, "special", field + ".special", false);
    token.normalized = bool_field(t, "normalized", field + ".normalized", !token.special);
    token.lstrip = bool_field(t, "lstrip", field + ".lstrip", false);
    token.rstrip = bool_field(t, "rstrip", field + ".rstrip", false);
    token.single_word = bool_field(t, "single_word", field + ".single_word", false);
    data.added_tokens.push_back(std::move(token));
  }
}

void Loader::load_normalizer(const json& root, TokenizerData& data) const {
  const json* normalizer = find(root, "normalizer");
  if (!normalizer) return;
  const auto accept = [&](const json& j, const std::string& field) {
    const std::string type = type_of(j, field);
    if (type != "NFC")
      fail(field + ".type", fmt::format("normalizer '{}' is not supported (supported: NFC, "
                                        "a Sequence of NFC)",
                                        type));
    data.nfc = true;
  };
  if (type_of(*normalizer, "normalizer") == "Sequence") {
    const json& list = require(*normalizer, "normalizers", "normalizer.normalizers");
    if (!list.is_array())
      fail("normalizer.normalizers", fmt::format("expected an array, got {}", show(list)));
    for (size_t i = 0; i < list.size(); ++i)
      accept(list[i], fmt::format("normalizer.normalizers[{}]", i));
  } else {
    accept(*normalizer, "normalizer");
  }
}

void Loader::load_pre_tokenizer(const json& j, const std::string& field, TokenizerData& data,
                                bool& saw_byte_level) const {
  const std::string type = type_of(j, field);
  PreTokenizer& pre = data.pre_tokenizer;
  if (type == "Sequence") {
    const json& list = require(j, "pretokenizers", field + ".pretokenizers");
    if (!list.is_array())
      fail(field + ".pretokenizers", fmt::format("expected an array, got {}", show(list)));
    for (size_t i = 0; i < list.size(); ++i)
      load_pre_tokenizer(list[i], fmt::format("{}.pretokenizers[{}]", field, i), data,
                         saw_byte_level);
  } else if (type == "ByteLevel") {
    if (saw_byte_level) fail(field, "a second ByteLevel pre-tokenizer is not supported");
    saw_byte_level = true;
    pre.add_prefix_space = bool_field(j, "add_prefix_space", field + ".add_prefix_space", false);
    // The prefix space goes in front of the whole (normalised) text piece, which is where
    // ByteLevel puts it only when no split came before it.
    if (pre.add_prefix_space && !pre.steps.empty())
      fail(field + ".add_prefix_space", "true after a Split step is not supported");
    if (bool_field(j, "use_regex", field + ".use_regex", true))
      pre.steps.push_back(
          {std::make_shared<Regex>(kGpt2Pattern, false, field), SplitBehavior::kIsolated, false});
  } else if (type == "Split") {
    // After ByteLevel the text would already be byte-level characters; not supported.
    if (saw_byte_level) fail(field, "a Split after the ByteLevel pre-tokenizer is not supported");
    const json& pattern = require_object(j, "pattern", field + ".pattern");
    SplitStep step;
    if (find(pattern, "Regex")) {
      step.regex =
          std::make_shared<Regex>(string_field(pattern, "Regex", field + ".pattern.Regex"), false,
                                  "tokenizer '" + source_ + "': " + field + ".pattern.Regex");
    } else if (find(pattern, "String")) {
      step.regex =
          std::make_shared<Regex>(string_field(pattern, "String", field + ".pattern.String"), true,
                                  "tokenizer '" + source_ + "': " + field + ".pattern.String");
    } else {
      fail(field + ".pattern", fmt::format("expected {{\"Regex\": ...}} or {{\"String\": ...}}, "
                                           "got {}",
                                           show(pattern)));
    }
    const std::string behavior = string_field(j, "behavior", field + ".behavior");
    if (behavior == "Removed")
      step.behavior = SplitBehavior::kRemoved;
    else if (behavior == "Isolated")
      step.behavior = SplitBehavior::kIsolated;
    else if (behavior == "MergedWithPrevious")
      step.behavior = SplitBehavior::kMergedWithPrevious;
    else if (behavior == "MergedWithNext")
      step.behavior = SplitBehavior::kMergedWithNext;
    else if (behavior == "Contiguous")
      step.behavior = SplitBehavior::kContiguous;
    else
      fail(field + ".behavior",
           fmt::format("expected Removed, Isolated, MergedWithPrevious, MergedWithNext or "
                       "Contiguous, got '{}'",
                       behavior));
    step.invert = bool_field(j, "invert", field + ".invert", false);
    pre.steps.push_back(std::move(step));
  } else {
    fail(field + ".type", fmt::format("pre-tokenizer '{}' is not supported (supported: "
                                      "ByteLevel, Split, Sequence)",
                                      type));
  }
}

void Loader::load_decoder(const json& root, TokenizerData& data) const {
  const json* decoder = find(root, "decoder");
  if (!decoder) {
    data.decoder = DecoderKind::kNone;
    return;
  }
  const std::string type = type_of(*decoder, "decoder");
  if (type != "ByteLevel")
    fail("decoder.type", fmt::format("decoder '{}' is not supported (supported: ByteLevel)", type));
  data.decoder = DecoderKind::kByteLevel;
}

}  // namespace

std::shared_ptr<TokenizerData> load_tokenizer_json(std::string_view json_text,
                                                   std::string_view source) {
  const Loader loader(source);
  json root;
  try {
    root = json::parse(json_text);
  } catch (const json::parse_error& e) {
    SSM_FAIL("tokenizer '{}': invalid JSON: {}", source, e.what());
  }
  if (!root.is_object())
    loader.fail("top level", fmt::format("expected an object, got {}", show(root)));

  auto data = std::make_shared<TokenizerData>();
  data->source = std::string(source);
  loader.load_model(root, *data);
  loader.load_added_tokens(root, *data);
  loader.load_normalizer(root, *data);
  bool saw_byte_level = false;
  if (const json* pre = loader.find(root, "pre_tokenizer"))
    loader.load_pre_tokenizer(*pre, "pre_tokenizer", *data, saw_byte_level);
  if (!saw_byte_level)
    loader.fail("pre_tokenizer",
                "expected a ByteLevel pre-tokenizer (only byte-level BPE is "
                "supported)");
  loader.load_decoder(root, *data);
  // The post_processor only adds special tokens around a sequence (encode() adds none) and
  // adjusts offsets (not computed), so it is not read.

  // Tables by id. An added token's content is its spelling, also where it shares an id with
  // the model vocabulary.
  int64_t size = 0;
  for (const auto& [token, id] : data->bpe.vocab) size = std::max<int64_t>(size, int64_t(id) + 1);
  for (const AddedToken& t : data->added_tokens) size = std::max<int64_t>(size, int64_t(t.id) + 1);
  data->spelling.assign(size_t(size), std::string());
  data->has_token.assign(size_t(size), 0);
  data->special.assign(size_t(size), 0);
  for (const auto& [token, id] : data->bpe.vocab) {
    data->spelling[size_t(id)] = token;
    data->has_token[size_t(id)] = 1;
  }
  for (const AddedToken& t : data->added_tokens) {
    data->spelling[size_t(t.id)] = t.content;
    data->has_token[size_t(t.id)] = 1;
    data->special[size_t(t.id)] = t.special;
    data->added_ids.emplace(t.content, t.id);
    if (t.normalized)
      data->normalized_matcher.add(data->nfc ? normalize_nfc(t.content) : t.content, t);
    else
      data->raw_matcher.add(t.content, t);
  }
  return data;
}

}  // namespace ssm::io::tokenizer_detail
