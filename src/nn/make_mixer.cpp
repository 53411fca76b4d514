// The one place that maps MambaLMConfig::arch to a mixer. A new architecture adds its options
// to MambaLMConfig, a branch here and one in MambaLMConfig::d_model().
#include "ssm/nn/mamba_lm.h"

namespace ssm::nn {

namespace {

[[noreturn]] void unknown_arch(const std::string& arch) {
  SSM_FAIL("MambaLM: unknown arch '{}' (expected mamba1, mamba2 or mamba3)", arch);
}

}  // namespace

int64_t MambaLMConfig::d_model() const {
  if (arch == "mamba1") return mixer.d_model;
  if (arch == "mamba2") return mamba2.d_model;
  if (arch == "mamba3") return mamba3.d_model;
  unknown_arch(arch);
}

std::shared_ptr<SequenceMixer> make_mixer(const MambaLMConfig& config, Generator& gen,
                                          DType dtype) {
  if (config.arch == "mamba1") return std::make_shared<MambaMixer>(config.mixer, gen, dtype);
  if (config.arch == "mamba2") return std::make_shared<Mamba2Mixer>(config.mamba2, gen, dtype);
  if (config.arch == "mamba3") return std::make_shared<Mamba3Mixer>(config.mamba3, gen, dtype);
  unknown_arch(config.arch);
}

}  // namespace ssm::nn
