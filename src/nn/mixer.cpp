#include "ssm/nn/mixer.h"

namespace ssm::nn {

Tensor& MixerCache::at(const std::string& name) {
  auto it = tensors.find(name);
  SSM_CHECK(it != tensors.end(), "MixerCache: no entry '{}'", name);
  return it->second;
}

const Tensor& MixerCache::at(const std::string& name) const {
  auto it = tensors.find(name);
  SSM_CHECK(it != tensors.end(), "MixerCache: no entry '{}'", name);
  return it->second;
}

const Tensor& MixerCache::derived_value(const std::string& name,
                                        const std::function<Tensor()>& make) {
  auto it = derived.find(name);
  if (it == derived.end()) it = derived.emplace(name, make()).first;
  return it->second;
}

MixerCache MixerCache::clone() const {
  MixerCache copy;
  copy.derived = derived;
  for (const auto& [name, t] : tensors) copy.tensors[name] = t.defined() ? t.detach().clone() : t;
  return copy;
}

Tensor& checked_cache_entry(MixerCache& cache, const std::string& name, const Shape& shape,
                            DType dtype, const char* op) {
  auto it = cache.tensors.find(name);
  const bool defined = it != cache.tensors.end() && it->second.defined();
  SSM_CHECK(defined && it->second.shape() == shape,
            "{}: argument 'cache.{}' expected shape {}, got {}", op, name, shape_str(shape),
            defined ? shape_str(it->second.shape()) : "undefined");
  SSM_CHECK(it->second.dtype() == dtype, "{}: argument 'cache.{}' expected dtype {}, got {}", op,
            name, dtype_name(dtype), dtype_name(it->second.dtype()));
  SSM_CHECK(it->second.is_contiguous(),
            "{}: argument 'cache.{}' expected a contiguous tensor (it is updated in place)", op,
            name);
  return it->second;
}

}  // namespace ssm::nn
