#include "ssm/optim/param_groups.h"

#include <cmath>

namespace ssm::optim {

std::vector<ParamGroup> make_param_groups(const std::vector<nn::NamedParameter>& params, double lr,
                                          double weight_decay, double ssm_lr) {
  SSM_CHECK(std::isfinite(lr) && lr >= 0, "make_param_groups: argument 'lr' expected >= 0, got {}",
            lr);
  SSM_CHECK(std::isfinite(ssm_lr) && ssm_lr >= 0,
            "make_param_groups: argument 'ssm_lr' expected >= 0, got {}", ssm_lr);
  SSM_CHECK(std::isfinite(weight_decay) && weight_decay >= 0,
            "make_param_groups: argument 'weight_decay' expected >= 0, got {}", weight_decay);
  ParamGroup decay{{}, lr, weight_decay, "decay", {}};
  ParamGroup no_decay{{}, lr, 0.0, "no_decay", {}};
  ParamGroup ssm{{}, ssm_lr, 0.0, "ssm", {}};
  for (const auto& p : params) {
    ParamGroup& g = p.kind == nn::ParamKind::Weight    ? decay
                    : p.kind == nn::ParamKind::NoDecay ? no_decay
                                                       : ssm;
    g.params.push_back(p.tensor);
    g.param_names.push_back(p.name);
  }
  std::vector<ParamGroup> out;
  for (ParamGroup* g : {&decay, &no_decay, &ssm})
    if (!g->params.empty()) out.push_back(std::move(*g));
  return out;
}

}  // namespace ssm::optim
