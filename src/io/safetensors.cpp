#include "ssm/io/safetensors.h"

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "ssm/io/atomic_file.h"
#include "ssm/io/float16.h"

namespace ssm::io {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian; a big-endian host needs byte swapping here");

namespace {

using json = nlohmann::json;

constexpr uint64_t kMaxHeaderBytes = 100'000'000;  // the format's own limit
constexpr const char* kSupported = "F32, F64, I32, I64, F16, BF16";

// Bytes per element of a dtype we can read, or 0.
size_t file_dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "F16" || dtype == "BF16") return 2;
  return 0;
}

// The tensor dtype a file dtype is read into (16-bit floats widen to F32).
DType tensor_dtype(const std::string& dtype) {
  if (dtype == "F64") return DType::F64;
  if (dtype == "I32") return DType::I32;
  if (dtype == "I64") return DType::I64;
  return DType::F32;
}

const char* file_dtype_name(DType t) {
  switch (t) {
    case DType::F32:
      return "F32";
    case DType::F64:
      return "F64";
    case DType::I32:
      return "I32";
    case DType::I64:
      return "I64";
  }
  return "?";
}

struct FileCloser {
  void operator()(std::FILE* f) const { std::fclose(f); }
};
using File = std::unique_ptr<std::FILE, FileCloser>;

File open_for_reading(const std::string& path, const char* what) {
  SSM_CHECK(std::filesystem::exists(path), "{}: file '{}' does not exist", what, path);
  File f(std::fopen(path.c_str(), "rb"));
  SSM_CHECK(f != nullptr, "{}: cannot open '{}': {}", what, path, std::strerror(errno));
  return f;
}

void read_exact(std::FILE* f, uint64_t offset, void* dst, size_t n, const std::string& path,
                const std::string& what) {
  SSM_CHECK(fseeko(f, static_cast<off_t>(offset), SEEK_SET) == 0 && std::fread(dst, 1, n, f) == n,
            "read_safetensors: '{}': reading {} ({} bytes at offset {}) failed", path, what, n,
            offset);
}

SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const json& v,
                             uint64_t data_size) {
  const char* op = "read_safetensors";
  SSM_CHECK(v.is_object(), "{}: '{}': tensor '{}' expected a JSON object, got {}", op, path, name,
            v.type_name());
  for (const char* field : {"dtype", "shape", "data_offsets"})
    SSM_CHECK(v.contains(field), "{}: '{}': tensor '{}' has no '{}'", op, path, name, field);
  SafetensorsEntry e;
  e.name = name;
  SSM_CHECK(v["dtype"].is_string(), "{}: '{}': tensor '{}' dtype expected a string, got {}", op,
            path, name, v["dtype"].dump());
  e.dtype = v["dtype"].get<std::string>();
  const size_t elem = file_dtype_size(e.dtype);
  SSM_CHECK(elem != 0, "{}: '{}': tensor '{}' has dtype '{}', which is not supported ({})", op,
            path, name, e.dtype, kSupported);
  SSM_CHECK(v["shape"].is_array(), "{}: '{}': tensor '{}' shape expected an array, got {}", op,
            path, name, v["shape"].dump());
  uint64_t numel = 1;
  bool overflow = false;
  for (const json& d : v["shape"]) {
    SSM_CHECK(d.is_number_unsigned(),
              "{}: '{}': tensor '{}' shape expected non-negative integers, got {}", op, path, name,
              v["shape"].dump());
    const uint64_t n = d.get<uint64_t>();
    overflow |= n != 0 && numel > UINT64_MAX / n / elem;
    numel *= n;
    e.shape.push_back(static_cast<int64_t>(n));
  }
  const json& off = v["data_offsets"];
  SSM_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                off[1].is_number_unsigned() && off[0].get<uint64_t>() <= off[1].get<uint64_t>(),
            "{}: '{}': tensor '{}' data_offsets expected [begin, end] with 0 <= begin <= end, got "
            "{}",
            op, path, name, off.dump());
  e.begin = off[0].get<uint64_t>();
  e.end = off[1].get<uint64_t>();
  SSM_CHECK(!overflow && e.end - e.begin == numel * elem,
            "{}: '{}': tensor '{}' of shape {} and dtype {} needs {} bytes, its data_offsets [{}, "
            "{}] hold {}",
            op, path, name, shape_str(e.shape), e.dtype, numel * elem, e.begin, e.end,
            e.end - e.begin);
  SSM_CHECK(e.end <= data_size,
            "{}: '{}': tensor '{}' data_offsets [{}, {}] lie outside the data section ({} bytes; "
            "is the file truncated?)",
            op, path, name, e.begin, e.end, data_size);
  return e;
}

}  // namespace

