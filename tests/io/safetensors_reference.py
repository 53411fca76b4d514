"""Builds safetensors files byte by byte (json + struct + numpy), independent of our writer.

Usage: /usr/bin/python3 safetensors_reference.py WRITER_REFERENCE.safetensors HALF.safetensors

WRITER_REFERENCE: the exact bytes our write_safetensors must produce for the tensors below
  (keys sorted, compact JSON, header padded with spaces to a multiple of 8, data in name order).
HALF: F16 and BF16 tensors plus their float32 values as decoded by numpy, for our reader.
"""
import json
import struct
import sys

import numpy as np


def build(tensors, metadata=None):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        dtype, array = tensors[name]
        data = array.tobytes()
        header[name] = {"dtype": dtype, "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":"), sort_keys=True).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def main():
    writer_path, half_path = sys.argv[1:3]
    tensors = {
        "weight": ("F32", np.array([[0.5, -1.25, 3.0], [0.0, 7.75, -2.0]], dtype="<f4")),
        "bias": ("F64", np.array([1.5, -0.125, 1e10], dtype="<f8")),
        "index": ("I64", np.array([-3, 4000000000], dtype="<i8")),
        "count": ("I32", np.array(7, dtype="<i4")),
        "empty": ("F32", np.zeros((0, 4), dtype="<f4")),
    }
    with open(writer_path, "wb") as f:
        f.write(build(tensors, {"format": "pt", "note": "hi"}))

    values = np.array([1.0, -2.5, 65504.0, 6e-8, 0.333, -0.0, np.inf, 1e-5, 3.14159], dtype="<f4")
    f16 = values.astype("<f2")
    bf16 = (values.view("<u4") >> 16).astype("<u2")  # truncation: the top 16 bits
    bf16_values = (bf16.astype("<u4") << 16).view("<f4")
    half = {
        "h": ("F16", f16),
        "h_expected": ("F32", f16.astype("<f4")),
        "b": ("BF16", bf16.reshape(3, 3)),
        "b_expected": ("F32", bf16_values.reshape(3, 3)),
    }
    with open(half_path, "wb") as f:
        f.write(build(half))


if __name__ == "__main__":
    main()
