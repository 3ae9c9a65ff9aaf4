#!/usr/bin/env python3
"""Writes MIB mebibytes of random text to PATH, fast: one random 65 MiB block
of letters, digits, spaces and newlines (about 1 in 48 bytes is a newline),
written as 64 MiB slices at shifting offsets, so chunks differ from each
other and from chunk boundaries. Used by scripts/gpu-run.sh and
scripts/gpu-gds.sh.   Usage: gen-text.py PATH MIB"""
import os, sys

path, mib = sys.argv[1], int(sys.argv[2])
base = os.urandom((64 << 20) + (1 << 20))
alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-_/()\n"
table = bytes(alphabet[i % len(alphabet)] if i % 48 else 10 for i in range(256))
base = memoryview(base.translate(table))
left = mib << 20
with open(path, "wb") as f:
    k = 0
    while left > 0:
        n = min(64 << 20, left)
        start = (k * 40961) % (1 << 20)
        f.write(base[start:start + n])
        left -= n
        k += 1
print(f"wrote {mib << 20} bytes to {path}")
