#!/usr/bin/env python3
"""Writes a literal set whose literals share a long prefix, and text to scan.

    shared-prefix-data.py WORKDIR [MIB]

WORKDIR/lits-url.txt: 10,000 URLs "https://www.<4-12 letters and digits>.com/<0-10 more>".
WORKDIR/url-text.txt: MIB MiB (default 256) of lines of eight words; 30 % of
the lines have a URL of the same shape that is in no set, and 5 % of them also
end with one of the set's URLs (64 MiB of distinct lines at most, repeated up to the size).
Deterministic (a fixed seed). The scan table keys such a set
past its shared prefix (docs/protocol.md, "2: scan"); before table version 3
every URL sat in one bucket.
"""
import os
import random
import sys

work = sys.argv[1]
mib = int(sys.argv[2]) if len(sys.argv) > 2 else 256
rng = random.Random(20261207)
alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"


def word(n):
    return "".join(rng.choice(alphabet) for _ in range(n))


os.makedirs(work, exist_ok=True)
urls = ["https://www." + word(rng.randint(4, 12)) + ".com/" + word(rng.randint(0, 10)) for _ in range(10_000)]
with open(os.path.join(work, "lits-url.txt"), "w") as f:
    f.write("\n".join(urls) + "\n")
vocabulary = [word(rng.randint(2, 9)) for _ in range(50_000)]
# 64 MiB of distinct lines at most, repeated up to the size (generating 1 GiB
# line by line would take minutes of the GPU machine's time).
block_target = min(mib, 64) << 20
lines = []
size = 0
while size < block_target:
    line = " ".join(rng.choice(vocabulary) for _ in range(8))
    r = rng.random()
    if r < 0.30:
        line += " https://www." + word(8) + ".com/" + word(5)
    if r < 0.05:
        line += " " + rng.choice(urls)
    line += "\n"
    lines.append(line)
    size += len(line)
block = "".join(lines).encode()
target = mib << 20
with open(os.path.join(work, "url-text.txt"), "wb") as f:
    written = 0
    while written < target:
        piece = block[: target - written]
        f.write(piece)
        written += len(piece)
