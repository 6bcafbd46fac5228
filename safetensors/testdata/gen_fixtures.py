#!/usr/bin/env python3
"""Generate the safetensors test fixtures for package safetensors.

Independent of the Go code and of the safetensors Python package: the file
format is written here with struct + json, and every float conversion is done
by torch (1.13). Run from this directory:  /usr/bin/python3 gen_fixtures.py

Outputs (all small): f32.safetensors, bf16.safetensors, f16.safetensors,
misc.safetensors, sharded/{model-0000N-of-00002.safetensors,
model.safetensors.index.json} and expected.json, which records for every
tensor its dtype, shape, raw bytes (hex) and, for float dtypes, the float32
bit patterns torch produces when converting the stored values to float32.
"""
import json
import os
import struct

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DT = {
    torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16",
    torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
    torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}


def raw_bytes(t):
    t = t.contiguous()
    if t.dtype in (torch.bfloat16, torch.float16):
        return t.view(torch.int16).numpy().tobytes()
    return t.numpy().tobytes()


def write_st(path, tensors, metadata=None, pad=True):
    """tensors: list of (name, torch tensor) in buffer order."""
    header, buf = {}, b""
    if metadata is not None:
        header["__metadata__"] = metadata
    for name, t in tensors:
        b = raw_bytes(t)
        header[name] = {"dtype": DT[t.dtype], "shape": list(t.shape),
                        "data_offsets": [len(buf), len(buf) + len(b)]}
        buf += b
    h = json.dumps(header, separators=(",", ":")).encode()
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + buf)
    return len(buf)


def f32_from_bits(bits):
    return torch.from_numpy(np.array(bits, dtype=np.uint32).view(np.float32).copy())


def f32_bits(t):
    return ["%08x" % v for v in t.float().reshape(-1).contiguous().numpy().view(np.uint32).tolist()]


def describe(t):
    d = {"dtype": DT[t.dtype], "shape": list(t.shape), "raw_hex": raw_bytes(t).hex()}
    if t.dtype in (torch.float32, torch.float16, torch.bfloat16, torch.float64):
        d["f32_bits"] = f32_bits(t)
    else:
        d["ints"] = [int(v) for v in t.reshape(-1).to(torch.int64).tolist()]
    return d


# Float32 inputs exercising rounding to BF16 and F16: ties, near-ties,
# overflow, subnormals (of both formats), infinities, NaNs and signed zeros.
SPECIAL_BITS = [
    0x00000000, 0x80000000,              # +0, -0
    0x3f800000, 0xbf800000,              # 1, -1
    0x3dcccccd, 0x3eaaaaab,              # 0.1, 1/3
    0x3f808000,                          # 1 + 2^-8: BF16 tie -> even (1.0)
    0x3f818000,                          # 1 + 3*2^-8: BF16 tie -> up
    0x3f808001, 0x3f807fff,              # BF16 just above / below the tie
    0x3f801000,                          # 1 + 2^-11: F16 tie -> even (1.0)
    0x3f803000,                          # 1 + 3*2^-11: F16 tie -> up
    0x3f801001, 0x3f800fff,              # F16 just above / below the tie
    0x477fe000,                          # 65504 = F16 max
    0x477fefff,                          # just below 65520 -> 65504
    0x477ff000,                          # 65520: F16 tie -> inf
    0x47800000, 0xc7c35000,              # 65536, -100000 -> F16 inf / -inf
    0x38800000,                          # 2^-14 F16 min normal
    0x387fc000,                          # 2^-14 - 2^-24 F16 max subnormal
    0x33800000,                          # 2^-24 F16 min subnormal
    0x33000000,                          # 2^-25: F16 tie -> 0
    0x33000001,                          # just above 2^-25 -> 2^-24
    0x33c00000,                          # 1.5*2^-24: tie -> 2^-23 (even)
    0x34200000,                          # 2.5*2^-24: tie -> 2^-23 (even)
    0x32000000,                          # 2^-27 -> 0
    0xb3400000,                          # -0.75*2^-23 -> negative subnormal
    0x7f7fffff,                          # FLT_MAX -> BF16 inf, F16 inf
    0x7f7f7fff,                          # rounds to BF16 max finite
    0x00800000, 0x00000001, 0x00400000,  # F32 min normal, subnormals
    0x00018000, 0x80008000,              # BF16 subnormal ties
    0x7f800000, 0xff800000,              # +inf, -inf
    0x7fc00000, 0xffc00000,              # NaN, -NaN
    0x7f800001, 0x7fc12345,              # signalling NaN, NaN with payload
    0x4b800001,                          # 2^24 + 2 (exact in f32)
]