SafetensorsHeader read_safetensors_header(const std::string& path) {
  const char* op = "read_safetensors";
  File f = open_for_reading(path, op);
  const uint64_t file_size = std::filesystem::file_size(path);
  SSM_CHECK(file_size >= 8, "{}: '{}' is truncated: {} bytes, less than the 8-byte header length",
            op, path, file_size);
  uint64_t header_len = 0;
  read_exact(f.get(), 0, &header_len, 8, path, "the header length");
  SSM_CHECK(header_len <= file_size - 8,
            "{}: '{}' is truncated or not safetensors: the header length {} reaches beyond the "
            "end of the file ({} bytes)",
            op, path, header_len, file_size);
  SSM_CHECK(header_len <= kMaxHeaderBytes, "{}: '{}': header length {} exceeds the {} byte limit",
            op, path, header_len, kMaxHeaderBytes);
  std::string text(header_len, '\0');
  read_exact(f.get(), 8, text.data(), header_len, path, "the header");
  json header;
  try {
    header = json::parse(text);
  } catch (const json::exception& e) {
    SSM_FAIL("{}: '{}': the header is not valid JSON: {}", op, path, e.what());
  }
  SSM_CHECK(header.is_object(), "{}: '{}': the header expected a JSON object, got {}", op, path,
            header.type_name());
  SafetensorsHeader out;
  out.data_start = 8 + header_len;
  const uint64_t data_size = file_size - out.data_start;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      SSM_CHECK(value.is_object(), "{}: '{}': __metadata__ expected a JSON object, got {}", op,
                path, value.type_name());
      for (const auto& [k, v] : value.items()) {
        SSM_CHECK(v.is_string(), "{}: '{}': __metadata__ entry '{}' expected a string, got {}", op,
                  path, k, v.dump());
        out.metadata[k] = v.get<std::string>();
      }
      continue;
    }
    out.tensors.push_back(parse_entry(path, name, value, data_size));
  }
  // Tensors must not share bytes (the format forbids it; a writer bug or corruption otherwise).
  std::vector<const SafetensorsEntry*> by_offset;
  for (const auto& e : out.tensors)
    if (e.end > e.begin) by_offset.push_back(&e);
  std::sort(by_offset.begin(), by_offset.end(),
            [](auto* a, auto* b) { return a->begin < b->begin; });
  for (size_t i = 1; i < by_offset.size(); ++i)
    SSM_CHECK(by_offset[i]->begin >= by_offset[i - 1]->end,
              "{}: '{}': tensors '{}' [{}, {}] and '{}' [{}, {}] overlap", op, path,
              by_offset[i - 1]->name, by_offset[i - 1]->begin, by_offset[i - 1]->end,
              by_offset[i]->name, by_offset[i]->begin, by_offset[i]->end);
  return out;
}

SafetensorsFile read_safetensors(const std::string& path) {
  const SafetensorsHeader header = read_safetensors_header(path);
  File f = open_for_reading(path, "read_safetensors");
  SafetensorsFile out;
  out.metadata = header.metadata;
  for (const SafetensorsEntry& e : header.tensors) {
    Tensor t = Tensor::empty(e.shape, tensor_dtype(e.dtype));
    const size_t bytes = e.end - e.begin;
    const std::string what = fmt::format("tensor '{}'", e.name);
    if (e.dtype == "F16" || e.dtype == "BF16") {
      std::vector<uint16_t> raw(bytes / 2);
      read_exact(f.get(), header.data_start + e.begin, raw.data(), bytes, path, what);
      float* dst = t.data<float>();
      const bool bf16 = e.dtype == "BF16";
      for (size_t i = 0; i < raw.size(); ++i)
        dst[i] = bf16 ? bf16_to_float(raw[i]) : f16_to_float(raw[i]);
    } else if (bytes > 0) {
      read_exact(f.get(), header.data_start + e.begin, t.raw_data(), bytes, path, what);
    }
    out.tensors.emplace(e.name, std::move(t));
  }
  return out;
}

void write_safetensors(const std::string& path, const std::map<std::string, Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  const char* op = "write_safetensors";
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  std::vector<Tensor> contiguous;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    SSM_CHECK(!name.empty() && name != "__metadata__",
              "{}: '{}': tensor name '{}' is reserved or empty", op, path, name);
    SSM_CHECK(t.defined(), "{}: '{}': tensor '{}' is undefined", op, path, name);
    SSM_CHECK(t.device() == Device::CPU, "{}: '{}': tensor '{}' expected on cpu, got {}", op, path,
              name, device_name(t.device()));
    const uint64_t bytes = static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype());
    header[name] = {{"dtype", file_dtype_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    contiguous.push_back(t.contiguous());
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // data section 8-byte aligned
  const uint64_t header_len = text.size();
  AtomicFile file(path);
  file.write(&header_len, 8);
  file.write(text.data(), text.size());
  for (const Tensor& t : contiguous)
    file.write(t.raw_data(), static_cast<size_t>(t.numel()) * dtype_size(t.dtype()));
  file.commit();
}

}  // namespace ssm::io
