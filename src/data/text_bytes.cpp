#include "ssm/data/text_bytes.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "ssm/core/error.h"

namespace ssm::data {

std::shared_ptr<const std::string> read_text_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  SSM_CHECK(in.good(), "text: cannot open '{}'", path);
  std::ostringstream s;
  s << in.rdbuf();
  auto bytes = std::make_shared<std::string>(s.str());
  SSM_CHECK(!bytes->empty(), "text: '{}' is empty", path);
  return bytes;
}

ByteWindowDataset::ByteWindowDataset(std::shared_ptr<const std::string> bytes, int64_t begin,
                                     int64_t end, int64_t context)
    : bytes_(std::move(bytes)), begin_(begin), context_(context) {
  SSM_CHECK(context >= 1, "ByteWindowDataset: context must be ≥ 1, got {}", context);
  SSM_CHECK(begin >= 0 && begin <= end && end <= static_cast<int64_t>(bytes_->size()),
            "ByteWindowDataset: range [{}, {}) outside {} bytes", begin, end, bytes_->size());
  count_ = end - begin > 0 ? (end - begin - 1) / context : 0;
}

Example ByteWindowDataset::get(int64_t index) const {
  SSM_CHECK(index >= 0 && index < count_, "ByteWindowDataset: index {} outside [0, {})", index,
            count_);
  Tensor input = Tensor::empty({context_}, DType::I64),
         target = Tensor::empty({context_}, DType::I64);
  int64_t* in = input.data<int64_t>();
  int64_t* tg = target.data<int64_t>();
  const auto* p =
      reinterpret_cast<const unsigned char*>(bytes_->data()) + begin_ + index * context_;
  for (int64_t i = 0; i < context_; ++i) {
    in[i] = p[i];
    tg[i] = p[i + 1];
  }
  return {input, target};
}

TextSplits split_text(std::shared_ptr<const std::string> bytes, int64_t context,
                      double val_fraction, double test_fraction, const std::string& source) {
  SSM_CHECK(val_fraction > 0 && test_fraction >= 0 && val_fraction + test_fraction < 1,
            "text: val_fraction ({}) must be > 0, test_fraction ({}) ≥ 0, and their sum < 1",
            val_fraction, test_fraction);
  const auto n = static_cast<int64_t>(bytes->size());
  const auto n_test = static_cast<int64_t>(std::floor(test_fraction * static_cast<double>(n)));
  const auto n_val = static_cast<int64_t>(std::floor(val_fraction * static_cast<double>(n)));
  const int64_t n_train = n - n_val - n_test;
  auto check = [&](int64_t size, const char* split) {
    SSM_CHECK(size >= context + 1,
              "text: '{}' ({} bytes) leaves {} bytes for the {} split, fewer than one window of "
              "seq_len {} + 1",
              source, n, size, split, context);
  };
  check(n_train, "train");
  check(n_val, "validation");
  TextSplits s;
  s.train = std::make_shared<ByteWindowDataset>(bytes, 0, n_train, context);
  s.val = std::make_shared<ByteWindowDataset>(bytes, n_train, n_train + n_val, context);
  if (n_test > 0) {
    check(n_test, "test");
    s.test = std::make_shared<ByteWindowDataset>(bytes, n_train + n_val, n, context);
  } else {
    s.test = s.val;
  }
  return s;
}

}  // namespace ssm::data
