// `ssm train CONFIG.toml [--out RUN_DIR] [--set key=value]... [--resume] [--device D] [--json]`
#include <cmath>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "device_option.h"
#include "ssm/train/trainer.h"

namespace ssm::cli {

void register_train(CLI::App& app, GlobalOptions& g) {
  struct Args {
    std::string config, out, device;
    std::vector<std::string> sets;
    bool resume = false, json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("train", "Train a model from a TOML config");
  cmd->add_option("config", a->config, "Config file (see configs/)")->required();
  cmd->add_option("--out", a->out, "Run directory (default: runs/<config name>)");
  cmd->add_option("--set", a->sets, "Override a config value: section.key=value (repeatable)")
      ->allow_extra_args(false);
  cmd->add_flag("--resume", a->resume, "Continue from the run directory's last checkpoint");
  add_device_option(cmd, a->device)->description("cpu or cuda (sets train.device)");
  cmd->add_flag("--json", a->json, "Print the final metrics as one JSON object on stdout");
  cmd->callback([&g, a] {
    apply_globals(g);
    std::vector<std::string> sets = a->sets;
    if (!a->device.empty()) sets.push_back("train.device=" + a->device);
    std::string out = a->out;
    if (out.empty()) {
      std::string stem = a->config.substr(a->config.find_last_of('/') + 1);
      out = "runs/" + stem.substr(0, stem.rfind('.'));
    }
    // On resume the run's own resolved config is authoritative.
    const std::string config_path = a->resume ? out + "/config.toml" : a->config;
    train::RunConfig c = train::load_config(config_path, sets);
    train::TrainResult r = train::train(c, out, a->resume);
    if (a->json) {
      nlohmann::json j = {{"run_dir", out},
                          {"steps", r.steps},
                          {"seconds", r.seconds},
                          {"val", train::to_json(r.val)},
                          {"test", train::to_json(r.test)}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::string extra;
      if (!std::isnan(r.test.example_accuracy))
        extra += fmt::format(", {:.4f} of examples fully correct", r.test.example_accuracy);
      if (!std::isnan(r.test.bpc)) extra += fmt::format(", {:.4f} bits per byte", r.test.bpc);
      std::printf(
          "run %s: %lld steps in %.1f s; validation accuracy %.4f; test loss %.4f, test accuracy "
          "%.4f%s (%lld samples)\n",
          out.c_str(), static_cast<long long>(r.steps), r.seconds, r.val.accuracy, r.test.loss,
          r.test.accuracy, extra.c_str(), static_cast<long long>(r.test.samples));
    }
  });
}

}  // namespace ssm::cli
