#!/usr/bin/env python3
"""Independent oracle for the example user operations (Sources/SluiceExampleOperations).

    example-ops-oracle.py histogram PATH...   ->  PATH: N0 N1 ... N255
    example-ops-oracle.py xxh64-blocks PATH... ->  PATH: 16 hex digits
    example-ops-oracle.py vectors              ->  checks XXH64 against its published test vectors

xxh64-blocks is the example's own per-file function:
    XXH64(LE64(S) + LE64(size), seed 0), S = sum of XXH64(block_i, seed i) mod 2^64
over the file's 4096-byte blocks. XXH64 here is a plain Python rendering of
its specification; `vectors` checks it (and, where the `xxhash` module is
installed, compares it with that on random inputs).
"""
import os
import random
import struct
import sys

M = (1 << 64) - 1
P1, P2, P3, P4, P5 = (0x9E3779B185EBCA87, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9,
                      0x85EBCA77C2B2AE63, 0x27D4EB2F165667C5)


def rotl(x, r):
    return ((x << r) | (x >> (64 - r))) & M


def xround(acc, lane):
    return rotl((acc + lane * P2) & M, 31) * P1 & M


def xxh64(data, seed=0):
    n, i = len(data), 0
    if n >= 32:
        v = [(seed + P1 + P2) & M, (seed + P2) & M, seed & M, (seed - P1) & M]
        while i + 32 <= n:
            for k in range(4):
                v[k] = xround(v[k], struct.unpack_from("<Q", data, i + 8 * k)[0])
            i += 32
        h = (rotl(v[0], 1) + rotl(v[1], 7) + rotl(v[2], 12) + rotl(v[3], 18)) & M
        for lane in v:
            h = ((h ^ xround(0, lane)) * P1 + P4) & M
    else:
        h = (seed + P5) & M
    h = (h + n) & M
    while i + 8 <= n:
        h = (rotl(h ^ xround(0, struct.unpack_from("<Q", data, i)[0]), 27) * P1 + P4) & M
        i += 8
    if i + 4 <= n:
        h = (rotl(h ^ (struct.unpack_from("<I", data, i)[0] * P1 & M), 23) * P2 + P3) & M
        i += 4
    while i < n:
        h = rotl(h ^ (data[i] * P5 & M), 11) * P1 & M
        i += 1
    h ^= h >> 33
    h = h * P2 & M
    h ^= h >> 29
    h = h * P3 & M
    h ^= h >> 32
    return h


def xxh64_blocks(data):
    s = 0
    for k in range(0, len(data), 4096):
        s = (s + xxh64(data[k:k + 4096], k // 4096)) & M
    return xxh64(struct.pack("<QQ", s, len(data)))


def vectors():
    published = {b"": 0xEF46DB3751D8E999, b"a": 0xD24EC4F1A98C6E5B, b"abc": 0x44BC2CF5AD770999}
    for text, want in published.items():
        got = xxh64(text)
        if got != want:
            sys.exit(f"XXH64({text!r}) = {got:016x}, published {want:016x}")
    try:
        import xxhash
    except ImportError:
        print("vectors: published vectors match (no xxhash module to compare further)")
        return
    rng = random.Random(5)
    for _ in range(300):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 300)))
        seed = rng.getrandbits(64)
        if xxh64(data, seed) != xxhash.xxh64(data, seed=seed).intdigest():
            sys.exit(f"XXH64 differs from the xxhash module on {len(data)} bytes, seed {seed}")
    print("vectors: published vectors match; 300 random inputs equal the xxhash module's")


def main():
    mode, paths = sys.argv[1], sys.argv[2:]
    if mode == "vectors":
        return vectors()
    for path in paths:
        data = open(path, "rb").read()
        if mode == "histogram":
            counts = [data.count(bytes([b])) for b in range(256)]
            print(f"{path}: " + " ".join(map(str, counts)))
        elif mode == "xxh64-blocks":
            print(f"{path}: {xxh64_blocks(data):016x}")
        else:
            sys.exit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
