#!/usr/bin/env bash
# Packs the CUDA test and benchmark executables of a build dir, with the non-system shared
# libraries they load, into .devcarry/ (git-ignored) for the device tool's `carry`; see
# scripts/gpu_check.sh. The build dir should be configured with SSM_CUDA=ON, SSM_NATIVE=OFF,
# CMAKE_CUDA_ARCHITECTURES=90 and CMAKE_EXE_LINKER_FLAGS=-Wl,--as-needed.
set -euo pipefail
build=${1:?usage: scripts/gpu_pack.sh BUILD_DIR}
cd "$(dirname "$0")/.."
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qx '/.devcarry/' "$exclude" 2>/dev/null || echo '/.devcarry/' >> "$exclude"
rm -rf .devcarry && mkdir -p .devcarry/bin .devcarry/lib
find "$build/tests" "$build/bench" -maxdepth 1 -type f -executable \
  \( -name 'cuda_test_*' -o -name ssm_bench_cuda \) -exec cp {} .devcarry/bin/ \;
# The CLI too, for training and generation runs on the GPU machine.
if [ -x "$build/ssm" ]; then cp "$build/ssm" .devcarry/bin/; fi
strip .devcarry/bin/* || true
# Libraries outside glibc/libstdc++ (which the image has, newer), and not the CUDA driver or
# cuBLAS (600 MB; the image's toolkit has them: gpu_check.sh puts them on the library path).
for f in .devcarry/bin/*; do
  ldd "$f" | awk '/=> \// {print $3}'
done | sort -u | grep -vE '/(libc|libm|libstdc\+\+|libgcc_s|libdl|librt|libpthread|ld-linux|libcuda|libcublas|libcublasLt)[.-]' |
  while read -r lib; do cp -L "$lib" .devcarry/lib/; done
du -sh .devcarry/bin .devcarry/lib
ls .devcarry/lib
# The folder is over the device tool's 64 MiB carry limit once the CLI and every test are in
# it; xz brings it to about a fifth. Carry [".devpack"]; gpu_check.sh unpacks it.
grep -qx '/.devpack/' "$exclude" 2>/dev/null || echo '/.devpack/' >> "$exclude"
mkdir -p .devpack
tar -cf - .devcarry | xz -T0 -6 > .devpack/devcarry.tar.xz
ls -la .devpack/devcarry.tar.xz
