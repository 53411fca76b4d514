#pragma once
// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"key": "value", ...}}
// then the data section; offsets are relative to its start, tensors are row-major,
// little-endian.
//
// Read: F32, F64, I32, I64 as they are; F16 and BF16 converted to F32. Write: F32, F64, I32,
// I64. Errors name the file (and the tensor) and say what is wrong.
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ssm/core/tensor.h"

namespace ssm::io {

struct SafetensorsEntry {
  std::string name;
  std::string dtype;  // as in the file: "F32", "BF16", ...
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte offsets in the data section
};

struct SafetensorsHeader {
  std::vector<SafetensorsEntry> tensors;  // in file order
  std::map<std::string, std::string> metadata;
  uint64_t data_start = 0;  // byte offset of the data section in the file (8 + N)
};

struct SafetensorsFile {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;
};

// Parses and validates the header only (cheap, for inspecting large files).
SafetensorsHeader read_safetensors_header(const std::string& path);
SafetensorsFile read_safetensors(const std::string& path);

// Writes atomically (see AtomicFile). Tensors are stored in name order; the header is padded
// with spaces so the data section starts at a multiple of 8 bytes.
void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace ssm::io
