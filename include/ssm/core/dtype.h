#pragma once
// Element types and devices, and the dispatch macro that instantiates a kernel per float type.
#include <cstddef>
#include <cstdint>

#include "ssm/core/error.h"

namespace ssm {

enum class DType { F32, F64, I32, I64 };
enum class Device { CPU, CUDA };

size_t dtype_size(DType t);
const char* dtype_name(DType t);
const char* device_name(Device d);
inline bool is_floating(DType t) { return t == DType::F32 || t == DType::F64; }

template <typename T> struct dtype_of;
template <> struct dtype_of<float> { static constexpr DType value = DType::F32; };
template <> struct dtype_of<double> { static constexpr DType value = DType::F64; };
template <> struct dtype_of<int32_t> { static constexpr DType value = DType::I32; };
template <> struct dtype_of<int64_t> { static constexpr DType value = DType::I64; };

}  // namespace ssm

// SSM_DISPATCH_FLOAT(dtype, "op_name", { body using scalar_t })
#define SSM_DISPATCH_FLOAT(DT, OPNAME, ...)                                                    \
  [&] {                                                                                        \
    switch (DT) {                                                                              \
      case ::ssm::DType::F32: {                                                                \
        using scalar_t = float;                                                                \
        return __VA_ARGS__();                                                                  \
      }                                                                                        \
      case ::ssm::DType::F64: {                                                                \
        using scalar_t = double;                                                               \
        return __VA_ARGS__();                                                                  \
      }                                                                                        \
      default:                                                                                 \
        SSM_FAIL("{}: expected a float32 or float64 tensor, got {}", OPNAME, ::ssm::dtype_name(DT)); \
    }                                                                                          \
  }()

// SSM_DISPATCH_INDEX(dtype, "op_name", { body using index_t })
#define SSM_DISPATCH_INDEX(DT, OPNAME, ...)                                                    \
  [&] {                                                                                        \
    switch (DT) {                                                                              \
      case ::ssm::DType::I32: {                                                                \
        using index_t = int32_t;                                                               \
        return __VA_ARGS__();                                                                  \
      }                                                                                        \
      case ::ssm::DType::I64: {                                                                \
        using index_t = int64_t;                                                               \
        return __VA_ARGS__();                                                                  \
      }                                                                                        \
      default:                                                                                 \
        SSM_FAIL("{}: expected an int32 or int64 index tensor, got {}", OPNAME, ::ssm::dtype_name(DT)); \
    }                                                                                          \
  }()