def build():
    torch.manual_seed(1234)
    np.random.seed(1234)
    special = f32_from_bits(SPECIAL_BITS)
    # Random values over a wide range of magnitudes, plus exact ties.
    scale = torch.pow(10.0, torch.empty(384).uniform_(-9, 6))
    rnd = torch.randn(384) * scale
    ties = []
    for k in range(32):
        ties.append(struct.unpack("<I", struct.pack("<f", 1 + (2 * k + 1) * 2.0 ** -11))[0])
        ties.append(struct.unpack("<I", struct.pack("<f", -(2 + (2 * k + 1) * 2.0 ** -7)))[0])
        ties.append(((0x3f800000 + k * 0x10000) | 0x8000))
        ties.append(0x33000000 + k * 0x100000)  # walk across the F16 subnormal range
    rand_src = torch.cat([rnd, f32_from_bits(ties)]).float()

    files = {}

    def add(fname, tensors, metadata=None, pad=True):
        write_st(os.path.join(HERE, fname), tensors, metadata, pad)
        files[fname] = {"metadata": metadata or {},
                        "tensors": {n: describe(t) for n, t in tensors}}

    a = (torch.arange(6, dtype=torch.float32) * 0.5 - 1).reshape(2, 3)
    add("f32.safetensors", [
        ("rand_src", rand_src),
        ("special", special),
        ("a", a),
        ("scalar", torch.tensor(3.25, dtype=torch.float32)),
        ("empty", torch.zeros(0, 4, dtype=torch.float32)),
    ], {"format": "pt", "fixture": "f32"})

    bf16_bits = [0x0000, 0x8000, 0x0001, 0x8001, 0x007f, 0x0080, 0x3f80, 0x4049,
                 0x7f7f, 0xff7f, 0x7f80, 0xff80, 0x7fc0, 0xffc0, 0x7f81, 0x7fc1]
    f16_bits = [0x0000, 0x8000, 0x0001, 0x8001, 0x0200, 0x03ff, 0x0400, 0x3c00,
                0x3555, 0x7bff, 0xfbff, 0x7c00, 0xfc00, 0x7e00, 0xfe00, 0x7c01,
                0x7d55, 0x5640, 0xc000, 0x0155]

    def from_u16(bits, dtype):
        return torch.from_numpy(np.array(bits, dtype=np.uint16).view(np.int16).copy()).view(dtype)

    # BF16 file: header deliberately NOT padded to 8 bytes.
    add("bf16.safetensors", [
        ("special", special.to(torch.bfloat16)),
        ("rand", rand_src.to(torch.bfloat16)),
        ("bits", from_u16(bf16_bits, torch.bfloat16)),
        ("matrix", torch.linspace(-3, 3, 12).reshape(3, 4).to(torch.bfloat16)),
    ], {"format": "pt"}, pad=False)
    add("f16.safetensors", [
        ("special", special.to(torch.float16)),
        ("rand", rand_src.to(torch.float16)),
        ("bits", from_u16(f16_bits, torch.float16)),
        ("matrix", torch.linspace(-3, 3, 12).reshape(2, 2, 3).to(torch.float16)),
    ])
    f64 = torch.tensor([0.1, 1e300, -1e300, -1e-50, 1 / 3, float("nan"), float("-inf"),
                        2.0 ** -149, 1.5 * 2.0 ** -149, 1 + 2.0 ** -24, 1 + 3 * 2.0 ** -24,
                        -0.0, 3.4028235677973366e38], dtype=torch.float64)
    add("misc.safetensors", [
        ("f64", f64),
        ("i64", torch.tensor([[0, -1], [2 ** 62, -2 ** 63]], dtype=torch.int64)),
        ("i32", torch.tensor([7, -2 ** 31, 2 ** 31 - 1], dtype=torch.int32)),
        ("i16", torch.tensor([-32768, 32767], dtype=torch.int16)),
        ("i8", torch.tensor([-128, 0, 127], dtype=torch.int8)),
        ("u8", torch.tensor([[0, 255], [1, 128]], dtype=torch.uint8)),
        ("bool", torch.tensor([True, False, True], dtype=torch.bool)),
    ], {"format": "pt"})

    sd = os.path.join(HERE, "sharded")
    os.makedirs(sd, exist_ok=True)
    shard1 = [("layer.0.weight", torch.randn(3, 2)),
              ("layer.0.bias", torch.randn(2).to(torch.bfloat16))]
    shard2 = [("layer.1.weight", torch.randn(2, 2).to(torch.float16)),
              ("scalar", torch.tensor(-7.5, dtype=torch.float32))]
    n1 = "model-00001-of-00002.safetensors"
    n2 = "model-00002-of-00002.safetensors"
    total = write_st(os.path.join(sd, n1), shard1, {"format": "pt"})
    total += write_st(os.path.join(sd, n2), shard2, {"format": "pt"})
    wm = {n: n1 for n, _ in shard1}
    wm.update({n: n2 for n, _ in shard2})
    with open(os.path.join(sd, "model.safetensors.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": total}, "weight_map": wm}, f, indent=2, sort_keys=True)
    files["sharded"] = {"metadata": {"format": "pt", "total_size": str(total)},
                        "tensors": {n: dict(describe(t), file=fn)
                                    for fn, sh in ((n1, shard1), (n2, shard2)) for n, t in sh}}

    with open(os.path.join(HERE, "expected.json"), "w") as f:
        json.dump({"generator": "gen_fixtures.py, torch " + torch.__version__, "files": files},
                  f, sort_keys=True, separators=(",", ":"))


if __name__ == "__main__":
    build()
