#include "ssm/infer/graphed_decoder.h"

#include <vector>

#include "ssm/autograd/node.h"
#include "ssm/core/error.h"

namespace ssm::infer {

namespace {

// The batch size of a cache, checked to be one size, all on the GPU.
int64_t cache_batch(const nn::MambaLMCache& cache) {
  int64_t batch = -1;
  for (const auto& layer : cache.layers)
    for (const auto& [name, t] : layer.tensors) {
      SSM_CHECK(t.device() == Device::CUDA,
                "GraphedDecoder: argument 'cache.{}' expected on cuda, got cpu", name);
      SSM_CHECK(t.dim() > 0 && (batch < 0 || t.size(0) == batch),
                "GraphedDecoder: argument 'cache.{}' expected batch {}, got shape {}", name, batch,
                shape_str(t.shape()));
      batch = t.size(0);
    }
  SSM_CHECK(batch > 0, "GraphedDecoder: argument 'cache' has no state tensors");
  return batch;
}

}  // namespace

GraphedDecoder::GraphedDecoder(const nn::MambaLM& model, nn::MambaLMCache cache)
    : model_(model), cache_(std::move(cache)) {
  SSM_CHECK(model.output_weight().device() == Device::CUDA,
            "GraphedDecoder: the model expected on cuda, got cpu");
  SSM_CHECK(cache_.layers.size() == model.backbone->layers.size(),
            "GraphedDecoder: argument 'cache' expected {} layers, got {}",
            model.backbone->layers.size(), cache_.layers.size());
  batch_ = cache_batch(cache_);
  NoGradGuard no_grad;
  ids_ = Tensor::zeros({batch_}, DType::I64, Device::CUDA);
  {
    // One eager step on a throw-away copy first: it loads the kernels and lets cuBLAS choose its
    // algorithms, which must not happen inside the capture, and leaves every block size the
    // step needs in the allocator's cache.
    nn::MambaLMCache warm;
    for (const auto& layer : cache_.layers) warm.layers.push_back(layer.clone());
    (void)model_.step(ids_, warm);
  }
  graph_ = std::make_unique<cuda::Graph>();
  graph_->capture([this] { logits_ = model_.step(ids_, cache_); });
}

GraphedDecoder::~GraphedDecoder() = default;

const Tensor& GraphedDecoder::step(const Tensor& token) {
  SSM_CHECK(graph_ != nullptr, "GraphedDecoder.step: the cache was released");
  SSM_CHECK(token.defined() && token.dim() == 1 && token.size(0) == batch_,
            "GraphedDecoder.step: argument 'token' expected shape ({}), got {}", batch_,
            token.defined() ? shape_str(token.shape()) : "undefined");
  SSM_CHECK(token.dtype() == DType::I64 || token.dtype() == DType::I32,
            "GraphedDecoder.step: argument 'token' expected int32 or int64 ids, got {}",
            dtype_name(token.dtype()));
  // The captured embedding cannot report a bad id (that would wait on the host): check here.
  const Tensor t = token.to(Device::CPU).contiguous();
  std::vector<int64_t> ids(static_cast<size_t>(batch_));
  const int64_t vocab = model_.config.vocab_size;
  for (int64_t b = 0; b < batch_; ++b) {
    ids[b] = t.dtype() == DType::I64 ? t.data<int64_t>()[b] : t.data<int32_t>()[b];
    SSM_CHECK(ids[b] >= 0 && ids[b] < vocab,
              "GraphedDecoder.step: argument 'token' has id {} at {}, expected in [0, {})", ids[b],
              b, vocab);
  }
  ids_.copy_(Tensor::from_data(ids, {batch_}));
  graph_->replay();
  return logits_;
}

nn::MambaLMCache GraphedDecoder::release_cache() {
  graph_.reset();  // waits for the last replay
  return std::move(cache_);
}

}  // namespace ssm::infer
