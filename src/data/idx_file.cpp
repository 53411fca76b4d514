#include "ssm/data/idx_file.h"

#include <zlib.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

namespace ssm::data {

namespace {

bool valid_type(uint8_t code) {
  switch (code) {
    case 0x08:
    case 0x09:
    case 0x0B:
    case 0x0C:
    case 0x0D:
    case 0x0E:
      return true;
    default:
      return false;
  }
}

uint32_t read_be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | uint32_t{p[3]};
}

// Reverses each element's bytes in place (idx is big-endian; this machine is little-endian).
void swap_elements(std::vector<uint8_t>& bytes, size_t elem) {
  if (elem == 1 || std::endian::native == std::endian::big) return;
  for (size_t i = 0; i + elem <= bytes.size(); i += elem) std::reverse(&bytes[i], &bytes[i + elem]);
}

// The whole (decompressed) content of a plain or gzipped file.
std::vector<uint8_t> read_all(const std::string& path) {
  SSM_CHECK(std::filesystem::exists(path), "read_idx: file '{}' does not exist", path);
  gzFile f = gzopen(path.c_str(), "rb");
  SSM_CHECK(f != nullptr, "read_idx: cannot open '{}': {}", path, std::strerror(errno));
  gzbuffer(f, 1 << 20);
  std::vector<uint8_t> out;
  const size_t chunk = 1 << 22;
  for (;;) {
    const size_t old = out.size();
    out.resize(old + chunk);
    const int got = gzread(f, out.data() + old, static_cast<unsigned>(chunk));
    if (got < 0) {
      int code = 0;
      const std::string msg = gzerror(f, &code);
      gzclose(f);
      SSM_FAIL("read_idx: '{}' is not a readable idx file (corrupt gzip data: {})", path, msg);
    }
    out.resize(old + static_cast<size_t>(got));
    if (static_cast<size_t>(got) < chunk) break;
  }
  // A gzip stream cut short reads as a short file plus an error flag; report it as corruption.
  int code = 0;
  const std::string msg = gzerror(f, &code);
  gzclose(f);
  SSM_CHECK(code == Z_OK || code == Z_STREAM_END,
            "read_idx: '{}' is truncated or corrupt (gzip: {})", path, msg);
  return out;
}

}  // namespace

const char* idx_type_name(IdxType t) {
  switch (t) {
    case IdxType::U8:
      return "uint8";
    case IdxType::I8:
      return "int8";
    case IdxType::I16:
      return "int16";
    case IdxType::I32:
      return "int32";
    case IdxType::F32:
      return "float32";
    case IdxType::F64:
      return "float64";
  }
  return "?";
}

size_t idx_type_size(IdxType t) {
  switch (t) {
    case IdxType::U8:
    case IdxType::I8:
      return 1;
    case IdxType::I16:
      return 2;
    case IdxType::I32:
    case IdxType::F32:
      return 4;
    case IdxType::F64:
      return 8;
  }
  return 0;
}

