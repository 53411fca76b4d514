#!/usr/bin/env bash
# GCC's vectorisation report for kernel sources: recompiles each with its exact flags from
# BUILD_DIR/compile_commands.json plus -fopt-info-vec-optimized (object to /dev/null) and prints
# the loops GCC vectorised, as file:line: message.
#   usage: scripts/vec_report.sh src/kernels/cpu/causal_conv1d.cpp [more sources…]
#   BUILD_DIR: a configured build (default build/ci)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$root/build/ci}
[[ -f $build/compile_commands.json ]] || { echo "vec_report.sh: no $build/compile_commands.json" >&2; exit 1; }
for src in "$@"; do
  /usr/bin/python3 - "$build/compile_commands.json" "$root/$src" <<'PY' | bash 2>&1 | grep "loop vectorized" | sed "s|$root/||" | sort -t: -k2,2n -u
import json, shlex, sys
db, src = sys.argv[1], sys.argv[2]
for e in json.load(open(db)):
    if e["file"] == src:
        args = shlex.split(e["command"])
        i = args.index("-o")
        args[i + 1] = "/dev/null"
        args.insert(i, "-fopt-info-vec-optimized")
        print("cd " + shlex.quote(e["directory"]) + " && " + " ".join(shlex.quote(a) for a in args))
        break
else:
    sys.exit("vec_report.sh: " + src + " is not in " + db)
PY
done
