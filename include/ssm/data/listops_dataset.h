#pragma once
// ListOps examples on disk (TSV) and as a Dataset of token-id sequences.
#include <memory>
#include <string>
#include <vector>

#include "ssm/data/dataset.h"
#include "ssm/data/listops.h"

namespace ssm::data {

// TSV with a header line `Source<TAB>Target`, then one `[MAX 2 9 ]<TAB>9` line per example.
// The file is written to `path.tmp` and renamed, so it is either complete or absent.
void write_listops_tsv(const std::string& path, const std::vector<ListOpsExample>& examples);
// Reads such a file (also the LRA files, whose parentheses are skipped). Errors name the
// file and line.
std::vector<ListOpsExample> read_listops_tsv(const std::string& path);

struct ListOpsFiles {
  std::string train, val, test;
};

// Generates the three splits once into a subdirectory of `cache_dir` named after the options
// and returns their paths; later calls with the same options reuse the files.
ListOpsFiles ensure_listops_files(const std::string& cache_dir, const ListOpsOptions& options = {});

// Examples as input (L,) int64 token ids and target () int64. Batch them with pad_examples
// (pad id 0), which pads each batch to its longest sequence and records the lengths.
class ListOpsDataset : public Dataset {
 public:
  explicit ListOpsDataset(std::vector<ListOpsExample> examples);
  static std::shared_ptr<ListOpsDataset> from_tsv(const std::string& path);

  int64_t size() const override { return static_cast<int64_t>(examples_.size()); }
  Example get(int64_t index) const override;
  int64_t max_length() const { return max_length_; }
  const std::vector<ListOpsExample>& examples() const { return examples_; }

 private:
  std::vector<ListOpsExample> examples_;
  int64_t max_length_ = 0;
};

}  // namespace ssm::data
