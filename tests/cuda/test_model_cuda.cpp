// Whole models on the GPU against the same models on the CPU: a Mamba-1 and a Mamba-2 language
// model moved with Module::to — logits, loss and every parameter's gradient; prefill + steps
// against the parallel forward; greedy generation; and `ssm train`'s trainer with
// train.device = "cuda" against the CPU trainer. Float64 to 1e-10 where the arithmetic is the
// same up to summation order; NaN-poisoned device memory.
#include <cstdio>
#include <filesystem>
#include <vector>

#include "ssm/infer/generate.h"
#include "ssm/io/checkpoint.h"
#include "ssm/nn/mamba_lm.h"
#include "ssm/ops/loss.h"
#include "ssm/train/trainer.h"
#include "support/cuda_testing.h"
#include "support/perturb.h"
#include "support/testing.h"

using namespace ssm;
using ssm::testing::rel_error;
namespace fs = std::filesystem;

namespace {

nn::MambaLMConfig tiny_config(const std::string& arch) {
  nn::MambaLMConfig c;
  c.arch = arch;
  c.n_layer = 2;
  c.vocab_size = 37;
  c.mixer.d_model = 24;  // mamba1: D_inner 48, N 5, dt_rank 2
  c.mixer.d_state = 5;
  c.mixer.dt_rank = 2;
  c.mamba2.d_model = 24;  // mamba2: D_inner 48, 3 heads of 16, N 6
  c.mamba2.d_state = 6;
  c.mamba2.head_dim = 16;
  return c;
}

Tensor random_ids(int64_t B, int64_t L, int64_t V, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> ids(static_cast<size_t>(B * L));
  for (auto& id : ids) id = static_cast<int64_t>(g.below(static_cast<uint64_t>(V)));
  return Tensor::from_data(ids, {B, L});
}

struct Pair {
  std::unique_ptr<nn::MambaLM> cpu, gpu;
};

// The same weights (perturbed away from the init's constants) on both devices.
Pair make_pair(const std::string& arch, DType dtype, uint64_t seed) {
  Generator g1(seed), g2(seed);
  Pair p{std::make_unique<nn::MambaLM>(tiny_config(arch), g1, dtype),
         std::make_unique<nn::MambaLM>(tiny_config(arch), g2, dtype)};
  ssm::testing::perturb_parameters(*p.cpu, seed + 1, 0.2);
  p.gpu->load_state_dict(p.cpu->state_dict());
  p.gpu->to(Device::CUDA);
  for (const auto& [name, t] : p.gpu->state_dict()) EXPECT_EQ(t.device(), Device::CUDA) << name;
  return p;
}

class CudaModel : public ::testing::TestWithParam<const char*> {};

TEST_P(CudaModel, ForwardLossAndEveryGradientMatchCpu) {
  SSM_SKIP_WITHOUT_CUDA();
  for (DType dtype : {DType::F64, DType::F32}) {
    ssm::testing::PoisonDeviceMemory poison;
    Pair p = make_pair(GetParam(), dtype, 40);
    const Tensor ids = random_ids(3, 29, 37, 41), targets = random_ids(3 * 29, 1, 37, 42);
    const Tensor t = targets.reshape({3 * 29});
    double worst = 0;
    std::vector<Tensor> logits;
    for (nn::MambaLM* m : {p.cpu.get(), p.gpu.get()}) {
      Tensor lg = m->forward(ids);
      cross_entropy(lg.reshape({3 * 29, 37}), t).backward();
      logits.push_back(lg.detach().to(Device::CPU));
    }
    const double bound = dtype == DType::F64 ? 1e-10 : 1e-4;
    const double e = rel_error(logits[1], logits[0]);
    worst = std::max(worst, e);
    EXPECT_LT(e, bound) << "logits " << dtype_name(dtype);
    const auto cpu_params = p.cpu->named_parameters(), gpu_params = p.gpu->named_parameters();
    ASSERT_EQ(cpu_params.size(), gpu_params.size());
    for (size_t i = 0; i < cpu_params.size(); ++i) {
      ASSERT_TRUE(gpu_params[i].tensor.grad().defined()) << gpu_params[i].name;
      const double eg =
          rel_error(gpu_params[i].tensor.grad().to(Device::CPU), cpu_params[i].tensor.grad());
      worst = std::max(worst, eg);
      EXPECT_LT(eg, bound) << "grad " << cpu_params[i].name << " " << dtype_name(dtype);
    }
    std::printf("parity model %s %s: logits + %zu parameter gradients, worst rel err %.2e\n",
                GetParam(), dtype_name(dtype), cpu_params.size(), worst);
  }
}

TEST_P(CudaModel, PrefillThenStepsAndGreedyGenerationMatchCpu) {
  SSM_SKIP_WITHOUT_CUDA();
  ssm::testing::PoisonDeviceMemory poison;
  Pair p = make_pair(GetParam(), DType::F64, 50);
  const Tensor ids = random_ids(2, 13, 37, 51);
  const Tensor full = p.cpu->forward(ids);
  auto [last, cache] = p.gpu->prefill(ids.narrow(1, 0, 5));
  EXPECT_LT(rel_error(last.to(Device::CPU), full.select(1, 4)), 1e-10);
  for (int64_t l = 5; l < 13; ++l) {
    const Tensor y = p.gpu->step(ids.select(1, l).contiguous(), cache);
    EXPECT_EQ(y.device(), Device::CUDA);
    EXPECT_LT(rel_error(y.to(Device::CPU), full.select(1, l)), 1e-10) << "step " << l;
  }
  infer::GenerateOptions o;
  o.max_new_tokens = 24;
  o.sampling.temperature = 0;
  const std::vector<int64_t> prompt = {3, 1, 4, 1, 5, 9, 2, 6};
  const auto on_cpu = infer::generate(*p.cpu, prompt, o, nullptr).ids;
  const auto on_gpu = infer::generate(*p.gpu, prompt, o, nullptr).ids;
  EXPECT_EQ(on_gpu, on_cpu);
}

INSTANTIATE_TEST_SUITE_P(Archs, CudaModel, ::testing::Values("mamba1", "mamba2"));

std::string fresh_dir(const std::string& name) {
  const fs::path d = fs::temp_directory_path() / ("ssm_cuda_model_" + name);
  fs::remove_all(d);
  return d.string();
}

TEST(CudaTrainer, TrainsLikeTheCpuTrainerAndResumes) {
  SSM_SKIP_WITHOUT_CUDA();
  const std::string toml = R"(
[model]
arch = "mamba2"
d_model = 32
d_state = 8
head_dim = 16
n_layers = 2
[data]
dataset = "mqar"
seq_len = 24
num_pairs = 4
vocab_size = 24
train_size = 256
val_size = 32
test_size = 64
[train]
batch_size = 16
epochs = 1
lr = 0.01
ssm_lr = 0.01
warmup_steps = 2
grad_clip = 1.0
log_every = 4
eval_every = 8
)";
  const std::string cpu_dir = fresh_dir("cpu"), gpu_dir = fresh_dir("gpu");
  const auto cpu = train::train(train::parse_config(toml, {}, "t"), cpu_dir, false);
  const auto gpu =
      train::train(train::parse_config(toml, {"train.device=cuda"}, "t"), gpu_dir, false);
  EXPECT_EQ(gpu.steps, 16);
  // Float32 on both sides, summed in other orders: 16 AdamW steps keep the two runs within a
  // small fraction of the loss (AdamW's normalised steps do not amplify differences of 1e-6
  // into more than ~1e-4 of the weights over so few steps).
  EXPECT_NEAR(gpu.test.loss, cpu.test.loss, 2e-3 * cpu.test.loss);
  const io::Checkpoint a = io::load_checkpoint(cpu_dir), b = io::load_checkpoint(gpu_dir);
  double worst = 0;
  for (const auto& [name, t] : a.model_state) {
    const Tensor& u = b.model_state.at(name);
    EXPECT_EQ(u.device(), Device::CPU) << name;  // the checkpoint is written from host copies
    worst = std::max(worst, rel_error(u, t));
  }
  EXPECT_LT(worst, 1e-3);
  std::printf(
      "trainer cpu vs cuda (mamba2, 16 steps): test loss %.6f vs %.6f, weights worst rel "
      "err %.2e\n",
      cpu.test.loss, gpu.test.loss, worst);
  // Stopped after step 8 (its checkpoint), resumed: the optimizer state comes back from the
  // CPU file onto the GPU and the run ends where the uninterrupted one did (up to the
  // embedding gradient's atomic summation order).
  const std::string cut_dir = fresh_dir("cut");
  const train::RunConfig gc = train::parse_config(toml, {"train.device=cuda"}, "t");
  train::train(gc, cut_dir, false, 8);
  const auto resumed = train::train(gc, cut_dir, true);
  EXPECT_EQ(resumed.steps, 16);
  EXPECT_NEAR(resumed.test.loss, gpu.test.loss, 1e-4 * gpu.test.loss);
  for (const auto& d : {cpu_dir, gpu_dir, cut_dir}) fs::remove_all(d);
}

}  // namespace
