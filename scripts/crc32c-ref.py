#!/usr/bin/env python3
"""The single-threaded reference `sluice hash` is compared with: CRC-32C of
PATH with the `crc32c` package (hardware SSE4.2 where it has it), read in
4 MiB pieces; prints `CHECKSUM PATH`. Used by scripts/gpu-run.sh and
scripts/gpu-hash.sh.   Usage: crc32c-ref.py PATH"""
import sys
import crc32c

value, buf = 0, bytearray(4 << 20)
view = memoryview(buf)
with open(sys.argv[1], "rb", buffering=0) as f:
    while True:
        n = f.readinto(buf)
        if not n:
            break
        value = crc32c.crc32c(view[:n], value)
print(format(value, "08x"), sys.argv[1])
