// `ssm eval RUN_DIR [--split val|test] [--mode conv|step] [--limit N] [--set key=value]… [--json]`
#include <cmath>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "device_option.h"
#include "ssm/io/checkpoint.h"
#include "ssm/train/trainer.h"
#include "validators.h"

namespace ssm::cli {

void register_eval(CLI::App& app, GlobalOptions& g) {
  struct Args {
    std::string run_dir, split = "test", mode = "conv", device;
    int64_t limit = 0, batch_size = 0;
    std::vector<std::string> sets;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval", "Evaluate a trained run's checkpoint");
  cmd->add_option("run_dir", a->run_dir, "Run directory written by `ssm train`")->required();
  cmd->add_option("--split", a->split, "val or test")->check(CLI::IsMember({"val", "test"}));
  cmd->add_option("--mode", a->mode, "conv (parallel) or step (recurrent, token by token)")
      ->check(CLI::IsMember({"conv", "step"}));
  cmd->add_option("--limit", a->limit, "Evaluate only the first N examples")
      ->check(kNonNegativeInteger);
  cmd->add_option("--batch-size", a->batch_size, "Batch size (default: the run's)")
      ->check(kNonNegativeInteger);
  cmd->add_option("--set", a->sets,
                  "Override a value of the run's config, e.g. data.eval_length=16384 (repeatable)")
      ->allow_extra_args(false);
  add_device_option(cmd, a->device)->description("cpu or cuda (default: the run's train.device)");
  cmd->add_flag("--json", a->json, "Print one JSON object on stdout");
  cmd->callback([&g, a] {
    apply_globals(g);
    std::vector<std::string> sets = a->sets;
    if (!a->device.empty()) sets.push_back("train.device=" + a->device);
    train::RunConfig c = train::load_config(a->run_dir + "/config.toml", sets);
    if (a->limit > 0) {
      if (a->split == "test") c.data.test_limit = a->limit;
    }
    const train::TaskData task = train::load_task_data(c);
    c = train::resolve_config(c, task);
    std::unique_ptr<train::TaskModel> model = train::make_task_model(c);
    io::Checkpoint ck = io::load_checkpoint(a->run_dir);
    model->module().load_state_dict(ck.model_state);
    auto ds = a->split == "test" ? task.test : task.val;
    if (a->limit > 0 && a->limit < ds->size())
      ds = std::make_shared<train::SubsetDataset>(ds, 0, a->limit);
    const int64_t bs = a->batch_size > 0 ? a->batch_size : c.train.batch_size;
    const train::EvalResult r = train::evaluate(*model, task, ds, bs, a->mode == "step", a->split);
    if (a->json) {
      nlohmann::json j = {{"split", a->split}, {"mode", a->mode}};
      j.update(train::to_json(r));
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::string extra;
      if (!std::isnan(r.example_accuracy))
        extra += fmt::format(", {:.4f} of examples fully correct", r.example_accuracy);
      if (!std::isnan(r.bpc)) extra += fmt::format(", {:.4f} bits per byte", r.bpc);
      std::printf("%s (%s mode): loss %.4f, accuracy %.4f%s over %lld samples\n", a->split.c_str(),
                  a->mode.c_str(), r.loss, r.accuracy, extra.c_str(),
                  static_cast<long long>(r.samples));
    }
  });
}

}  // namespace ssm::cli
