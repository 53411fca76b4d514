#include "ssm/data/listops_dataset.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include "ssm/core/error.h"

namespace ssm::data {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kHeader = "Source\tTarget";

// Writes `text` to path.tmp, then renames it over `path`.
void write_text_atomically(const std::string& path, const std::string& text, const char* what) {
  const std::string tmp = path + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "wb");
  SSM_CHECK(f != nullptr, "{}: cannot create '{}': {}", what, tmp, std::strerror(errno));
  const size_t wrote = std::fwrite(text.data(), 1, text.size(), f);
  const bool ok = wrote == text.size() && std::fflush(f) == 0;
  const int err = errno;
  const bool closed = std::fclose(f) == 0;
  if (!ok || !closed) {
    std::remove(tmp.c_str());
    SSM_FAIL("{}: writing '{}' failed: {}", what, tmp, std::strerror(err));
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  SSM_CHECK(!ec, "{}: renaming '{}' to '{}' failed: {}", what, tmp, path, ec.message());
}

std::string read_text(const std::string& path, const char* what) {
  FILE* f = std::fopen(path.c_str(), "rb");
  SSM_CHECK(f != nullptr, "{}: cannot open '{}': {}", what, path, std::strerror(errno));
  std::string text;
  char buf[1 << 16];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
  const bool failed = std::ferror(f);
  std::fclose(f);
  SSM_CHECK(!failed, "{}: reading '{}' failed", what, path);
  return text;
}

// A stable 64-bit digest of the options, to name the cache directory.
std::string options_key(const ListOpsOptions& o) {
  return fmt::format(
      "max_depth={} max_args={} operator_prob={} min_length={} max_length={} num_train={} "
      "num_val={} num_test={} seed={}",
      o.max_depth, o.max_args, o.operator_prob, o.min_length, o.max_length, o.num_train, o.num_val,
      o.num_test, o.seed);
}

uint64_t fnv1a(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

}  // namespace

void write_listops_tsv(const std::string& path, const std::vector<ListOpsExample>& examples) {
  // Each token's text followed by a space, looked up per token: ~10^8 tokens per data set.
  std::string with_space[kListOpsVocabSize];
  for (int t = 0; t < kListOpsVocabSize; ++t)
    with_space[t] = std::string(listops_token_text(static_cast<uint8_t>(t))) + ' ';
  size_t bytes = kHeader.size() + 1;
  for (const auto& e : examples) bytes += e.tokens.size() * 3 + 4;
  std::string text;
  text.reserve(bytes);
  text += kHeader;
  text += '\n';
  for (const auto& e : examples) {
    SSM_CHECK(e.target >= 0 && e.target <= 9 && !e.tokens.empty(),
              "write_listops_tsv: '{}': example {} expected tokens and a target in 0-9, got {} "
              "tokens and target {}",
              path, &e - examples.data(), e.tokens.size(), e.target);
    for (uint8_t t : e.tokens) {
      SSM_CHECK(t < kListOpsVocabSize && t != kListOpsPad,
                "write_listops_tsv: '{}': example {} holds token id {}", path, &e - examples.data(),
                int{t});
      text += with_space[t];
    }
    text.back() = '\t';
    text += static_cast<char>('0' + e.target);
    text += '\n';
  }
  write_text_atomically(path, text, "write_listops_tsv");
}

std::vector<ListOpsExample> read_listops_tsv(const std::string& path) {
  const std::string text = read_text(path, "read_listops_tsv");
  std::vector<ListOpsExample> out;
  size_t pos = 0;
  int64_t line_no = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view line(text.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    if (line_no == 1 && line == kHeader) continue;
    const size_t tab = line.rfind('\t');
    SSM_CHECK(tab != std::string_view::npos,
              "read_listops_tsv: '{}' line {}: expected 'Source<TAB>Target'", path, line_no);
    const std::string_view target = line.substr(tab + 1);
    SSM_CHECK(target.size() == 1 && target[0] >= '0' && target[0] <= '9',
              "read_listops_tsv: '{}' line {}: target expected a digit 0-9, got '{}'", path,
              line_no, target);
    ListOpsExample e;
    try {
      e.tokens = listops_from_text(line.substr(0, tab));
    } catch (const Error& err) {
      SSM_FAIL("read_listops_tsv: '{}' line {}: {}", path, line_no, err.what());
    }
    SSM_CHECK(!e.tokens.empty(), "read_listops_tsv: '{}' line {}: empty expression", path, line_no);
    e.target = target[0] - '0';
    out.push_back(std::move(e));
  }
  return out;
}

ListOpsFiles ensure_listops_files(const std::string& cache_dir, const ListOpsOptions& options) {
  const std::string key = options_key(options);
  const fs::path dir = fs::path(cache_dir) / fmt::format("listops-{:016x}", fnv1a(key));
  ListOpsFiles files{(dir / "train.tsv").string(), (dir / "val.tsv").string(),
                     (dir / "test.tsv").string()};
  // options.txt is written last: its presence (with matching content) marks a complete cache.
  const fs::path stamp = dir / "options.txt";
  if (fs::exists(stamp) && read_text(stamp.string(), "ensure_listops_files") == key + "\n" &&
      fs::exists(files.train) && fs::exists(files.val) && fs::exists(files.test))
    return files;
  std::error_code ec;
  fs::create_directories(dir, ec);
  SSM_CHECK(!ec, "ensure_listops_files: cannot create '{}': {}", dir.string(), ec.message());
  const ListOpsSplits splits = generate_listops(options);
  write_listops_tsv(files.train, splits.train);
  write_listops_tsv(files.val, splits.val);
  write_listops_tsv(files.test, splits.test);
  write_text_atomically(stamp.string(), key + "\n", "ensure_listops_files");
  return files;
}

ListOpsDataset::ListOpsDataset(std::vector<ListOpsExample> examples)
    : examples_(std::move(examples)) {
  for (const auto& e : examples_)
    max_length_ = std::max<int64_t>(max_length_, static_cast<int64_t>(e.tokens.size()));
}

std::shared_ptr<ListOpsDataset> ListOpsDataset::from_tsv(const std::string& path) {
  return std::make_shared<ListOpsDataset>(read_listops_tsv(path));
}

Example ListOpsDataset::get(int64_t index) const {
  SSM_CHECK(index >= 0 && index < size(), "ListOpsDataset::get: index {} outside [0, {})", index,
            size());
  const ListOpsExample& e = examples_[static_cast<size_t>(index)];
  Tensor input = Tensor::empty({static_cast<int64_t>(e.tokens.size())}, DType::I64);
  int64_t* p = input.data<int64_t>();
  for (size_t i = 0; i < e.tokens.size(); ++i) p[i] = e.tokens[i];
  return Example{input, Tensor::full({}, static_cast<double>(e.target), DType::I64)};
}

}  // namespace ssm::data
