#include "ssm/data/listops_dataset.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "ssm/core/error.h"

namespace ssm::data {

namespace fs = std::filesystem;

namespace {

constexpr std::string_view kHeader = "Source\tTarget";

// Writes a file as path.tmp and renames it over `path` on commit(), so the file is either
// complete or absent; without commit() (an error on the way) the temporary is removed.
class TextFileWriter {
 public:
  TextFileWriter(const std::string& path, const char* what)
      : path_(path), tmp_(path + ".tmp"), what_(what) {
    f_ = std::fopen(tmp_.c_str(), "wb");
    SSM_CHECK(f_ != nullptr, "{}: cannot create '{}': {}", what_, tmp_, std::strerror(errno));
  }
  ~TextFileWriter() {
    if (f_) std::fclose(f_);
    if (!committed_) std::remove(tmp_.c_str());
  }
  TextFileWriter(const TextFileWriter&) = delete;
  TextFileWriter& operator=(const TextFileWriter&) = delete;

  void write(std::string_view text) {
    SSM_CHECK(std::fwrite(text.data(), 1, text.size(), f_) == text.size(),
              "{}: writing '{}' failed: {}", what_, tmp_, std::strerror(errno));
  }
  void commit() {
    const bool flushed = std::fflush(f_) == 0;
    const int err = errno;
    const bool closed = std::fclose(f_) == 0;
    f_ = nullptr;
    SSM_CHECK(flushed && closed, "{}: writing '{}' failed: {}", what_, tmp_, std::strerror(err));
    std::error_code ec;
    fs::rename(tmp_, path_, ec);
    SSM_CHECK(!ec, "{}: renaming '{}' to '{}' failed: {}", what_, tmp_, path_, ec.message());
    committed_ = true;
  }

 private:
  std::string path_, tmp_;
  const char* what_;
  FILE* f_ = nullptr;
  bool committed_ = false;
};

std::string read_small_text(const std::string& path, const char* what) {
  FILE* f = std::fopen(path.c_str(), "rb");
  SSM_CHECK(f != nullptr, "{}: cannot open '{}': {}", what, path, std::strerror(errno));
  std::string text;
  char buf[4096];
  size_t got;
  while ((got = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, got);
  std::fclose(f);
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
  TextFileWriter out(path, "write_listops_tsv");
  std::string text(kHeader);
  text += '\n';
  constexpr size_t kFlushBytes = 1 << 22;  // stream in pieces: the train split is ~240 MB
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
    if (text.size() >= kFlushBytes) {
      out.write(text);
      text.clear();
    }
  }
  out.write(text);
  out.commit();
}

namespace {

// Parses one non-empty line `Source<TAB>Target` into an example.
ListOpsExample parse_tsv_line(std::string_view line, const std::string& path, int64_t line_no) {
  const size_t tab = line.rfind('\t');
  SSM_CHECK(tab != std::string_view::npos,
            "read_listops_tsv: '{}' line {}: expected 'Source<TAB>Target'", path, line_no);
  const std::string_view target = line.substr(tab + 1);
  SSM_CHECK(target.size() == 1 && target[0] >= '0' && target[0] <= '9',
            "read_listops_tsv: '{}' line {}: target expected a digit 0-9, got '{}'", path, line_no,
            target);
  ListOpsExample e;
  try {
    e.tokens = listops_from_text(line.substr(0, tab));
  } catch (const Error& err) {
    SSM_FAIL("read_listops_tsv: '{}' line {}: {}", path, line_no, err.what());
  }
  SSM_CHECK(!e.tokens.empty(), "read_listops_tsv: '{}' line {}: empty expression", path, line_no);
  e.target = target[0] - '0';
  return e;
}

}  // namespace

std::vector<ListOpsExample> read_listops_tsv(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  SSM_CHECK(f != nullptr, "read_listops_tsv: cannot open '{}': {}", path, std::strerror(errno));
  std::unique_ptr<FILE, int (*)(FILE*)> closer(f, std::fclose);
  std::vector<ListOpsExample> out;
  // Read in pieces and parse every complete line, keeping the unfinished tail for the next.
  std::string buffer;
  std::vector<char> chunk(1 << 22);
  int64_t line_no = 0;
  bool at_end = false;
  while (!at_end) {
    const size_t got = std::fread(chunk.data(), 1, chunk.size(), f);
    SSM_CHECK(!std::ferror(f), "read_listops_tsv: reading '{}' failed", path);
    buffer.append(chunk.data(), got);
    at_end = got < chunk.size();
    if (at_end && !buffer.empty() && buffer.back() != '\n') buffer += '\n';
    size_t pos = 0;
    for (size_t nl; (nl = buffer.find('\n', pos)) != std::string::npos; pos = nl + 1) {
      std::string_view line(buffer.data() + pos, nl - pos);
      ++line_no;
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
      if (line.empty() || (line_no == 1 && line == kHeader)) continue;
      out.push_back(parse_tsv_line(line, path, line_no));
    }
    buffer.erase(0, pos);
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
  if (fs::exists(stamp) && read_small_text(stamp.string(), "ensure_listops_files") == key + "\n" &&
      fs::exists(files.train) && fs::exists(files.val) && fs::exists(files.test))
    return files;
  std::error_code ec;
  fs::create_directories(dir, ec);
  SSM_CHECK(!ec, "ensure_listops_files: cannot create '{}': {}", dir.string(), ec.message());
  const ListOpsSplits splits = generate_listops(options);
  write_listops_tsv(files.train, splits.train);
  write_listops_tsv(files.val, splits.val);
  write_listops_tsv(files.test, splits.test);
  TextFileWriter stamp_file(stamp.string(), "ensure_listops_files");
  stamp_file.write(key + "\n");
  stamp_file.commit();
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
