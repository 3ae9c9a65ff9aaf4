#!/usr/bin/env python3
"""Data for scripts/gpu-scanbench.sh: a word text and its literal sets.

    scripts/scanbench-data.py FILE MIB WORKDIR [SEED]

FILE: MIB MiB of text made of pseudo-words. A vocabulary of 30,000 distinct
lowercase words of 2-12 letters is drawn with Zipf weights (rank r: 1/r;
shorter words tend to rank higher), so a few thousand words make most of
the text, as in natural language; every line holds 6-14 words and exactly one
"rare token": 12 random lowercase letters (unique in the block). One block of
about 65 MiB is generated, then written as slices that start and end at line
breaks at shifting offsets, so chunks differ and every line is whole.

WORKDIR/lits-N.txt (N = 1, 1000, 10000, 100000, 1000000), the sparse sets: 12-byte
literals, 10 % of them (1 for N = 1) rare tokens cut from the block (each
occurs once per slice, so about once per 64 MiB of FILE, and at most one
rare token is on a line), the rest random 12-letter strings that occur
nowhere. Matching lines = matches, so `rg -c` counts the same as
`sluice scan --count`.

WORKDIR/lits-dense.txt: the 2,000 most common words of the vocabulary plus
8,000 random 12-letter strings (10,000 literals): every occurrence of each
word counts, inside other words too, so the count runs to about a billion
per 4 GiB (about 0.25 per byte); lines hold several matches, so rg's line count is not comparable.

Prints one summary line per file written. About 10-15 s for 4 GiB on one
core (the block; the rest is writing).
"""
import os
import random
import sys

path, mib, work = sys.argv[1], int(sys.argv[2]), sys.argv[3]
seed = int(sys.argv[4]) if len(sys.argv) > 4 else 20261125
rng = random.Random(seed)
LETTERS = b"abcdefghijklmnopqrstuvwxyz"
# urandom bytes -> letters (256 = 9 * 26 + 22: a slight bias to a-v, harmless)
TO_LETTERS = bytes(LETTERS[i % 26] for i in range(256))

# --- vocabulary with Zipf weights ------------------------------------------------
lengths = [2, 3, 3, 4, 4, 4, 5, 5, 5, 5, 6, 6, 6, 7, 7, 7, 8, 8, 9, 9, 10, 11, 12]
vocab, seen = [], set()
while len(vocab) < 30000:
    w = bytes(rng.choice(LETTERS) for _ in range(rng.choice(lengths)))
    if w not in seen:
        seen.add(w)
        vocab.append(w)
# Rank order: shorter words tend to rank higher, as in natural language
# (tuned so the dense set below matches about 0.25 times per byte).
vocab.sort(key=lambda w: len(w) + rng.uniform(0, 20))
cum, total = [], 0.0
for r in range(len(vocab)):
    total += 1.0 / (r + 1)
    cum.append(total)

# --- one block of text --------------------------------------------------------------
BLOCK = (64 << 20) + (1 << 20)
words = rng.choices(vocab, cum_weights=cum, k=BLOCK // 6 + 1)
rare_pool = os.urandom(12 * (BLOCK // 40)).translate(TO_LETTERS)
parts, size, w, line_no = [], 0, 0, 0
rare_offsets = []  # (offset in block, token)
while size < BLOCK:
    n = 6 + rng.randrange(9)
    line = words[w:w + n]
    if len(line) < n:
        w = 0
        line = words[:n]
    w += n
    token = rare_pool[12 * line_no:12 * line_no + 12]
    at = rng.randrange(n + 1)
    before = b" ".join(line[:at])
    offset = size + len(before) + (1 if at else 0)
    rare_offsets.append((offset, token))
    text = b" ".join(line[:at] + [token] + line[at:]) + b"\n"
    parts.append(text)
    size += len(text)
    line_no += 1
block = b"".join(parts)
del parts, words

# --- the file: slices of the block between line breaks ---------------------------------
SLICE = 64 << 20
left = mib << 20
written = 0
with open(path, "wb") as f:
    k = 0
    while left > 0:
        start = (k * 40961) % (1 << 20)
        start = block.index(b"\n", start) + 1
        end = min(start + min(SLICE, left), len(block))
        if end < len(block):
            # End at a line break: the last one before `end`, or (for the last
            # few bytes) the next one, so the file may run a line past MIB.
            cut = block.rfind(b"\n", start, end)
            end = cut + 1 if cut >= 0 else block.index(b"\n", start) + 1
        piece = memoryview(block)[start:end]
        f.write(piece)
        left -= len(piece)
        written += len(piece)
        k += 1
print(f"wrote {written} bytes ({written / (1 << 20):.0f} MiB, {k} slices of a {len(block)}-byte block, "
      f"{line_no} lines per block) to {path}")

# --- literal sets ------------------------------------------------------------------------
# Rare tokens from the part of the block every slice holds (past its first 1 MiB + a line,
# before 63 MiB), so each occurs once per full slice.
inner = [t for (o, t) in rare_offsets if (1 << 20) + 4096 <= o < (63 << 20)]
rng.shuffle(inner)
planted = list(dict.fromkeys(inner))  # unique, order kept


def random_literals(n):
    out = os.urandom(12 * n).translate(TO_LETTERS)
    return [out[12 * i:12 * i + 12] for i in range(n)]


def write_set(name, literals):
    with open(os.path.join(work, name), "wb") as f:
        f.write(b"".join(l + b"\n" for l in literals))


used = 0
for n in (1, 1000, 10000, 100000, 1000000):
    k = 1 if n == 1 else n // 10
    lits = planted[used:used + k] + random_literals(n - k)
    used += k
    rng.shuffle(lits)
    write_set(f"lits-{n}.txt", lits)
    print(f"lits-{n}.txt: {n} literals of 12 bytes, {k} of them rare tokens of the text")
by_weight = vocab[:2000]  # vocab is in rank order: the most common words first
dense = by_weight + random_literals(8000)
rng.shuffle(dense)
write_set("lits-dense.txt", dense)
share = cum[1999] / cum[-1]
print(f"lits-dense.txt: the 2000 most common words ({share:.0%} of the words of the text, "
      f"{sum(1 for w in by_weight if len(w) <= 3)} of them of 2-3 letters) + 8000 random 12-letter strings")
