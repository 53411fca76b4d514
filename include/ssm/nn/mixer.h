#pragma once
// The interface every sequence mixer of the language model implements (Mamba-1, Mamba-2,
// Mamba-3, …), so that the LM, generation and state files work with any of them:
//   forward(x)            parallel mode, differentiable
//   prefill(x, cache)     the same output, and the recurrent state after the last position
//   init_cache(batch)     the state before the first token
//   step(x_t, cache)      one token in recurrent mode, advancing the state in place
// A mixer's recurrent state is a set of named tensors (MixerCache), because the kinds differ:
// Mamba-1/2 keep "conv_state" and "ssm_state"; Mamba-3 has no conv but keeps e.g. the
// previous B·x term and a cumulative rotary angle. Names are the mixer's to choose; a state
// file (ssm/io/state_file.h) stores them as they are.
#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "ssm/nn/module.h"

namespace ssm::nn {

struct MixerCache {
  std::map<std::string, Tensor> tensors;  // by name, each with the batch as its first dim
  // Values a mixer derives from its weights once per sequence instead of once per token
  // (Mamba-1's A = −exp(A_log)). Not part of the state: state files leave them out and
  // prefill() drops them. A cache belongs to the weights it was started under; after the
  // weights change, start a new one (init_cache or prefill).
  std::map<std::string, Tensor> derived;

  bool has(const std::string& name) const { return tensors.count(name) != 0; }
  // The named tensor; a missing name is an ssm::Error naming it.
  Tensor& at(const std::string& name);
  const Tensor& at(const std::string& name) const;
  void set(const std::string& name, Tensor value) { tensors[name] = std::move(value); }
  // The derived value `name`, computed by `make` on first use.
  const Tensor& derived_value(const std::string& name, const std::function<Tensor()>& make);
  // A deep copy of the state (step() updates it in place); derived values are shared, being
  // read-only.
  MixerCache clone() const;
};

// For step(): the cache entry `name`, checked to be defined, contiguous, of `shape` and
// `dtype`; the error reads "{op}: argument 'cache.{name}' expected shape …, got …".
Tensor& checked_cache_entry(MixerCache& cache, const std::string& name, const Shape& shape,
                            DType dtype, const char* op);

class SequenceMixer : public Module {
 public:
  // x (B, L, d_model) → (B, L, d_model).
  virtual Tensor forward(const Tensor& x) const = 0;
  // As forward, starting from an empty state; replaces `cache` with the state after the last
  // position. Not differentiable.
  virtual Tensor prefill(const Tensor& x, MixerCache& cache) const = 0;
  // A zero state for `batch` sequences.
  virtual MixerCache init_cache(int64_t batch) const = 0;
  // x_t (B, d_model) → (B, d_model); advances `cache` in place. Not differentiable.
  virtual Tensor step(const Tensor& x_t, MixerCache& cache) const = 0;

  virtual int64_t d_model() const = 0;
  virtual DType dtype() const = 0;
  virtual const char* arch() const = 0;  // "mamba1", "mamba2", …
};

}  // namespace ssm::nn
