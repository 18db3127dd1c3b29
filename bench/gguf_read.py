"""gguf_read.py: the header of a GGUF file and its f32 tensors, for the
bench scripts (pure Python; every length checked against the bytes left).

    kv, tensors = read(path)         # tensors: name -> (dims, type, absolute offset)
    values = f32(path, data, tensors, name)   # a flat tuple of floats

Exits naming the file when it is not GGUF, is truncated or malformed, or
the tensor asked for is missing or not f32.
"""
import struct
import sys

SCALAR = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


def read(path):
    """(data, kv, tensors) of the GGUF file at path."""
    data = open(path, "rb").read()
    pos = 0

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from("<" + fmt, data, pos)
        pos += struct.calcsize("<" + fmt)
        return v[0]

    def string():
        nonlocal pos
        n = take("Q")
        if n > len(data) - pos:
            raise ValueError(f"a string of {n} bytes at offset {pos} runs past the end")
        s = data[pos:pos + n].decode("utf-8", "replace")
        pos += n
        return s

    def value(t):
        if t == 8:
            return string()
        if t == 9:
            et, n = take("I"), take("Q")
            if n > len(data) - pos:
                raise ValueError(f"an array of {n} values at offset {pos} runs past the end")
            return [value(et) for _ in range(n)]
        if t not in SCALAR:
            raise ValueError(f"unknown value type {t}")
        return take(SCALAR[t])

    if data[:4] != b"GGUF":
        sys.exit(f"{path}: not a GGUF file")
    try:
        pos = 8
        n_tensors, n_kv = take("Q"), take("Q")
        kv = {}
        for _ in range(n_kv):
            key = string()
            kv[key] = value(take("I"))
        infos = []
        for _ in range(n_tensors):
            name = string()
            n_dims = take("I")
            if n_dims > 4:
                raise ValueError(f"tensor {name} has {n_dims} dimensions")
            dims = [take("Q") for _ in range(n_dims)]
            infos.append((name, dims, take("I"), take("Q")))
    except (struct.error, ValueError, UnicodeDecodeError) as e:
        sys.exit(f"{path}: truncated or malformed GGUF ({e})")
    align = kv.get("general.alignment", 32)
    base = (pos + align - 1) // align * align
    return data, kv, {name: (dims, ttype, base + off) for name, dims, ttype, off in infos}


def f32(path, data, tensors, name):
    """The values of f32 tensor `name`, flat, in file order."""
    if name not in tensors:
        sys.exit(f"{path}: no tensor {name}")
    dims, ttype, off = tensors[name]
    if ttype != 0:
        sys.exit(f"{path}: {name} is not f32 (type {ttype})")
    count = 1
    for d in dims:
        count *= d
    if off + 4 * count > len(data):
        sys.exit(f"{path}: {name} runs past the end of the file")
    return struct.unpack_from(f"<{count}f", data, off)
