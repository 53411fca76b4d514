// `ssm data listops --out DIR [--seed S]`: generates the ListOps splits as TSV files.
#include "commands.h"
#include "ssm/data/listops_dataset.h"

namespace ssm::cli {

void register_data(CLI::App& app, GlobalOptions& g) {
  auto* data = app.add_subcommand("data", "Generate or prepare datasets");
  data->require_subcommand(1);
  struct Args {
    std::string out;
    uint64_t seed = 0;
  };
  auto a = std::make_shared<Args>();
  auto* listops = data->add_subcommand("listops", "Generate ListOps (LRA recipe) train/val/test TSV files");
  listops->add_option("--out", a->out, "Output directory")->required();
  listops->add_option("--seed", a->seed, "Generator seed");
  listops->callback([&g, a] {
    apply_globals(g);
    data::ListOpsOptions o;
    o.seed = a->seed;
    data::ListOpsFiles f = data::ensure_listops_files(a->out, o);
    std::printf("%s\n%s\n%s\n", f.train.c_str(), f.val.c_str(), f.test.c_str());
  });
}

}  // namespace ssm::cli
