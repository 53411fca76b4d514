"""Loads float64 tensors from JSON, calls run(inputs) from the given script, writes the results.

Usage: /usr/bin/python3 torch_bridge.py SCRIPT.py IN.json OUT.json
"""
import importlib.util
import json
import sys

import torch


def main():
    script, in_path, out_path = sys.argv[1:4]
    spec = importlib.util.spec_from_file_location("reference", script)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with open(in_path) as f:
        raw = json.load(f)
    inputs = {k: torch.tensor(v["data"], dtype=torch.float64).reshape(v["shape"]) for k, v in raw.items()}
    torch.set_num_threads(1)
    outputs = mod.run(inputs)
    result = {k: {"shape": list(t.shape), "data": t.detach().double().reshape(-1).tolist()} for k, t in outputs.items()}
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
