#pragma once
// Thread count for OpenMP and OpenBLAS. Initialised from SSM_NUM_THREADS when set,
// otherwise the number of cores; `--threads` on the CLI calls set_num_threads.
namespace ssm {

void set_num_threads(int n);
int get_num_threads();

}  // namespace ssm