double IdxArray::value(int64_t i) const {
  SSM_CHECK(i >= 0 && i < numel(), "IdxArray::value: index {} outside [0, {})", i, numel());
  const uint8_t* p = bytes.data() + i * idx_type_size(type);
  switch (type) {
    case IdxType::U8:
      return *p;
    case IdxType::I8:
      return static_cast<int8_t>(*p);
    case IdxType::I16: {
      int16_t v;
      std::memcpy(&v, p, 2);
      return v;
    }
    case IdxType::I32: {
      int32_t v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case IdxType::F32: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case IdxType::F64: {
      double v;
      std::memcpy(&v, p, 8);
      return v;
    }
  }
  return 0;
}

Tensor IdxArray::to_tensor(DType dtype) const {
  Tensor t = Tensor::empty(shape, dtype);
  const int64_t n = numel();
  auto fill = [&](auto* out) {
    using T = std::remove_pointer_t<decltype(out)>;
    if (type == IdxType::U8) {  // the common case, without the per-element switch
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(bytes[i]);
    } else {
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(value(i));
    }
  };
  switch (dtype) {
    case DType::F32:
      fill(t.data<float>());
      break;
    case DType::F64:
      fill(t.data<double>());
      break;
    case DType::I32:
      fill(t.data<int32_t>());
      break;
    case DType::I64:
      fill(t.data<int64_t>());
      break;
  }
  return t;
}

IdxArray read_idx(const std::string& path) {
  std::vector<uint8_t> raw = read_all(path);
  SSM_CHECK(raw.size() >= 4,
            "read_idx: '{}' is truncated: {} bytes, too short for the magic number", path,
            raw.size());
  const uint32_t magic = read_be32(raw.data());
  const uint8_t type_code = raw[2], rank = raw[3];
  SSM_CHECK(raw[0] == 0 && raw[1] == 0 && valid_type(type_code) && rank >= 1,
            "read_idx: '{}' has a bad magic number 0x{:08X} (expected 0x0000TTNN with element type "
            "TT in 08 09 0B 0C 0D 0E and rank NN >= 1); is it an idx file?",
            path, magic);
  IdxArray out;
  out.type = static_cast<IdxType>(type_code);
  const size_t header = 4 + 4 * size_t{rank};
  SSM_CHECK(raw.size() >= header,
            "read_idx: '{}' is truncated: the header needs {} bytes for rank {}, the file has {}",
            path, header, rank, raw.size());
  for (size_t d = 0; d < rank; ++d) {
    const uint32_t n = read_be32(raw.data() + 4 + 4 * d);
    SSM_CHECK(n <= 0x7fffffffu, "read_idx: '{}' has a negative size in dimension {}", path, d);
    out.shape.push_back(n);
  }
  const size_t elem = idx_type_size(out.type);
  const size_t expected = static_cast<size_t>(out.numel()) * elem;
  const size_t actual = raw.size() - header;
  SSM_CHECK(
      actual >= expected,
      "read_idx: '{}' is truncated: header shape {} of {} needs {} data bytes, the file has {}",
      path, shape_str(out.shape), idx_type_name(out.type), expected, actual);
  SSM_CHECK(actual == expected,
            "read_idx: '{}': the header (shape {} of {} = {} data bytes) disagrees with the file "
            "size ({} data bytes)",
            path, shape_str(out.shape), idx_type_name(out.type), expected, actual);
  out.bytes.assign(raw.begin() + static_cast<std::ptrdiff_t>(header), raw.end());
  swap_elements(out.bytes, elem);
  return out;
}

void write_idx(const std::string& path, const IdxArray& array, bool gzip) {
  const size_t elem = idx_type_size(array.type);
  SSM_CHECK(array.bytes.size() == static_cast<size_t>(array.numel()) * elem,
            "write_idx: '{}': {} bytes do not fill shape {} of {}", path, array.bytes.size(),
            shape_str(array.shape), idx_type_name(array.type));
  SSM_CHECK(!array.shape.empty() && array.shape.size() <= 255,
            "write_idx: '{}': rank expected in [1, 255], got {}", path, array.shape.size());
  std::vector<uint8_t> out{0, 0, static_cast<uint8_t>(array.type),
                           static_cast<uint8_t>(array.shape.size())};
  for (int64_t d : array.shape) {
    const auto n = static_cast<uint32_t>(d);
    for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(n >> s));
  }
  std::vector<uint8_t> data = array.bytes;
  swap_elements(data, elem);
  out.insert(out.end(), data.begin(), data.end());
  if (gzip) {
    gzFile f = gzopen(path.c_str(), "wb");
    SSM_CHECK(f != nullptr, "write_idx: cannot create '{}': {}", path, std::strerror(errno));
    const int wrote = gzwrite(f, out.data(), static_cast<unsigned>(out.size()));
    const int closed = gzclose(f);
    SSM_CHECK(wrote == static_cast<int>(out.size()) && closed == Z_OK,
              "write_idx: writing '{}' failed", path);
  } else {
    FILE* f = std::fopen(path.c_str(), "wb");
    SSM_CHECK(f != nullptr, "write_idx: cannot create '{}': {}", path, std::strerror(errno));
    const size_t wrote = std::fwrite(out.data(), 1, out.size(), f);
    const int closed = std::fclose(f);
    SSM_CHECK(wrote == out.size() && closed == 0, "write_idx: writing '{}' failed", path);
  }
}

}  // namespace ssm::data
