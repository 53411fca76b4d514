#pragma once
// The idx format of MNIST and Fashion-MNIST: a big-endian header (magic 0x0000TTNN with the
// element type TT and the rank NN, then NN int32 dimension sizes) followed by the elements,
// big-endian, row-major. Files may be gzipped.
#include <cstdint>
#include <string>
#include <vector>

#include "ssm/core/tensor.h"

namespace ssm::data {

enum class IdxType : uint8_t {
  U8 = 0x08,
  I8 = 0x09,
  I16 = 0x0B,
  I32 = 0x0C,
  F32 = 0x0D,
  F64 = 0x0E
};

const char* idx_type_name(IdxType t);
size_t idx_type_size(IdxType t);

struct IdxArray {
  IdxType type = IdxType::U8;
  Shape shape;
  std::vector<uint8_t> bytes;  // the elements, converted to this machine's byte order

  int64_t numel() const { return shape_numel(shape); }
  double value(int64_t i) const;        // element i (row-major) as a double
  Tensor to_tensor(DType dtype) const;  // a copy, converted to dtype
};

// Reads a plain or gzipped idx file (zlib detects which). Errors name the file and say what
// is wrong: missing file, bad magic number, truncated header or data, or a header whose shape
// disagrees with the file size.
IdxArray read_idx(const std::string& path);

// Writes `array` as an idx file, gzipped when `gzip` is true.
void write_idx(const std::string& path, const IdxArray& array, bool gzip = false);

}  // namespace ssm::data
